// Stochastic rounding of float32 lanes to float16 / bfloat16 storage, written once over any ISA's
// integer lanes (`I`: simd/*.hpp, ScalarU32 says what each operation means). The random bits are
// stochastic_rounding.hpp's; every ISA and the scalar path give the same bits for an element.
//
// bfloat16: add the top 16 random bits to the float32's bits and truncate: the float32 is rounded
//   away from zero with probability (bits rounded away) / 2^16, exactly, for every finite value.
// float16: the same with the top 13 bits (the dropped mantissa bits) in float16's normal range. Below
//   it (|x| < 2^-14) the spacing is 2^-24 and d = 126 - exponent > 13 bits are dropped: the 24-bit
//   significand plus the top d random bits, shifted right by d. For |x| < 2^-32 (d > 31) the
//   significand is first shifted so that 31 bits remain: the probability is then resolved to 2^-31
//   of the step (a bias below 2^-55 in absolute value).
// Both: NaN gives round to nearest's quiet NaN (half.hpp); a value beyond the largest finite rounds
//   to infinity with probability its distance over the last step (an infinity stays one).
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "adagrad/half.hpp"
#include "adagrad/stochastic_rounding.hpp"
#include "simd/scalar.hpp"

namespace adagrad {
namespace {

// lowbias32 (Chris Wellons' hash-prospector): a bijection of the 32-bit integers.
template <class I>
inline __attribute__((always_inline)) typename I::R sr_mix(typename I::R x) {
  x = I::xor_(x, I::template srl<16>(x));
  x = I::mul(x, I::set1(0x7FEB352Du));
  x = I::xor_(x, I::template srl<15>(x));
  x = I::mul(x, I::set1(0x846CA68Bu));
  return I::xor_(x, I::template srl<16>(x));
}

// The random bits of elements index .. index + W - 1, whose low 32 bits must not wrap (the caller's):
// mix(lo32 ^ c), c = k0 ^ mix(hi32 ^ k1), the one constant of the lanes (a scalar).
template <class I>
inline __attribute__((always_inline)) typename I::R sr_random(std::uint64_t index, SrKey key) {
  const std::uint32_t c = key.k0 ^ sr_mix<ScalarU32>(static_cast<std::uint32_t>(index >> 32) ^ key.k1);
  const typename I::R lo = I::add(I::set1(static_cast<std::uint32_t>(index)), I::iota());
  return sr_mix<I>(I::xor_(lo, I::set1(c)));
}

template <class I>
inline __attribute__((always_inline)) typename I::R sr_bfloat16_bits(typename I::R x, typename I::R r) {
  const typename I::R ax = I::and_(x, I::set1(0x7FFFFFFFu));
  const typename I::R rounded = I::template srl<16>(I::add(x, I::template srl<16>(r)));
  const typename I::R nan = I::or_(I::and_(I::template srl<16>(x), I::set1(0x8000u)), I::set1(0x7FC0u));
  return I::select(I::gt(ax, I::set1(0x7F800000u)), nan, rounded);
}

template <class I>
inline __attribute__((always_inline)) typename I::R sr_float16_bits(typename I::R x, typename I::R r) {
  using R = typename I::R;
  const R ax = I::and_(x, I::set1(0x7FFFFFFFu));
  const R sign = I::and_(I::template srl<16>(x), I::set1(0x8000u));
  // Normal range: rebias the exponent, add 13 random bits below the kept mantissa, truncate; a carry
  // moves to the next binade, beyond 65504 to infinity (0x7C00, the cap).
  const R normal = I::min(I::template srl<13>(I::add(I::sub(ax, I::set1(0x38000000u)), I::template srl<19>(r))),
                          I::set1(0x7C00u));
  // Subnormal range: significand m (24 bits) in units of 2^-24 is m >> d, d = 126 - exponent.
  const R m = I::or_(I::and_(ax, I::set1(0x007FFFFFu)), I::set1(0x00800000u));
  const R d = I::sub(I::set1(126u), I::template srl<23>(ax));
  const R pre = I::max(I::sub(d, I::set1(31u)), I::set1(0u));  // d > 31: keep 31 bits (see above)
  const R kept = I::min(d, I::set1(31u));
  const R random = I::srlv(r, I::sub(I::set1(32u), kept));
  const R subnormal = I::srlv(I::add(I::srlv(m, pre), random), kept);
  R out = I::select(I::gt(ax, I::set1(0x387FFFFFu)), normal, subnormal);
  const R nan = I::or_(I::set1(0x7E00u), I::and_(I::template srl<13>(ax), I::set1(0x3FFu)));
  out = I::select(I::gt(ax, I::set1(0x7F800000u)), nan, out);
  return I::or_(sign, out);
}

// The common case of a group of lanes, when no lane is a NaN and (float16) none lies strictly between
// 0 and float16's normal range: the same bits as the full formulas above with a third of their work.
// bfloat16: the add and the truncation. float16: the normal range's formula, with |x| raised to 2^-15
// first so that a zero gives 0 (2^-15 rebiases to 0, and 13 random bits never carry out of it).
template <class I>
inline __attribute__((always_inline)) bool sr_common_case(typename I::R ax, bool float16) {
  using R = typename I::R;
  const typename I::M nan = I::gt(ax, I::set1(0x7F800000u));
  if (!float16) return !I::any(nan);
  const R zero = I::set1(0u);
  return !I::any(I::either(nan, I::both(I::gt(ax, zero), I::gt(I::set1(0x38800000u), ax))));
}

template <class I>
inline __attribute__((always_inline)) typename I::R sr_float16_common(typename I::R x, typename I::R ax,
                                                                      typename I::R r) {
  const typename I::R sign = I::and_(I::template srl<16>(x), I::set1(0x8000u));
  const typename I::R raised = I::sub(I::max(ax, I::set1(0x38000000u)), I::set1(0x38000000u));
  return I::or_(sign, I::min(I::template srl<13>(I::add(raised, I::template srl<19>(r))), I::set1(0x7C00u)));
}

// float16 where the ISA converts toward zero in one instruction (F16C, AVX-512): when every lane is 0
// or in [2^-14, 65504), the float32 bits plus 13 random bits, converted toward zero, are the normal
// range's formula (a zero plus them is a float32 subnormal, which converts to a zero of its sign).
template <class O>
concept ConvertsTowardZero = requires(float16* p, typename O::R v) { O::store16_toward_zero(p, v); };

template <class O>
inline __attribute__((always_inline)) bool sr_float16_converts(float16* p, typename O::R v, typename O::I::R r) {
  using I = typename O::I;
  const typename I::R x = I::from_float(v), ax = I::and_(x, I::set1(0x7FFFFFFFu));
  const typename I::M normal = I::both(I::gt(ax, I::set1(0x387FFFFFu)), I::gt(I::set1(0x477FE000u), ax));
  if (!I::all(I::either(normal, I::gt(I::set1(1u), ax)))) return false;
  O::store16_toward_zero(p, I::to_float(I::add(x, I::template srl<19>(r))));
  return true;
}

// O's float lanes v written to p[0 .. W) stochastically rounded, element p[l] drawing the bits of
// index + l. A group whose low 32 index bits would wrap (once in 2^32 elements) goes lane by lane.
template <class O, class P>
inline __attribute__((always_inline)) void stochastic_store(P* p, typename O::R v, std::uint64_t index, SrKey key) {
  using I = typename O::I;
  constexpr bool kFloat16 = std::is_same_v<P, float16>;
  if constexpr (O::W > 1) {
    if (static_cast<std::uint32_t>(index) > 0xFFFFFFFFu - (O::W - 1)) {
      float lanes[O::W];
      O::store(lanes, v);
      for (std::size_t l = 0; l < O::W; ++l) stochastic_store<ScalarVec<float>>(p + l, lanes[l], index + l, key);
      return;
    }
  }
  const typename I::R r = sr_random<I>(index, key), x = I::from_float(v);
  if constexpr (kFloat16 && ConvertsTowardZero<O>) {
    if (sr_float16_converts<O>(p, v, r)) return;
  }
  if constexpr (O::W > 1) {
    const typename I::R ax = I::and_(x, I::set1(0x7FFFFFFFu));
    if (sr_common_case<I>(ax, kFloat16)) {
      if constexpr (kFloat16) {
        I::store_u16(&p->bits, sr_float16_common<I>(x, ax, r));
      } else {
        I::store_u16(&p->bits, I::template srl<16>(I::add(x, I::template srl<16>(r))));
      }
      return;
    }
  }
  if constexpr (kFloat16) {
    I::store_u16(&p->bits, sr_float16_bits<I>(x, r));
  } else {
    I::store_u16(&p->bits, sr_bfloat16_bits<I>(x, r));
  }
}

// The rounding alone over n elements (a test and benchmark hook, kernels.hpp): out[i] = x[i]
// rounded with the bits of element index0 + i.
template <class V, class P>
void stochastic_round_loop(const float* __restrict x, P* __restrict out, std::size_t n, std::uint64_t index0,
                           SrKey key) {
  std::size_t i = 0;
  if constexpr (V::W > 1) {
    for (; i + V::W <= n; i += V::W) stochastic_store<V>(out + i, V::load(x + i), index0 + i, key);
  }
  for (; i < n; ++i) stochastic_store<ScalarVec<float>>(out + i, x[i], index0 + i, key);
}

}  // namespace
}  // namespace adagrad
