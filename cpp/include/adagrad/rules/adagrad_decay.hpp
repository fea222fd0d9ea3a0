// AdagradDecay (DeepRec's AdagradDecayOptimizer): Adagrad whose sums decay every decay_step steps,
// never below their start. By step t (1-based), periods = t / decay_step decays are due; a param's
// (or a table row's) decays not yet taken come first, each its own rounded operation, written to
// the state's storage before the next (decay_sums), then, in the compute type T after the transforms:
//   s     <- fma(g, g, s)
//   theta <- theta - (lr * g) / (sqrt(s) + 0)       (no eps, as DeepRec)
// So a row's sums never depend on when it was last touched: a sparse run gives the bits of a dense
// run that feeds zero gradients to the untouched rows.
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>

#include "adagrad/half.hpp"
#include "adagrad/rules/declare.hpp"

namespace adagrad {

struct AdagradDecayOptions {
  double lr = 1e-2;
  std::int64_t accumulator_decay_step = 100000;
  double accumulator_decay_rate = 0.9;
  double initial_accumulator_value = 0.1;  // the sums' start, and the floor of every decay
  bool operator==(const AdagradDecayOptions&) const = default;
};

template <class T>
struct AdagradDecayCoeffs {
  T lr, rate, floor;
  std::int64_t periods;  // step / accumulator_decay_step: the decays due by this step
};

// In an unnamed namespace: each translation unit (the per-ISA kernels among them) has its own copy,
// so the linker can never hand the baseline path one compiled with AVX flags.
namespace {

// Each of the n sums (storage S, computed in T) decayed `periods` times, s <- max(s * rate, floor),
// each product rounded in T and the result rounded to S, exactly as one decay per period would. A
// sum stops where a decay no longer changes it (the floor, or an infinity): no later decay would.
// Scalar IEEE operations, the same bits on every path.
template <class T, class S>
void decay_sums(S* s, std::size_t n, std::int64_t periods, T rate, T floor) {
  for (std::size_t i = 0; i < n; ++i) {
    T x = to_compute<T>(s[i]);
    for (std::int64_t j = 0; j < periods; ++j) {
      const T product = x * rate;
      const T y = to_compute<T>(to_storage<S>(floor > product ? floor : product));  // x86 max: NaN stays
      if (y == x || x != x) break;
      x = y;
    }
    s[i] = to_storage<S>(x);
  }
}

}  // namespace

struct AdagradDecayRule {
  using Options = AdagradDecayOptions;
  template <class T>
  using Coeffs = AdagradDecayCoeffs<T>;
  static constexpr const char* kName = "adagrad_decay";
  static constexpr auto kOptions = std::to_array<OptionField<Options>>({
      {.name = "lr", .check = Check::non_negative, .real = &Options::lr},
      {.name = "accumulator_decay_step", .check = Check::positive_int, .integer = &Options::accumulator_decay_step},
      {.name = "accumulator_decay_rate", .check = Check::open_unit, .real = &Options::accumulator_decay_rate},
      {.name = "initial_accumulator_value", .check = Check::positive, .real = &Options::initial_accumulator_value},
  });
  static constexpr auto kStates = std::to_array<StateSpec>({{"sum", "state_sum", "state", "state sum of "}});
  static constexpr bool kRowwise = false;
  // The decays each row has had (int64, one per row of a table; one for a whole dense array, or
  // one per row of a 2-D C-order one): the record's state "decay_count".
  static constexpr bool kDecayCounts = true;

  template <class T>
  static Coeffs<T> coeffs(const Options& o, std::int64_t step) {
    return {static_cast<T>(o.lr), static_cast<T>(o.accumulator_decay_rate),
            static_cast<T>(o.initial_accumulator_value), step / o.accumulator_decay_step};
  }

  template <class O>
  struct Lanes {
    typename O::R lr, zero;
    explicit Lanes(const Coeffs<typename O::T>& c) : lr(O::set1(c.lr)), zero(O::set1(typename O::T(0))) {}
  };

  template <class O>
  static inline __attribute__((always_inline)) void apply(typename O::R& p, typename O::R g, typename O::R* s,
                                                          const Lanes<O>& k) {
    s[0] = O::fmadd(g, g, s[0]);
    p = O::sub(p, O::div(O::mul(k.lr, g), O::add(O::sqrt(s[0]), k.zero)));
  }
};

}  // namespace adagrad
