// The dense Adagrad kernel, written once. Each kernels_<isa>.cpp includes this file after the
// traits of its vector registers, then sparse_kernel.inl, then kernel_table.inl.
//
// Per element (SEMANTICS.md section 1), in the tensor's dtype, every operation rounded once:
//   g <- g / grad_scale                  if scale_grads (loss scaling; an IEEE division, or the
//                                        same bits as g * (1/grad_scale) when that is exact)
//   g <- min(hi, max(lo, g * clip))      if the clip applies (hyper.hpp, ClipRule; x86 max / min:
//                                        a NaN g stays NaN)
//   g <- -g                              if maximize
//   g <- fma(theta, wd, g)               coupled weight decay
//   theta <- theta * (1 - clr*wd)        decoupled weight decay (factor rounded once)
//   s <- fma(g, g, s)
//   theta <- theta - (clr * g) / (sqrt(s) + eps)     or / sqrt(s + eps) with eps inside the root
// The composite rules (SEMANTICS.md section 4; no loss scale, clip or weight decay), per element:
//   Proximal Adagrad:  s <- fma(g, g, s);  eta <- lr / sqrt(s);  v <- fma(-eta, g, theta)
//                      v <- copysign(max(fma(-eta, l1, |v|), 0), v)       if l1 > 0
//                      theta <- v / fma(eta, l2, 1)
//   Adagrad-DA:        a <- a + g;  s <- fma(g, g, s)
//                      theta <- -copysign((lr * max(|a| - l1_step, 0)) / (sqrt(s) + l2_step_lr), a)
//                      (l1_step = T(step) * l1, l2_step_lr = l2 * (T(step) * lr): TensorFlow's constants)
//   AdagradDecay:      s <- max(s * decay_rate, decay_floor)   for every decay due since the row (of a
//                      table; a whole array otherwise) was last updated, before the update (sparse
//                      rows: here; dense arrays: dense.cpp), then Adagrad's s <- fma(g, g, s),
//                      theta <- theta - (lr * g) / sqrt(s)
// The vector body and the scalar tail perform the same IEEE operations, so chunk boundaries,
// thread counts and instruction sets never change a bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "adagrad/kernels.hpp"
#include "adagrad/half.hpp"
#include "simd/scalar.hpp"
#include "stochastic_round.inl"

