// AVX-512F registers: 16 floats or 8 doubles. Included only by kernels_avx512.cpp.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace adagrad {
namespace {

struct Avx512F32 {
  using T = float;
  using R = __m512;
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
  // Bit select (0xCA: mask ? b : a, the sign bit from b) in the integer domain, as neg: AVX512F alone.
  static R copysign(R a, R b) {
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_set1_epi32(INT32_MIN), _mm512_castps_si512(b),
                                                         _mm512_castps_si512(a), 0xCA));
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
