#include "adagrad/dispatch.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace adagrad {

namespace {

struct IsaEntry {
  const char* name;
  const KernelTable* table;
  bool (*supported)();
};

[[maybe_unused]] bool always() { return true; }

#if defined(ADAGRAD_HAVE_AVX2) || defined(ADAGRAD_HAVE_AVX512)
// CPUID and XGETBV read directly, not __builtin_cpu_supports: that one depends on the compiler's
// runtime (libgcc's __cpu_model, compiler-rt's), and the static compiler-rt of a zig-built wheel
// answers "no" to everything. A feature counts only if the OS also saves its registers (XCR0).
struct X86Features {
  bool avx2_fma = false;
  bool avx512f = false;
};

X86Features read_x86_features() {
  X86Features f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7 || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool fma = (ecx >> 12) & 1, osxsave = (ecx >> 27) & 1, avx = (ecx >> 28) & 1, f16c = (ecx >> 29) & 1;
  if (!osxsave || !avx) return f;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool ymm_saved = (xcr0_lo & 0x6) == 0x6;           // SSE and AVX state
  const bool zmm_saved = (xcr0_lo & 0xe6) == 0xe6;         // and opmask, ZMM0-15 high, ZMM16-31
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  // F16C (float16 conversions) too: every AVX2 CPU made has it; the avx2 kernels use it.
  f.avx2_fma = ymm_saved && fma && f16c && ((ebx >> 5) & 1);
  f.avx512f = f.avx2_fma && zmm_saved && ((ebx >> 16) & 1);
  return f;
}

const X86Features& x86_features() {
  static const X86Features features = read_x86_features();
  return features;
}

[[maybe_unused]] bool cpu_has_avx2_fma() { return x86_features().avx2_fma; }  // unused without AVX2 kernels
#endif
#if defined(ADAGRAD_HAVE_AVX512)
bool cpu_has_avx512f() { return x86_features().avx512f; }
#endif

// Worst to best; the best supported one is the default.
const IsaEntry kIsas[] = {
    {"baseline", &kBaselineKernels, &always},
#if defined(ADAGRAD_HAVE_NEON)
    {"neon", &kNeonKernels, &always},
#endif
#if defined(ADAGRAD_HAVE_AVX2)
    {"avx2", &kAvx2Kernels, &cpu_has_avx2_fma},
#endif
#if defined(ADAGRAD_HAVE_AVX512)
    {"avx512", &kAvx512Kernels, &cpu_has_avx512f},
#endif
};

std::atomic<const KernelTable*> g_active{nullptr};

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

const KernelTable& find_available(const std::string& name, const char* source) {
  for (const auto& isa : kIsas) {
    if (name != isa.name) continue;
    if (!isa.supported()) {
      throw std::invalid_argument(std::string(source) + "'" + name + "' is not supported by this CPU; available: " +
                                  join(available_isas()));
    }
    return *isa.table;
  }
  throw std::invalid_argument(std::string(source) + "'" + name + "' is not a known instruction set; known: " +
                              join(compiled_isas()) + "; available: " + join(available_isas()));
}

const KernelTable& resolve_default() {
  if (const char* forced = std::getenv("ADAGRAD_ISA"); forced != nullptr && *forced != '\0') {
    return find_available(forced, "ADAGRAD_ISA=");
  }
  const KernelTable* best = nullptr;
  for (const auto& isa : kIsas) {
    if (isa.supported()) best = isa.table;
  }
  return *best;
}

}  // namespace

std::vector<std::string> compiled_isas() {
  std::vector<std::string> out;
  for (const auto& isa : kIsas) out.emplace_back(isa.name);
  return out;
}

std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (const auto& isa : kIsas) {
    if (isa.supported()) out.emplace_back(isa.name);
  }
  return out;
}

const KernelTable& active_kernels() {
  const KernelTable* table = g_active.load(std::memory_order_acquire);
  if (table == nullptr) {
    table = &resolve_default();  // throws on a bad ADAGRAD_ISA, leaving nothing cached
    const KernelTable* expected = nullptr;
    if (!g_active.compare_exchange_strong(expected, table, std::memory_order_acq_rel)) table = expected;
  }
  return *table;
}

void set_isa(const std::string& name) { g_active.store(&find_available(name, ""), std::memory_order_release); }

}  // namespace adagrad
