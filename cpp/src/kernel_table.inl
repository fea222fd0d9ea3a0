// The table of one instruction set's kernels, from the bodies of dense_kernel.inl,
// sparse_kernel.inl and norm_kernel.inl: every entry is an instantiation for that set's vector
// registers, one per rule (registry.hpp) and storage pair.
#pragma once

#include "adagrad/kernels.hpp"

namespace adagrad {
namespace {

template <class V, bool kPlain, std::size_t kD, class P, class S, class... R>
constexpr void fill_fixed(PairKernels<P, S>& out, int d, RuleList<R...>) {
  ((out.fixed_sum[rule_index<R>][d][kPlain] = fixed_sum_kernel<V, R, kPlain, kD, P, S>()), ...);
}

template <class V, bool kPlain, class P, class S, class... R>
constexpr void fill(PairKernels<P, S>& k, RuleList<R...> rules) {
  ((k.dense[rule_index<R>][kPlain] = dense_kernel<V, R, kPlain, P, S>()), ...);
  ((k.sparse[rule_index<R>][0][kPlain] = sparse_kernel<V, R, kPlain, SparseMode::sum, P, S>()), ...);
  ((k.sparse[rule_index<R>][1][kPlain] = sparse_kernel<V, R, kPlain, SparseMode::sequential, P, S>()), ...);
  ((k.sparse[rule_index<R>][2][kPlain] = sparse_kernel<V, R, kPlain, SparseMode::rowwise_sum, P, S>()), ...);
  ((k.sparse[rule_index<R>][3][kPlain] = sparse_kernel<V, R, kPlain, SparseMode::rowwise_sequential, P, S>()), ...);
  fill_fixed<V, kPlain, kFixedDims[0]>(k, 0, rules);
  fill_fixed<V, kPlain, kFixedDims[1]>(k, 1, rules);
  fill_fixed<V, kPlain, kFixedDims[2]>(k, 2, rules);
  fill_fixed<V, kPlain, kFixedDims[3]>(k, 3, rules);
}

template <class V, class P, class S>
constexpr PairKernels<P, S> pair_kernels_of(Rules rules) {
  PairKernels<P, S> k{};
  fill<V, false>(k, rules);
  fill<V, true>(k, rules);
  k.floor = floor_kernel<V, P, S>();
  return k;
}

template <class VF32, class VF64>
constexpr KernelTable make_kernel_table(const char* name) {
  return {name,
          pair_kernels_of<VF32, float, float>(Rules{}),
          pair_kernels_of<VF64, double, double>(Rules{}),
          pair_kernels_of<VF32, float16, float16>(Rules{}),
          pair_kernels_of<VF32, float16, float>(Rules{}),
          pair_kernels_of<VF32, bfloat16, bfloat16>(Rules{}),
          pair_kernels_of<VF32, bfloat16, float>(Rules{}),
          &all_finite_loop<VF32>,
          &all_finite_loop<VF64>,
          norm_kernels<VF64, VF32>(),
          norm_kernels<VF64, VF64>(),
          &stochastic_round_loop<VF32, float16>,
          &stochastic_round_loop<VF32, bfloat16>,
          &pool_bags<VF32>};
}

}  // namespace
}  // namespace adagrad
