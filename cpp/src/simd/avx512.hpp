// AVX-512F registers: 16 floats or 8 doubles. Included only by kernels_avx512.cpp.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "adagrad/half.hpp"

namespace adagrad {
namespace {

// 16 lanes of uint32 (scalar.hpp, ScalarU32, says what each operation means); masks are k registers.
struct Avx512U32 {
  using R = __m512i;
  using M = __mmask16;
  static constexpr std::size_t W = 16;
  static R set1(std::uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }
  static R iota() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  static R from_float(__m512 f) { return _mm512_castps_si512(f); }
  static __m512 to_float(R v) { return _mm512_castsi512_ps(v); }
  static R add(R a, R b) { return _mm512_add_epi32(a, b); }
  static R sub(R a, R b) { return _mm512_sub_epi32(a, b); }
  static R mul(R a, R b) { return _mm512_mullo_epi32(a, b); }
  static R xor_(R a, R b) { return _mm512_xor_si512(a, b); }
  static R and_(R a, R b) { return _mm512_and_si512(a, b); }
  static R or_(R a, R b) { return _mm512_or_si512(a, b); }
  template <int N>
  static R srl(R a) { return _mm512_srli_epi32(a, N); }
  static R srlv(R a, R n) { return _mm512_srlv_epi32(a, n); }
  static R min(R a, R b) { return _mm512_min_epi32(a, b); }
  static R max(R a, R b) { return _mm512_max_epi32(a, b); }
  static M gt(R a, R b) { return _mm512_cmpgt_epi32_mask(a, b); }
  static R select(M m, R a, R b) { return _mm512_mask_blend_epi32(m, b, a); }
  static M both(M a, M b) { return static_cast<M>(a & b); }
  static M either(M a, M b) { return static_cast<M>(a | b); }
  static bool any(M m) { return m != 0; }
  static bool all(M m) { return m == 0xFFFF; }
  static void store_u16(std::uint16_t* p, R v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(v));
  }
};

struct Avx512F32 {
  using T = float;
  using R = __m512;
  using I = Avx512U32;
  static constexpr std::size_t W = 16;
  static R load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, R v) { _mm512_storeu_ps(p, v); }
  static R set1(T v) { return _mm512_set1_ps(v); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R div(R a, R b) { return _mm512_div_ps(a, b); }
  // Sign flip through the integer domain: _mm512_xor_ps needs AVX512DQ, which we do not require.
  static R neg(R a) {
    return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32(INT32_MIN)));
  }
  static R sqrt(R a) { return _mm512_sqrt_ps(a); }
  static R fmadd(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R max(R a, R b) { return _mm512_max_ps(a, b); }  // b when either is NaN
  static R min(R a, R b) { return _mm512_min_ps(a, b); }
  static R abs(R a) { return _mm512_abs_ps(a); }
  // Lanes 8..15 moved to lanes 0..7 (the row-wise sum of squares' 8 canonical lanes, sparse_kernel.inl).
  static R upper_half(R a) { return _mm512_shuffle_f32x4(a, a, _MM_SHUFFLE(1, 0, 3, 2)); }
  // Bit select (0xCA: mask ? b : a, the sign bit from b) in the integer domain, as neg: AVX512F alone.
  static R copysign(R a, R b) {
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_set1_epi32(INT32_MIN), _mm512_castps_si512(b),
                                                         _mm512_castps_si512(a), 0xCA));
  }  // 16-bit storage (half.hpp): float16 by AVX512F's conversions, bfloat16 by integer ops (not
  // AVX512-BF16's VCVTNEPS2BF16, which treats subnormals as zero), the same bits as the scalar path.
  static R load16(const float16* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  // float16 rounded toward zero: stochastic rounding's common case, its random bits already added.
  static void store16_toward_zero(float16* p, R v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC));
  }
  static void store16(float16* p, R v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static R load16(const bfloat16* p) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  }
  static void store16(bfloat16* p, R v) {
    const __m512i x = _mm512_castps_si512(v);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(x, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))), 16);
    const __m512i nan = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x8000)),
                                        _mm512_set1_epi32(0x7FC0));
    r = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), r, nan);
    I::store_u16(&p->bits, r);
  }
};

struct Avx512F64 {
  using T = double;
  using R = __m512d;
  static constexpr std::size_t W = 8;
  static R load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, R v) { _mm512_storeu_pd(p, v); }
  static R set1(T v) { return _mm512_set1_pd(v); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
  static R sub(R a, R b) { return _mm512_sub_pd(a, b); }
  static R mul(R a, R b) { return _mm512_mul_pd(a, b); }
  static R div(R a, R b) { return _mm512_div_pd(a, b); }
  static R neg(R a) {
    return _mm512_castsi512_pd(_mm512_xor_si512(_mm512_castpd_si512(a), _mm512_set1_epi64(INT64_MIN)));
  }
  static R sqrt(R a) { return _mm512_sqrt_pd(a); }
  static R fmadd(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R max(R a, R b) { return _mm512_max_pd(a, b); }
  static R min(R a, R b) { return _mm512_min_pd(a, b); }
  static R abs(R a) { return _mm512_abs_pd(a); }
  static R copysign(R a, R b) {
    return _mm512_castsi512_pd(_mm512_ternarylogic_epi64(_mm512_set1_epi64(INT64_MIN), _mm512_castpd_si512(b),
                                                         _mm512_castpd_si512(a), 0xCA));
  }
  static R load_f32(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }
  static R round_to_f32(R a) { return _mm512_cvtps_pd(_mm512_cvtpd_ps(a)); }
};

}  // namespace
}  // namespace adagrad
