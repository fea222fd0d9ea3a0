// The dense kernel, written once for every rule. Each kernels_<isa>.cpp includes this file after the
// traits of its vector registers, then sparse_kernel.inl, norm_kernel.inl and kernel_table.inl.
//
// Per element, in the compute type (float32 for 16-bit storage, else the array's own), every
// operation rounded once:
//   1. the param, the grad and the states loaded, 16-bit ones widened (exact);
//   2. the transforms (transforms.hpp): unscale, clip, maximize;
//   3. the rule (rules/*.hpp);
//   4. each written array stored, a 16-bit one narrowed once: the states to nearest even, the param
//      to nearest even or stochastically (stochastic_round.inl). A narrowed state's unrounded value
//      is what the update went on with (torch's fused kernel does so).
// The switches of steps 2 and 3 (which transforms, which weight decay, where eps goes, ...) are
// runtime branches on per-call constants, the same in every iteration: one kernel body per rule and
// storage pair, instantiated twice, kPlain: the plain case (no transform; the rule's apply_plain
// where it declares one) compiled without the branches, where they cost (docs/speed.md, "Switches
// as branches"). The vector body and the scalar tail perform the same IEEE operations, so chunk
// boundaries, thread counts and instruction sets never change a bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "adagrad/half.hpp"
#include "adagrad/kernels.hpp"
#include "simd/scalar.hpp"
#include "stochastic_round.inl"

