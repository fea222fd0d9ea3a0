// AArch64 NEON registers: 4 floats or 2 doubles (vdivq / vsqrtq are AArch64, correctly rounded).
#pragma once

#include <arm_neon.h>

#include <cstddef>

namespace adagrad {
namespace {

struct NeonF32 {
  using T = float;
  using R = float32x4_t;
  static constexpr std::size_t W = 4;
  static R load(const T* p) { return vld1q_f32(p); }
  static void store(T* p, R v) { vst1q_f32(p, v); }
  static R set1(T v) { return vdupq_n_f32(v); }
  static R add(R a, R b) { return vaddq_f32(a, b); }
  static R sub(R a, R b) { return vsubq_f32(a, b); }
  static R mul(R a, R b) { return vmulq_f32(a, b); }
  static R div(R a, R b) { return vdivq_f32(a, b); }
  static R neg(R a) { return vnegq_f32(a); }
  static R sqrt(R a) { return vsqrtq_f32(a); }
  static R fmadd(R a, R b, R c) { return vfmaq_f32(c, a, b); }  // c + a * b, fused
  // x86's semantics (b when either is NaN), by compare and select: vmaxq returns NaN when either is.
  static R max(R a, R b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
  static R min(R a, R b) { return vbslq_f32(vcltq_f32(a, b), a, b); }
  static R abs(R a) { return vabsq_f32(a); }
  static R copysign(R a, R b) { return vbslq_f32(vdupq_n_u32(0x80000000u), b, a); }
};

struct NeonF64 {
  using T = double;
  using R = float64x2_t;
  static constexpr std::size_t W = 2;
  static R load(const T* p) { return vld1q_f64(p); }
  static void store(T* p, R v) { vst1q_f64(p, v); }
  static R set1(T v) { return vdupq_n_f64(v); }
  static R add(R a, R b) { return vaddq_f64(a, b); }
  static R sub(R a, R b) { return vsubq_f64(a, b); }
  static R mul(R a, R b) { return vmulq_f64(a, b); }
  static R div(R a, R b) { return vdivq_f64(a, b); }
  static R neg(R a) { return vnegq_f64(a); }
  static R sqrt(R a) { return vsqrtq_f64(a); }
  static R fmadd(R a, R b, R c) { return vfmaq_f64(c, a, b); }
  static R max(R a, R b) { return vbslq_f64(vcgtq_f64(a, b), a, b); }
  static R min(R a, R b) { return vbslq_f64(vcltq_f64(a, b), a, b); }
  static R abs(R a) { return vabsq_f64(a); }
  static R copysign(R a, R b) { return vbslq_f64(vdupq_n_u64(0x8000000000000000ull), b, a); }
  static R load_f32(const float* p) { return vcvt_f64_f32(vld1_f32(p)); }
  static R round_to_f32(R a) { return vcvt_f64_f32(vcvt_f32_f64(a)); }
};

}  // namespace
}  // namespace adagrad
