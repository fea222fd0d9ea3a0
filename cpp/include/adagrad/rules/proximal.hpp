// Proximal Adagrad (composite mirror descent; docs/semantics.md section 4, TensorFlow's
// ApplyProximalAdagrad), per element in the compute type T after the transforms:
//   s     <- fma(g, g, s)
//   eta   <- lr / (sqrt(s) + eps)                     (no addition at eps = 0: TensorFlow's maths)
//   v     <- fma(-eta, g, theta)
//   v     <- copysign(max(fma(-eta, l1, |v|), 0), v)      if l1 > 0 (TensorFlow skips it at l1 = 0)
//   theta <- v / fma(eta, l2, 1)
#pragma once

#include <array>
#include <cstdint>

#include "adagrad/rules/declare.hpp"

namespace adagrad {

struct ProximalOptions {
  double lr = 1e-2;
  double l1 = 0.0;
  double l2 = 0.0;
  double eps = 0.0;
  bool operator==(const ProximalOptions&) const = default;
};

template <class T>
struct ProximalCoeffs {
  T lr, l1, l2, eps;
  bool shrink;    // l1 > 0
  bool with_eps;  // eps > 0
};

struct ProximalRule {
  using Options = ProximalOptions;
  template <class T>
  using Coeffs = ProximalCoeffs<T>;
  static constexpr const char* kName = "proximal";
  static constexpr auto kOptions = std::to_array<OptionField<Options>>({
      {.name = "lr", .check = Check::non_negative, .real = &Options::lr},
      {.name = "l1", .check = Check::non_negative, .real = &Options::l1},
      {.name = "l2", .check = Check::non_negative, .real = &Options::l2},
      {.name = "eps", .check = Check::non_negative, .real = &Options::eps},
  });
  static constexpr auto kStates = std::to_array<StateSpec>({{"sum", "state_sum", "state", "state sum of "}});
  static constexpr bool kRowwise = false;
  static constexpr bool kDecayCounts = false;

  template <class T>
  static Coeffs<T> coeffs(const Options& o, std::int64_t) {
    return {static_cast<T>(o.lr), static_cast<T>(o.l1), static_cast<T>(o.l2), static_cast<T>(o.eps), o.l1 > 0.0,
            o.eps > 0.0};
  }

  template <class O>
  struct Lanes {
    typename O::R lr, l1, l2, eps, zero, one;
    bool shrink, with_eps;
    explicit Lanes(const Coeffs<typename O::T>& c)
        : lr(O::set1(c.lr)),
          l1(O::set1(c.l1)),
          l2(O::set1(c.l2)),
          eps(O::set1(c.eps)),
          zero(O::set1(typename O::T(0))),
          one(O::set1(typename O::T(1))),
          shrink(c.shrink),
          with_eps(c.with_eps) {}
  };

  // max(0, x) is written max(zero, x): x86's max gives its second operand when either is NaN, so a
  // NaN stays NaN (SimdOps::max on every ISA).
  template <class O>
  static inline __attribute__((always_inline)) void apply(typename O::R& p, typename O::R g, typename O::R* s,
                                                          const Lanes<O>& k) {
    s[0] = O::fmadd(g, g, s[0]);
    typename O::R root = O::sqrt(s[0]);
    if (k.with_eps) root = O::add(root, k.eps);
    const typename O::R eta = O::div(k.lr, root);
    const typename O::R minus_eta = O::neg(eta);
    typename O::R v = O::fmadd(minus_eta, g, p);
    if (k.shrink) v = O::copysign(O::max(k.zero, O::fmadd(minus_eta, k.l1, O::abs(v))), v);
    p = O::div(v, O::fmadd(eta, k.l2, k.one));
  }
};

}  // namespace adagrad
