// The floating-point environment every kernel runs in: round to nearest, subnormals kept (no
// flush-to-zero, no denormals-are-zero), every exception masked. The caller's (a rounding mode set
// with fesetround, torch.set_flush_denormal(True), a worker thread that inherited either) is put
// back when the scope ends. Without it a step's bits would depend on the caller's settings and on
// which thread ran which rows (docs/faults.md).
#pragma once

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#elif !defined(__aarch64__)
#include <cfenv>
#endif

namespace adagrad {

class KernelFpEnvironment {
 public:
  KernelFpEnvironment() : saved_(read()) {
    const Word wanted = kernel_word(saved_);
    changed_ = wanted != saved_;
    if (changed_) write(wanted);
  }
  ~KernelFpEnvironment() {
    if (changed_) write(saved_);
  }
  KernelFpEnvironment(const KernelFpEnvironment&) = delete;
  KernelFpEnvironment& operator=(const KernelFpEnvironment&) = delete;

 private:
#if defined(__x86_64__) || defined(__i386__)
  // MXCSR: DAZ bit 6, exception masks bits 7-12, rounding control bits 13-14, FTZ bit 15. The
  // exception flags (bits 0-5) are left as they are.
  using Word = std::uint32_t;
  static Word read() { return _mm_getcsr(); }
  static void write(Word w) { _mm_setcsr(w); }
  static Word kernel_word(Word w) {
    constexpr Word kDaz = 1u << 6, kMasks = 0x3Fu << 7, kRounding = 3u << 13, kFtz = 1u << 15;
    return (w & ~(kDaz | kRounding | kFtz)) | kMasks;
  }
#elif defined(__aarch64__)
  // FPCR: FIZ bit 0, AH bit 1, NEP bit 2 (FEAT_AFP), trap enables bits 8-12 and 15, FZ16 bit 19,
  // RMode bits 22-23, FZ bit 24, DN bit 25, AHP bit 26: all cleared (IEEE behaviour, nearest).
  using Word = std::uint64_t;
  static Word read() {
    Word w;
    asm volatile("mrs %0, fpcr" : "=r"(w));
    return w;
  }
  static void write(Word w) { asm volatile("msr fpcr, %0" : : "r"(w)); }
  static Word kernel_word(Word w) {
    constexpr Word kCleared = 0x7u | (0x1Fu << 8) | (1u << 15) | (1u << 19) | (3u << 22) | (1u << 24) | (1u << 25) |
                              (1u << 26);
    return w & ~kCleared;
  }
#else
  // Elsewhere the rounding mode alone, through <cfenv>.
  using Word = int;
  static Word read() { return std::fegetround(); }
  static void write(Word w) { std::fesetround(w); }
  static Word kernel_word(Word) { return FE_TONEAREST; }
#endif
  Word saved_;
  bool changed_;
};

}  // namespace adagrad