namespace adagrad {
namespace {

template <class Rule, class T>
inline const typename Rule::template Coeffs<T>& rule_coeffs(const Coeffs<T>& c) {
  return *std::get_if<rule_index<Rule>>(&c.rule);
}

// The transforms' constants in O's registers.
template <class O>
struct TransformLanes {
  using R = typename O::R;
  GradScaleMode scale_mode;
  R scale, inv_scale;
  bool clip;
  R clip_scale, clip_lo, clip_hi;
  bool maximize;
  bool stochastic;
  SrKey sr_key;
  explicit TransformLanes(const Transform<typename O::T>& t)
      : scale_mode(t.scale_mode),
        scale(O::set1(t.scale)),
        inv_scale(O::set1(t.inv_scale)),
        clip(t.clip),
        clip_scale(O::set1(t.clip_scale)),
        clip_lo(O::set1(t.clip_lo)),
        clip_hi(O::set1(t.clip_hi)),
        maximize(t.maximize),
        stochastic(t.stochastic),
        sr_key(t.sr_key) {}
};

// Everything a group of lanes of the rule's update needs.
template <class O, class Rule>
struct Lanes {
  TransformLanes<O> transform;
  typename Rule::template Lanes<O> rule;
  explicit Lanes(const Coeffs<typename O::T>& c) : transform(c.transform), rule(rule_coeffs<Rule>(c)) {}
};

// g / grad_scale (GradScaleMode), clipped (ClipRule; x86 max / min: a NaN g stays NaN), negated
// for maximize: the gradient the rule sees.
template <class O>
inline __attribute__((always_inline)) typename O::R transformed(typename O::R g, const TransformLanes<O>& k) {
  if (k.scale_mode == GradScaleMode::divide) {
    g = O::div(g, k.scale);
  } else if (k.scale_mode == GradScaleMode::multiply) {
    g = O::mul(g, k.inv_scale);
  }
  if (k.clip) g = O::min(k.clip_hi, O::max(k.clip_lo, O::mul(g, k.clip_scale)));
  if (k.maximize) g = O::neg(g);
  return g;
}

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

// A param's lanes written: a 16-bit param stochastically rounded when the call asks for it (never in
// the plain case), element l drawing the random bits of `index + l` (stochastic_rounding.hpp);
// otherwise store_as's rounding.
template <class O, bool kPlain = false, class P>
inline __attribute__((always_inline)) void store_param(P* p, typename O::R v, const TransformLanes<O>& k,
                                                       std::uint64_t index) {
  if constexpr (is_16bit_storage<P> && !kPlain) {
    if (k.stochastic) return stochastic_store<O>(p, v, index, k.sr_key);
  }
  store_as<O>(p, v);
}

// The rule's step on one group of lanes: the transforms then Rule::apply, or in the plain case the
// rule's apply_plain (or apply: its switches stay branches) on the grad as it is.
template <bool kPlain, class O, class Rule>
inline __attribute__((always_inline)) void rule_step(typename O::R& p, typename O::R g, typename O::R* s,
                                                     const Lanes<O, Rule>& k) {
  if constexpr (!kPlain) {
    Rule::apply(p, transformed(g, k.transform), s, k.rule);
  } else if constexpr (requires { Rule::template apply_plain<O>(p, g, s, k.rule); }) {
    Rule::template apply_plain<O>(p, g, s, k.rule);
  } else {
    Rule::apply(p, g, s, k.rule);
  }
}

// The rule's state arrays at one element (or row) of a param: at[j] is state j's.
template <class S, std::size_t N>
struct StateRows {
  S* at[N];
  StateRows offset(std::size_t i) const {
    StateRows out;
    for (std::size_t j = 0; j < N; ++j) out.at[j] = at[j] + i;
    return out;
  }
};

template <class Rule, class S>
using RuleStates = StateRows<S, Rule::kStates.size()>;

template <class Rule, class S>
inline RuleStates<Rule, S> rule_states(S* const* states) {
  RuleStates<Rule, S> out;
  for (std::size_t j = 0; j < Rule::kStates.size(); ++j) out.at[j] = states[j];
  return out;
}

// Elements [i, i + O::W) of one update: loads, the transforms, the rule, stores. P: the param's
// storage, S: the states'; O computes in compute_t<P>. g: the gradient as loaded (or summed).
// index: the first element's number for stochastic rounding (dense: its offset in the array).
template <class O, class Rule, bool kPlain, class P, class S>
inline __attribute__((always_inline)) void update_lanes(P* p, typename O::R g, const RuleStates<Rule, S>& s,
                                                        const Lanes<O, Rule>& k, std::uint64_t index) {
  constexpr std::size_t kStates = Rule::kStates.size();
  typename O::R pv = load_as<O>(p);
  typename O::R sv[kStates];
  for (std::size_t j = 0; j < kStates; ++j) sv[j] = load_as<O>(s.at[j]);
  rule_step<kPlain>(pv, g, sv, k);
  for (std::size_t j = 0; j < kStates; ++j) store_as<O>(s.at[j], sv[j]);
  store_param<O, kPlain>(p, pv, k.transform, index);
}

template <class V, class Rule, bool kPlain, class P, class S>
void dense_loop(P* __restrict param, const P* __restrict grad, S* const* states, std::size_t n,
                const Coeffs<typename V::T>& c) {
  using Sc = ScalarVec<typename V::T>;
  const RuleStates<Rule, S> s = rule_states<Rule>(states);
  const Lanes<Sc, Rule> ks(c);
  const std::uint64_t first = c.transform.sr_first_index;
  auto scalar = [&](std::size_t i) {
    update_lanes<Sc, Rule, kPlain>(param + i, load_as<Sc>(grad + i), s.offset(i), ks, first + i);
  };
  std::size_t i = 0;
  if constexpr (V::W > 1) {
    for (const std::size_t head = head_to_cache_line<V>(param, n); i < head; ++i) scalar(i);
    const Lanes<V, Rule> kv(c);
    for (; i + V::W <= n; i += V::W) {
      update_lanes<V, Rule, kPlain>(param + i, load_as<V>(grad + i), s.offset(i), kv, first + i);
    }
  }
  for (; i < n; ++i) scalar(i);
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

template <class V, class Rule, bool kPlain, class P, class S>
constexpr DenseFn<P, S> dense_kernel() {
  return &dense_loop<V, Rule, kPlain, P, S>;
}

}  // namespace
}  // namespace adagrad
