// Adagrad-DA (regularized dual averaging; docs/semantics.md section 4, TensorFlow's ApplyAdagradDA),
// per element in the compute type T after the transforms, with a the sum of gradients:
//   a     <- a + g
//   s     <- fma(g, g, s)
//   theta <- -copysign((lr * max(|a| - l1_step, 0)) / (sqrt(s) + l2_step_lr), a)
// where l1_step = T(step) * l1 and l2_step_lr = l2 * (T(step) * lr), each product rounded in T (as
// TensorFlow's kernel forms them).
#pragma once

#include <array>
#include <cstdint>

#include "adagrad/rules/declare.hpp"

namespace adagrad {

struct DualAveragingOptions {
  double lr = 1e-2;
  double l1 = 0.0;
  double l2 = 0.0;
  bool operator==(const DualAveragingOptions&) const = default;
};

template <class T>
struct DualAveragingCoeffs {
  T lr, l1_step, l2_step_lr;
};

struct DualAveragingRule {
  using Options = DualAveragingOptions;
  template <class T>
  using Coeffs = DualAveragingCoeffs<T>;
  static constexpr const char* kName = "dual_averaging";
  static constexpr auto kOptions = std::to_array<OptionField<Options>>({
      {.name = "lr", .check = Check::non_negative, .real = &Options::lr},
      {.name = "l1", .check = Check::non_negative, .real = &Options::l1},
      {.name = "l2", .check = Check::non_negative, .real = &Options::l2},
  });
  static constexpr auto kStates = std::to_array<StateSpec>({{"grad_sum", "grad_sum", "grad_sum", "grad sum of "},
                                          {"sum", "state_sum", "state", "state sum of "}});
  static constexpr bool kRowwise = false;
  static constexpr bool kDecayCounts = false;

  template <class T>
  static Coeffs<T> coeffs(const Options& o, std::int64_t step) {
    const auto lr = static_cast<T>(o.lr), t = static_cast<T>(step);
    return {lr, t * static_cast<T>(o.l1), static_cast<T>(o.l2) * (t * lr)};
  }

  template <class O>
  struct Lanes {
    typename O::R lr, l1_step, l2_step_lr, zero;
    explicit Lanes(const Coeffs<typename O::T>& c)
        : lr(O::set1(c.lr)),
          l1_step(O::set1(c.l1_step)),
          l2_step_lr(O::set1(c.l2_step_lr)),
          zero(O::set1(typename O::T(0))) {}
  };

  template <class O>
  static inline __attribute__((always_inline)) void apply(typename O::R& p, typename O::R g, typename O::R* s,
                                                          const Lanes<O>& k) {
    s[0] = O::add(s[0], g);
    s[1] = O::fmadd(g, g, s[1]);
    const typename O::R shrunk = O::max(k.zero, O::sub(O::abs(s[0]), k.l1_step));
    const typename O::R denom = O::add(O::sqrt(s[1]), k.l2_step_lr);
    p = O::neg(O::copysign(O::div(O::mul(k.lr, shrunk), denom), s[0]));
  }
};

}  // namespace adagrad
