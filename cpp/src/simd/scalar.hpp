// Scalar "vector" of width 1: the baseline kernel and every kernel's tail use it.
// Everything in an ISA translation unit lives in an anonymous namespace, so that code compiled
// with AVX flags can never be merged by the linker into the baseline path (one-definition trap).
#pragma once

#include <cstddef>
#include <cstdint>

#include "adagrad/half.hpp"

namespace adagrad {
namespace {

// 32-bit unsigned integer lanes, the integer half of every ISA's registers (stochastic_round.inl):
// one lane here. Compare results are masks (all ones or zero); signed compares and min / max take
// lanes below 2^31 where it matters.
struct ScalarU32 {
  using R = std::uint32_t;
  using M = bool;
  static constexpr std::size_t W = 1;
  static R set1(std::uint32_t v) { return v; }
  static R iota() { return 0; }
  static R from_float(float f) { return float_bits(f); }
  static R add(R a, R b) { return a + b; }
  static R sub(R a, R b) { return a - b; }
  static R mul(R a, R b) { return a * b; }
  static R xor_(R a, R b) { return a ^ b; }
  static R and_(R a, R b) { return a & b; }
  static R or_(R a, R b) { return a | b; }
  template <int N>
  static R srl(R a) { return a >> N; }
  static R srlv(R a, R n) { return n > 31 ? 0 : a >> n; }  // as the vector instructions: 0 beyond 31
  static R min(R a, R b) { return static_cast<std::int32_t>(a) < static_cast<std::int32_t>(b) ? a : b; }
  static R max(R a, R b) { return static_cast<std::int32_t>(a) > static_cast<std::int32_t>(b) ? a : b; }
  static M gt(R a, R b) { return static_cast<std::int32_t>(a) > static_cast<std::int32_t>(b); }
  static R select(M m, R a, R b) { return m ? a : b; }
  static M both(M a, M b) { return a && b; }
  static M either(M a, M b) { return a || b; }
  static bool any(M m) { return m; }
  static bool all(M m) { return m; }
  static void store_u16(std::uint16_t* p, R v) { *p = static_cast<std::uint16_t>(v); }
};

template <class Scalar>
struct ScalarVec {
  using T = Scalar;
  using R = Scalar;
  using I = ScalarU32;
  static constexpr std::size_t W = 1;
  static R load(const T* p) { return *p; }
  static void store(T* p, R v) { *p = v; }
  static R set1(T v) { return v; }
  static R add(R a, R b) { return a + b; }
  static R sub(R a, R b) { return a - b; }
  static R mul(R a, R b) { return a * b; }
  static R div(R a, R b) { return a / b; }
  static R neg(R a) { return -a; }
  static R sqrt(R a) {
    if constexpr (sizeof(T) == 4) {
      return __builtin_sqrtf(a);
    } else {
      return __builtin_sqrt(a);
    }
  }
  // a * b + c with one rounding: the instruction where the ISA has it, else libm's exact fma.
  static R fmadd(R a, R b, R c) {
    if constexpr (sizeof(T) == 4) {
      return __builtin_fmaf(a, b, c);
    } else {
      return __builtin_fma(a, b, c);
    }
  }
  // x86's max / min semantics on every ISA: the second operand when either is NaN, so that
  // clamp(x) = min(hi, max(lo, x)) keeps a NaN x as it is.
  static R max(R a, R b) { return a > b ? a : b; }
  static R min(R a, R b) { return a < b ? a : b; }
  static R abs(R a) {
    if constexpr (sizeof(T) == 4) {
      return __builtin_fabsf(a);
    } else {
      return __builtin_fabs(a);
    }
  }
  // |a| with the sign of b.
  static R copysign(R a, R b) {
    if constexpr (sizeof(T) == 4) {
      return __builtin_copysignf(a, b);
    } else {
      return __builtin_copysign(a, b);
    }
  }
  // double lanes only: W floats widened (exact), and a double rounded to float and back.
  static R load_f32(const float* p) { return static_cast<R>(*p); }
  static R round_to_f32(R a) { return static_cast<R>(static_cast<float>(a)); }
  // float lanes only: a 16-bit element widened (exact), a float narrowed (half.hpp).
  static R load16(const float16* p) { return widen(*p); }
  static R load16(const bfloat16* p) { return widen(*p); }
  static void store16(float16* p, R v) { *p = narrow_f16(v); }
  static void store16(bfloat16* p, R v) { *p = narrow_bf16(v); }
};

}  // namespace
}  // namespace adagrad
