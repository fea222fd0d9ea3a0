// AVX2 + FMA registers: 8 floats or 4 doubles. Included only by kernels_avx2.cpp / kernels_avx512.cpp.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "adagrad/half.hpp"

namespace adagrad {
namespace {

// 8 lanes of uint32 (scalar.hpp, ScalarU32, says what each operation means).
struct Avx2U32 {
  using R = __m256i;
  using M = __m256i;
  static constexpr std::size_t W = 8;
  static R set1(std::uint32_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }
  static R iota() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
  static R from_float(__m256 f) { return _mm256_castps_si256(f); }
  static __m256 to_float(R v) { return _mm256_castsi256_ps(v); }
  static R add(R a, R b) { return _mm256_add_epi32(a, b); }
  static R sub(R a, R b) { return _mm256_sub_epi32(a, b); }
  static R mul(R a, R b) { return _mm256_mullo_epi32(a, b); }
  static R xor_(R a, R b) { return _mm256_xor_si256(a, b); }
  static R and_(R a, R b) { return _mm256_and_si256(a, b); }
  static R or_(R a, R b) { return _mm256_or_si256(a, b); }
  template <int N>
  static R srl(R a) { return _mm256_srli_epi32(a, N); }
  static R srlv(R a, R n) { return _mm256_srlv_epi32(a, n); }
  static R min(R a, R b) { return _mm256_min_epi32(a, b); }
  static R max(R a, R b) { return _mm256_max_epi32(a, b); }
  static M gt(R a, R b) { return _mm256_cmpgt_epi32(a, b); }
  static R select(M m, R a, R b) { return _mm256_blendv_epi8(b, a, m); }
  static M both(M a, M b) { return _mm256_and_si256(a, b); }
  static M either(M a, M b) { return _mm256_or_si256(a, b); }
  static bool any(M m) { return !_mm256_testz_si256(m, m); }
  static bool all(M m) { return _mm256_movemask_ps(_mm256_castsi256_ps(m)) == 0xFF; }
  // Every lane below 2^16: the saturating pack is exact; it packs within 128-bit halves.
  static void store_u16(std::uint16_t* p, R v) {
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(v, v), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
};

struct Avx2F32 {
  using T = float;
  using R = __m256;
  using I = Avx2U32;
  static constexpr std::size_t W = 8;
  static R load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, R v) { _mm256_storeu_ps(p, v); }
  static R set1(T v) { return _mm256_set1_ps(v); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R div(R a, R b) { return _mm256_div_ps(a, b); }
  static R neg(R a) { return _mm256_xor_ps(a, _mm256_set1_ps(-0.0f)); }
  static R sqrt(R a) { return _mm256_sqrt_ps(a); }
  static R fmadd(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }  // b when either is NaN
  static R min(R a, R b) { return _mm256_min_ps(a, b); }
  static R abs(R a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static R copysign(R a, R b) {
    const R sign = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(sign, a), _mm256_and_ps(sign, b));
  }
  // 16-bit storage (half.hpp): float16 by F16C, bfloat16 by integer ops, the same bits as the scalar path.
  static R load16(const float16* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  // float16 rounded toward zero: stochastic rounding's common case, its random bits already added.
  static void store16_toward_zero(float16* p, R v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC));
  }
  static void store16(float16* p, R v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static R load16(const bfloat16* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static void store16(bfloat16* p, R v) {
    const __m256i x = _mm256_castps_si256(v);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7FFF))), 16);
    const __m256i nan = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x8000)),
                                        _mm256_set1_epi32(0x7FC0));
    r = _mm256_blendv_epi8(r, nan, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    I::store_u16(&p->bits, r);
  }
};

struct Avx2F64 {
  using T = double;
  using R = __m256d;
  static constexpr std::size_t W = 4;
  static R load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, R v) { _mm256_storeu_pd(p, v); }
  static R set1(T v) { return _mm256_set1_pd(v); }
  static R add(R a, R b) { return _mm256_add_pd(a, b); }
  static R sub(R a, R b) { return _mm256_sub_pd(a, b); }
  static R mul(R a, R b) { return _mm256_mul_pd(a, b); }
  static R div(R a, R b) { return _mm256_div_pd(a, b); }
  static R neg(R a) { return _mm256_xor_pd(a, _mm256_set1_pd(-0.0)); }
  static R sqrt(R a) { return _mm256_sqrt_pd(a); }
  static R fmadd(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static R max(R a, R b) { return _mm256_max_pd(a, b); }
  static R min(R a, R b) { return _mm256_min_pd(a, b); }
  static R abs(R a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  static R copysign(R a, R b) {
    const R sign = _mm256_set1_pd(-0.0);
    return _mm256_or_pd(_mm256_andnot_pd(sign, a), _mm256_and_pd(sign, b));
  }
  static R load_f32(const float* p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }
  static R round_to_f32(R a) { return _mm256_cvtps_pd(_mm256_cvtpd_ps(a)); }
};

}  // namespace
}  // namespace adagrad
