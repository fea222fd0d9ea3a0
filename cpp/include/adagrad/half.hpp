// The 16-bit storage formats, IEEE binary16 (float16) and bfloat16, and their exact scalar
// conversions to and from float32, the type they are computed in (docs/semantics.md section 6).
// Widening is exact. Narrowing rounds to nearest, ties to even, subnormals kept (no flush), and
// overflows to infinity; a NaN stays a quiet NaN of the same sign (bfloat16: 0x7FC0 with the sign,
// as ml_dtypes and Eigen write it; float16: the quiet bit and the top payload bits, as F16C and
// AArch64's FCVT write it). Every ISA's vector conversions give these same bits (simd/*.hpp).
#pragma once

#include <cstdint>
#include <cstring>

namespace adagrad {

struct float16 {
  std::uint16_t bits;
};
struct bfloat16 {
  std::uint16_t bits;
};

// The type a storage type is computed in: float for the 16-bit formats, itself otherwise.
template <class T>
struct compute_type {
  using type = T;
};
template <>
struct compute_type<float16> {
  using type = float;
};
template <>
struct compute_type<bfloat16> {
  using type = float;
};
template <class T>
using compute_t = typename compute_type<T>::type;

template <class T>
constexpr bool is_16bit_storage = sizeof(T) == 2;

// In an unnamed namespace: each translation unit (the per-ISA kernels among them) has its own copy,
// so the linker can never hand the baseline path one compiled with AVX flags.
namespace {

inline std::uint32_t float_bits(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  return x;
}

inline float bits_float(std::uint32_t x) {
  float f;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

inline float widen(bfloat16 h) { return bits_float(static_cast<std::uint32_t>(h.bits) << 16); }

inline bfloat16 narrow_bf16(float f) {
  const std::uint32_t x = float_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return {static_cast<std::uint16_t>(((x >> 16) & 0x8000u) | 0x7FC0u)};
  // Adding 0x7FFF plus the kept part's lowest bit rounds half to even; a carry moves the exponent.
  return {static_cast<std::uint16_t>((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16)};
}

inline float widen(float16 h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
  const std::uint32_t exponent = (h.bits >> 10) & 0x1Fu, mantissa = h.bits & 0x3FFu;
  if (exponent == 0x1F) return bits_float(sign | 0x7F800000u | (mantissa << 13));
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in float
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-08f;
    return bits_float(sign | float_bits(magnitude));
  }
  return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

inline float16 narrow_f16(float f) {
  const std::uint32_t x = float_bits(f);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t ax = x & 0x7FFFFFFFu;
  if (ax > 0x7F800000u) return {static_cast<std::uint16_t>(sign | 0x7E00u | ((ax >> 13) & 0x3FFu))};
  if (ax >= 0x477FF000u) return {static_cast<std::uint16_t>(sign | 0x7C00u)};  // >= 65520: infinity
  if (ax >= 0x38800000u) {  // a normal float16 (>= 2^-14): rebias, then round half to even
    return {static_cast<std::uint16_t>(sign | ((ax - 0x38000000u + 0x0FFFu + ((ax >> 13) & 1u)) >> 13))};
  }
  // A float16 subnormal (or 0): the significand in units of 2^-24, rounded half to even.
  const std::uint32_t exponent = ax >> 23;
  if (exponent < 102) return {sign};  // below 2^-25: rounds to zero (a tie at 2^-25 goes to even 0)
  const std::uint32_t significand = (ax & 0x7FFFFFu) | 0x800000u;
  const std::uint32_t shift = 126 - exponent;  // 14..24
  const std::uint32_t kept = significand >> shift, rest = significand & ((1u << shift) - 1);
  const std::uint32_t half = 1u << (shift - 1);
  const std::uint32_t rounded = kept + ((rest > half || (rest == half && (kept & 1u))) ? 1u : 0u);
  return {static_cast<std::uint16_t>(sign | rounded)};
}

inline float16 narrow(float f, float16) { return narrow_f16(f); }
inline bfloat16 narrow(float f, bfloat16) { return narrow_bf16(f); }

// One element of storage S in the compute type T, and back: a 16-bit format widened (exact) and
// narrowed to nearest even, the other types as they are.
template <class T, class S>
inline T to_compute(S x) {
  if constexpr (is_16bit_storage<S>) {
    return widen(x);
  } else {
    return static_cast<T>(x);
  }
}

template <class S, class T>
inline S to_storage(T x) {
  if constexpr (is_16bit_storage<S>) {
    return narrow(x, S{});
  } else {
    return static_cast<S>(x);
  }
}

}  // namespace

}  // namespace adagrad
