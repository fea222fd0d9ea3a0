#include "adagrad/dispatch.hpp"

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
// __builtin_cpu_supports also checks that the OS saves the wide registers (XGETBV).
bool cpu_has_avx2_fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif
#if defined(ADAGRAD_HAVE_AVX512)
bool cpu_has_avx512f() { return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f"); }
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
