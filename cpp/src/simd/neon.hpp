// AArch64 NEON registers: 4 floats or 2 doubles (vdivq / vsqrtq are AArch64, correctly rounded).
#pragma once

#include <arm_neon.h>

#include <cstddef>
#include <cstdint>

#include "adagrad/half.hpp"

namespace adagrad {
namespace {

// 4 lanes of uint32 (scalar.hpp, ScalarU32, says what each operation means).
struct NeonU32 {
  using R = uint32x4_t;
  using M = uint32x4_t;
  static constexpr std::size_t W = 4;
  static R set1(std::uint32_t v) { return vdupq_n_u32(v); }
  static R iota() {
    static constexpr std::uint32_t kLanes[4] = {0, 1, 2, 3};
    return vld1q_u32(kLanes);
  }
  static R from_float(float32x4_t f) { return vreinterpretq_u32_f32(f); }
  static R add(R a, R b) { return vaddq_u32(a, b); }
  static R sub(R a, R b) { return vsubq_u32(a, b); }
  static R mul(R a, R b) { return vmulq_u32(a, b); }
  static R xor_(R a, R b) { return veorq_u32(a, b); }
  static R and_(R a, R b) { return vandq_u32(a, b); }
  static R or_(R a, R b) { return vorrq_u32(a, b); }
  template <int N>
  static R srl(R a) { return vshrq_n_u32(a, N); }
  // USHL by a negative count shifts right; by -32 or less it gives 0, as x86's srlv beyond 31.
  static R srlv(R a, R n) { return vshlq_u32(a, vnegq_s32(vreinterpretq_s32_u32(n))); }
  static R min(R a, R b) { return vreinterpretq_u32_s32(vminq_s32(vreinterpretq_s32_u32(a), vreinterpretq_s32_u32(b))); }
  static R max(R a, R b) { return vreinterpretq_u32_s32(vmaxq_s32(vreinterpretq_s32_u32(a), vreinterpretq_s32_u32(b))); }
  static M gt(R a, R b) { return vcgtq_s32(vreinterpretq_s32_u32(a), vreinterpretq_s32_u32(b)); }
  static R select(M m, R a, R b) { return vbslq_u32(m, a, b); }
  static M both(M a, M b) { return vandq_u32(a, b); }
  static M either(M a, M b) { return vorrq_u32(a, b); }
  static bool any(M m) { return vmaxvq_u32(m) != 0; }
  static bool all(M m) { return vminvq_u32(m) != 0; }
  static void store_u16(std::uint16_t* p, R v) { vst1_u16(p, vmovn_u32(v)); }
};

struct NeonF32 {
  using T = float;
  using R = float32x4_t;
  using I = NeonU32;
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
  static R copysign(R a, R b) { return vbslq_f32(vdupq_n_u32(0x80000000u), b, a); }  // 16-bit storage (half.hpp): float16 by FCVT (round to nearest even under the default FPCR),
  // bfloat16 by integer ops, the same bits as the scalar path.
  static R load16(const float16* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(&p->bits))); }
  static void store16(float16* p, R v) { vst1_u16(&p->bits, vreinterpret_u16_f16(vcvt_f16_f32(v))); }
  static R load16(const bfloat16* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(&p->bits), 16)); }
  static void store16(bfloat16* p, R v) {
    const uint32x4_t x = vreinterpretq_u32_f32(v);
    const uint32x4_t odd = vandq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(1));
    uint32x4_t r = vshrq_n_u32(vaddq_u32(x, vaddq_u32(odd, vdupq_n_u32(0x7FFF))), 16);
    const uint32x4_t nan = vorrq_u32(vandq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(0x8000)), vdupq_n_u32(0x7FC0));
    r = vbslq_u32(vmvnq_u32(vceqq_f32(v, v)), nan, r);
    vst1_u16(&p->bits, vmovn_u32(r));
  }
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
