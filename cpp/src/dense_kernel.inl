// The dense Adagrad kernel, written once. Each kernels_<isa>.cpp includes this file after the
// traits of its vector registers and instantiates make_kernel_table with them.
//
// Per element (SEMANTICS.md section 1), in the tensor's dtype, every operation rounded once:
//   g <- -g                              if maximize
//   g <- fma(theta, wd, g)               coupled weight decay
//   theta <- theta * (1 - clr*wd)        decoupled weight decay (factor rounded once)
//   s <- fma(g, g, s)
//   theta <- theta - (clr * g) / (sqrt(s) + eps)     or / sqrt(s + eps) with eps inside the root
// The vector body and the scalar tail perform the same IEEE operations, so chunk boundaries,
// thread counts and instruction sets never change a bit.
#pragma once

#include <cstddef>
#include <utility>

#include "adagrad/kernels.hpp"
#include "simd/scalar.hpp"

namespace adagrad {
namespace {

template <class O>
struct DenseConsts {
  typename O::R clr, eps, wd, decay;
  explicit DenseConsts(const DenseCoeffs<typename O::T>& c)
      : clr(O::set1(c.clr)), eps(O::set1(c.eps)), wd(O::set1(c.weight_decay)), decay(O::set1(c.decay)) {}
};

template <class O, int kVariant>
inline __attribute__((always_inline)) void dense_apply(typename O::R& p, typename O::R g, typename O::R& s,
                                                       const DenseConsts<O>& k) {
  constexpr WeightDecayMode kWd = variant_weight_decay(kVariant);
  if constexpr (variant_maximize(kVariant)) g = O::neg(g);
  if constexpr (kWd == WeightDecayMode::coupled) g = O::fmadd(p, k.wd, g);
  if constexpr (kWd == WeightDecayMode::decoupled) p = O::mul(p, k.decay);
  s = O::fmadd(g, g, s);
  typename O::R denom;
  if constexpr (variant_eps_inside_sqrt(kVariant)) {
    denom = O::sqrt(O::add(s, k.eps));
  } else {
    denom = O::add(O::sqrt(s), k.eps);
  }
  p = O::sub(p, O::div(O::mul(k.clr, g), denom));
}

template <class V, int kVariant>
void dense_loop(typename V::T* __restrict param, const typename V::T* __restrict grad,
                typename V::T* __restrict sum, std::size_t n, const DenseCoeffs<typename V::T>& c) {
  using S = ScalarVec<typename V::T>;
  std::size_t i = 0;
  if constexpr (V::W > 1) {
    const DenseConsts<V> kv(c);
    for (; i + V::W <= n; i += V::W) {
      typename V::R p = V::load(param + i);
      typename V::R s = V::load(sum + i);
      dense_apply<V, kVariant>(p, V::load(grad + i), s, kv);
      V::store(sum + i, s);
      V::store(param + i, p);
    }
  }
  const DenseConsts<S> ks(c);
  for (; i < n; ++i) {
    typename S::R p = param[i];
    typename S::R s = sum[i];
    dense_apply<S, kVariant>(p, grad[i], s, ks);
    sum[i] = s;
    param[i] = p;
  }
}

// The memory ceiling: sum += grad, param += grad. Same bytes moved as the update, one add each.
template <class V>
void stream_loop(typename V::T* __restrict param, const typename V::T* __restrict grad,
                 typename V::T* __restrict sum, std::size_t n, const DenseCoeffs<typename V::T>&) {
  std::size_t i = 0;
  if constexpr (V::W > 1) {
    for (; i + V::W <= n; i += V::W) {
      const typename V::R g = V::load(grad + i);
      V::store(sum + i, V::add(V::load(sum + i), g));
      V::store(param + i, V::add(V::load(param + i), g));
    }
  }
  for (; i < n; ++i) {
    sum[i] += grad[i];
    param[i] += grad[i];
  }
}

template <class V, std::size_t... I>
constexpr DenseVariants<typename V::T> dense_variants(std::index_sequence<I...>) {
  return {{&dense_loop<V, static_cast<int>(I)>..., &stream_loop<V>}};
}

template <class VF32, class VF64>
constexpr KernelTable make_kernel_table(const char* name) {
  return {name, dense_variants<VF32>(std::make_index_sequence<kDenseVariants>{}),
          dense_variants<VF64>(std::make_index_sequence<kDenseVariants>{})};
}

}  // namespace
}  // namespace adagrad