namespace adagrad {
namespace {

template <class O>
struct DenseConsts {
  typename O::R clr, eps, wd, decay, scale, inv_scale, clip_scale, clip_lo, clip_hi;
  typename O::R lr, l1, l2, l1_step, l2_step_lr, zero, one;
  bool stochastic;  // a 16-bit param's write stochastically rounded (stochastic_round.inl), by sr_key
  SrKey sr_key;
  explicit DenseConsts(const DenseCoeffs<typename O::T>& c)
      : clr(O::set1(c.clr)),
        eps(O::set1(c.eps)),
        wd(O::set1(c.weight_decay)),
        decay(O::set1(c.decay)),
        scale(O::set1(c.grad_scale)),
        inv_scale(O::set1(c.inv_grad_scale)),
        clip_scale(O::set1(c.clip_scale)),
        clip_lo(O::set1(c.clip_lo)),
        clip_hi(O::set1(c.clip_hi)),
        lr(O::set1(c.lr)),
        l1(O::set1(c.l1)),
        l2(O::set1(c.l2)),
        l1_step(O::set1(c.l1_step)),
        l2_step_lr(O::set1(c.l2_step_lr)),
        zero(O::set1(typename O::T(0))),
        one(O::set1(typename O::T(1))),
        stochastic(c.stochastic),
        sr_key(c.sr_key) {}
};

// g / grad_scale (GradScaleMode in hyper.hpp), then clipped (ClipRule), or g itself.
template <class O, int kVariant>
inline __attribute__((always_inline)) typename O::R unscaled(typename O::R g, const DenseConsts<O>& k) {
  constexpr GradScaleMode kScale = variant_grad_scale(kVariant);
  if constexpr (kScale == GradScaleMode::divide) g = O::div(g, k.scale);
  if constexpr (kScale == GradScaleMode::multiply) g = O::mul(g, k.inv_scale);
  if constexpr (variant_clip(kVariant)) g = O::min(k.clip_hi, O::max(k.clip_lo, O::mul(g, k.clip_scale)));
  return g;
}

template <class O, int kVariant>
inline __attribute__((always_inline)) void dense_apply(typename O::R& p, typename O::R g, typename O::R& s,
                                                       const DenseConsts<O>& k) {
  constexpr WeightDecayMode kWd = variant_weight_decay(kVariant);
  g = unscaled<O, kVariant>(g, k);
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

// max(0, x) is written max(zero, x): x86's max gives its second operand when either is NaN, so a
// NaN stays NaN (SimdOps::max on every ISA).
template <class O, bool kL1>
inline __attribute__((always_inline)) void proximal_apply(typename O::R& p, typename O::R g, typename O::R& s,
                                                          const DenseConsts<O>& k) {
  s = O::fmadd(g, g, s);
  const typename O::R eta = O::div(k.lr, O::sqrt(s));
  const typename O::R minus_eta = O::neg(eta);
  typename O::R v = O::fmadd(minus_eta, g, p);
  if constexpr (kL1) v = O::copysign(O::max(k.zero, O::fmadd(minus_eta, k.l1, O::abs(v))), v);
  p = O::div(v, O::fmadd(eta, k.l2, k.one));
}

template <class O>
inline __attribute__((always_inline)) void dual_averaging_apply(typename O::R& p, typename O::R g, typename O::R& s,
                                                                typename O::R& a, const DenseConsts<O>& k) {
  a = O::add(a, g);
  s = O::fmadd(g, g, s);
  const typename O::R shrunk = O::max(k.zero, O::sub(O::abs(a), k.l1_step));
  const typename O::R denom = O::add(O::sqrt(s), k.l2_step_lr);
  p = O::neg(O::copysign(O::div(O::mul(k.lr, shrunk), denom), a));
}

// One group of lanes of any rule's update: p, s (and a, the grad sum, for Adagrad-DA) in and out.
template <class O, int kVariant>
inline __attribute__((always_inline)) void rule_apply(typename O::R& p, typename O::R g, typename O::R& s,
                                                      typename O::R& a, const DenseConsts<O>& k) {
  constexpr Rule kRule = variant_rule(kVariant);
  if constexpr (kRule == Rule::adagrad) {
    dense_apply<O, kVariant>(p, g, s, k);
  } else if constexpr (kRule == Rule::proximal) {
    proximal_apply<O, variant_l1(kVariant)>(p, g, s, k);
  } else if constexpr (kRule == Rule::dual_averaging) {
    dual_averaging_apply<O>(p, g, s, a, k);
  } else {  // AdagradDecay, its sums' decays already taken (decay_sums)
    dense_apply<O, 0>(p, g, s, k);
  }
}

// AdagradDecay's catch-up (hyper.hpp, decay_sums: the same scalar operations on every path).

// How many leading elements run on the scalar path so that the vector loop's accesses to `p`
// start on a 64-byte cache line. NumPy puts a big array 16 bytes past a page boundary, so without
// this every AVX-512 load and store of a streaming pass straddles two lines (measured here, one
// thread, 16M float32: 9.1-9.8 ms a step at +16 bytes, 7.7-8.2 ms aligned). Short calls are
// cache-resident, where straddling costs nothing measurable and a scalar head would: none there.
template <class V, class T>
std::size_t head_to_cache_line(const T* p, std::size_t n) {
  constexpr std::size_t kLine = 64, kMinElements = 4096;
  const auto misalignment = reinterpret_cast<std::uintptr_t>(p) % kLine;
  if (V::W == 1 || n < kMinElements || misalignment % sizeof(T) != 0) return 0;
  return ((kLine - misalignment) % kLine) / sizeof(T);
}

// O's registers loaded from and stored to storage of type P: O's own type as it is, a 16-bit
// format (half.hpp) widened to float and narrowed back.
template <class O, class P>
inline __attribute__((always_inline)) typename O::R load_as(const P* p) {
  if constexpr (is_16bit_storage<P>) {
    return O::load16(p);
  } else {
    return O::load(p);
  }
}

template <class O, class P>
inline __attribute__((always_inline)) void store_as(P* p, typename O::R v) {
  if constexpr (is_16bit_storage<P>) {
    O::store16(p, v);
  } else {
    O::store(p, v);
  }
}

// A param's lanes written: a 16-bit param stochastically rounded when the call asks for it, element
// l drawing the random bits of `index + l` (stochastic_rounding.hpp); otherwise store_as's rounding.
// A runtime switch rather than kernel variants: the 16-bit kernels' compile time stays as it was.
template <class O, class P>
inline __attribute__((always_inline)) void store_param(P* p, typename O::R v, const DenseConsts<O>& k,
                                                       std::uint64_t index) {
  if constexpr (is_16bit_storage<P>) {
    if (k.stochastic) return stochastic_store<O>(p, v, index, k.sr_key);
  }
  store_as<O>(p, v);
}

// Elements [i, i + O::W) of one update: loads, the rule, stores (the grad sum only where the rule
// has one). P: the param's storage, S: the state's; O computes in compute_t<P>. A 16-bit sum is
// rounded on store, but the update goes on with the unrounded one (torch's fused kernel does so).
// index: the element's number for stochastic rounding (dense: its offset in the array).
template <class O, int kVariant, class P, class S>
inline __attribute__((always_inline)) void update_lanes(P* __restrict p, typename O::R g, S* __restrict s,
                                                        S* __restrict a, const DenseConsts<O>& k,
                                                        std::uint64_t index) {
  typename O::R pv = load_as<O>(p);
  typename O::R sv = load_as<O>(s);
  typename O::R av = sv;  // read by Adagrad-DA alone, which loads its own
  if constexpr (variant_has_grad_sum(kVariant)) av = load_as<O>(a);
  rule_apply<O, kVariant>(pv, g, sv, av, k);
  if constexpr (variant_has_grad_sum(kVariant)) store_as<O>(a, av);
  store_as<O>(s, sv);
  store_param<O>(p, pv, k, index);
}

// grad_sum + offset where the rule has a grad sum; null (no arithmetic on a null pointer) otherwise.
template <int kVariant, class T>
inline __attribute__((always_inline)) T* grad_sum_row(T* grad_sum, std::size_t offset) {
  if constexpr (variant_has_grad_sum(kVariant)) {
    return grad_sum + offset;
  } else {
    return nullptr;
  }
}

template <class V, class P, class S, int kVariant>
void dense_loop(P* __restrict param, const P* __restrict grad, S* __restrict sum, S* __restrict grad_sum,
                std::size_t n, const DenseCoeffs<typename V::T>& c) {
  using Sc = ScalarVec<typename V::T>;
  const DenseConsts<Sc> ks(c);
  const auto grad_sum_at = [&](std::size_t i) { return grad_sum_row<kVariant>(grad_sum, i); };
  auto scalar = [&](std::size_t i) {
    update_lanes<Sc, kVariant>(param + i, load_as<Sc>(grad + i), sum + i, grad_sum_at(i), ks, c.sr_first_index + i);
  };
  std::size_t i = 0;
  if constexpr (V::W > 1) {
    for (const std::size_t head = head_to_cache_line<V>(param, n); i < head; ++i) scalar(i);
    const DenseConsts<V> kv(c);
    for (; i + V::W <= n; i += V::W) {
      update_lanes<V, kVariant>(param + i, load_as<V>(grad + i), sum + i, grad_sum_at(i), kv, c.sr_first_index + i);
    }
  }
  for (; i < n; ++i) scalar(i);
}

// The memory ceiling: sum += grad, param += grad. Same bytes moved as the update, one add each
// (and the conversions of a 16-bit storage, which the update has too).
template <class V, class P, class S>
void stream_loop(P* __restrict param, const P* __restrict grad, S* __restrict sum, S*, std::size_t n,
                 const DenseCoeffs<typename V::T>&) {
  auto lanes = [&](auto ops, std::size_t i) {
    using O = decltype(ops);
    const typename O::R g = load_as<O>(grad + i);
    store_as<O>(sum + i, O::add(load_as<O>(sum + i), g));
    store_as<O>(param + i, O::add(load_as<O>(param + i), g));
  };
  using Sc = ScalarVec<typename V::T>;
  std::size_t i = 0;
  if constexpr (V::W > 1) {
    for (const std::size_t head = head_to_cache_line<V>(param, n); i < head; ++i) lanes(Sc{}, i);
    for (; i + V::W <= n; i += V::W) lanes(V{}, i);
  }
  for (; i < n; ++i) lanes(Sc{}, i);
}

// True when no element is a NaN or an infinity: x * 0 is +-0 for a finite x and NaN otherwise,
// and a NaN stays NaN through the running sums. Four sums keep the additions independent.
// Only reads; the caller runs it over every grad before any update (nonfinite = skip / raise).
template <class V>
bool all_finite_loop(const typename V::T* __restrict x, std::size_t n) {
  using T = typename V::T;
  const typename V::R zero = V::set1(T(0));
  typename V::R a0 = zero, a1 = zero, a2 = zero, a3 = zero;
  std::size_t i = 0;
  for (; i + 4 * V::W <= n; i += 4 * V::W) {
    a0 = V::add(a0, V::mul(V::load(x + i), zero));
    a1 = V::add(a1, V::mul(V::load(x + i + V::W), zero));
    a2 = V::add(a2, V::mul(V::load(x + i + 2 * V::W), zero));
    a3 = V::add(a3, V::mul(V::load(x + i + 3 * V::W), zero));
  }
  for (; i + V::W <= n; i += V::W) a0 = V::add(a0, V::mul(V::load(x + i), zero));
  T lanes[V::W];
  V::store(lanes, V::add(V::add(a0, a1), V::add(a2, a3)));
  T total = T(0);
  for (std::size_t l = 0; l < V::W; ++l) total += lanes[l];
  for (; i < n; ++i) total += x[i] * T(0);
  return total == total;  // false only for NaN
}

// The canonical 8-lane sum of squares (kernels.hpp). Registers of W lanes hold canonical lanes
// when W divides 8; wider registers fall back to the scalar lanes, with the same result.
template <class V>
typename V::T sum_of_squares8(const typename V::T* __restrict g, std::size_t d) {
  using T = typename V::T;
  using S = ScalarVec<T>;
  T lanes[8] = {};
  std::size_t j = 0;
  if constexpr (V::W > 1 && 8 % V::W == 0) {
    constexpr std::size_t kRegs = 8 / V::W;
    typename V::R acc[kRegs];
    for (std::size_t r = 0; r < kRegs; ++r) acc[r] = V::set1(T(0));
    for (; j + 8 <= d; j += 8) {
      for (std::size_t r = 0; r < kRegs; ++r) {
        const typename V::R x = V::load(g + j + r * V::W);
        acc[r] = V::fmadd(x, x, acc[r]);
      }
    }
    for (std::size_t r = 0; r < kRegs; ++r) V::store(lanes + r * V::W, acc[r]);
  }
  for (; j < d; ++j) lanes[j % 8] = S::fmadd(g[j], g[j], lanes[j % 8]);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

// One scalar of storage type S in the compute type T, and back (half.hpp for 16-bit storage).
template <class T, class S>
inline T scalar_in(S x) {
  if constexpr (is_16bit_storage<S>) {
    return widen(x);
  } else {
    return x;
  }
}

template <class S, class T>
inline S scalar_out(T x) {
  if constexpr (is_16bit_storage<S>) {
    return narrow(x, S{});
  } else {
    return x;
  }
}

// A row of a (16-bit or not) table with its one accumulator; grad: the row's gradient in the
// compute type, rewritten here. A 16-bit accumulator is rounded on store, the update using its
// unrounded value, as element-wise. index: the row's first element's number (stochastic rounding).
template <class V, int kVariant, class P, class St>
void rowwise_row(P* __restrict param, typename V::T* __restrict grad, St* __restrict state, std::size_t d,
                 const DenseCoeffs<typename V::T>& c, std::uint64_t index) {
  using T = typename V::T;
  using S = ScalarVec<T>;
  constexpr WeightDecayMode kWd = variant_weight_decay(kVariant);
  // 1. The gradient as the update sees it (loss scale, clip, maximize, weight decay), written back
  // to the scratch.
  const DenseConsts<V> kv(c);
  const DenseConsts<S> ks(c);
  auto prepare = [&](auto ops, const auto& k, std::size_t i) {
    using O = decltype(ops);
    typename O::R g = O::load(grad + i);
    typename O::R p = load_as<O>(param + i);
    g = unscaled<O, kVariant>(g, k);
    if constexpr (variant_maximize(kVariant)) g = O::neg(g);
    if constexpr (kWd == WeightDecayMode::coupled) g = O::fmadd(p, k.wd, g);
    if constexpr (kWd == WeightDecayMode::decoupled) store_as<O>(param + i, O::mul(p, k.decay));
    O::store(grad + i, g);
  };
  std::size_t i = 0;
  if constexpr (V::W > 1) {
    for (; i + V::W <= d; i += V::W) prepare(V{}, kv, i);
  }
  for (; i < d; ++i) prepare(S{}, ks, i);
  // 2. One accumulator for the row.
  const T s = scalar_in<T>(*state) + sum_of_squares8<V>(grad, d) / static_cast<T>(d);
  *state = scalar_out<St>(s);
  T denom;
  if constexpr (variant_eps_inside_sqrt(kVariant)) {
    denom = S::sqrt(s + c.eps);
  } else {
    denom = S::sqrt(s) + c.eps;
  }
  // 3. theta_j <- theta_j - (clr * g_j) / denom
  auto apply = [&](auto ops, const auto& k, std::size_t j) {
    using O = decltype(ops);
    const typename O::R updated =
        O::sub(load_as<O>(param + j), O::div(O::mul(O::set1(c.clr), O::load(grad + j)), O::set1(denom)));
    store_param<O>(param + j, updated, k, index + j);
  };
  i = 0;
  if constexpr (V::W > 1) {
    for (; i + V::W <= d; i += V::W) apply(V{}, kv, i);
  }
  for (; i < d; ++i) apply(S{}, ks, i);
}

// The 16-bit storages have half_dense_variant()'s variants (hyper.hpp); their other entries are
// null (refused before a kernel is looked up).
template <class V, class P, class S, int kVariant>
constexpr DenseFn<P, S> dense_kernel() {
  if constexpr (kVariant == kStreamVariant) {
    return &stream_loop<V, P, S>;
  } else if constexpr (is_16bit_storage<P> && !half_dense_variant(kVariant)) {
    return nullptr;
  } else {
    return &dense_loop<V, P, S, kVariant>;
  }
}

template <class V, class P, class S, std::size_t... I>
constexpr DenseVariants<P, S> dense_variants(std::index_sequence<I...>) {
  return {{dense_kernel<V, P, S, static_cast<int>(I)>()...}};
}

}  // namespace
}  // namespace adagrad
