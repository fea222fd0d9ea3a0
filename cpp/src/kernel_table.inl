// The table of one instruction set's kernels, from the bodies of dense_kernel.inl,
// sparse_kernel.inl and norm_kernel.inl: every entry is an instantiation for that set's vector registers.
#pragma once

#include <utility>

#include "adagrad/kernels.hpp"

namespace adagrad {
namespace {

template <class VF32, class VF64>
constexpr KernelTable make_kernel_table(const char* name) {
  constexpr auto variants = std::make_index_sequence<kKernelVariants>{};
  return {name,
          dense_variants<VF32, float, float>(variants),
          dense_variants<VF64, double, double>(variants),
          dense_variants<VF32, float16, float16>(variants),
          dense_variants<VF32, float16, float>(variants),
          dense_variants<VF32, bfloat16, bfloat16>(variants),
          dense_variants<VF32, bfloat16, float>(variants),
          sparse_variants<VF32, float, float>(variants),
          sparse_variants<VF64, double, double>(variants),
          sparse_variants<VF32, float16, float16>(variants),
          sparse_variants<VF32, float16, float>(variants),
          sparse_variants<VF32, bfloat16, bfloat16>(variants),
          sparse_variants<VF32, bfloat16, float>(variants),
          &all_finite_loop<VF32>,
          &all_finite_loop<VF64>,
          norm_kernels<VF64, VF32>(),
          norm_kernels<VF64, VF64>(),
          &stochastic_round_loop<VF32, float16>,
          &stochastic_round_loop<VF32, bfloat16>};
}

}  // namespace
}  // namespace adagrad
