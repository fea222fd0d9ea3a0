// FTRL-Proximal (McMahan et al., KDD 2013; TensorFlow's ApplyFtrlV2, Keras's Ftrl), per element in
// the compute type T after the transforms, with n the sum of squared grads, z the linear sum, p = lr_power,
// r(x) = x^(-p) (sqrt(x) when p = -0.5, 1 when p = 0), l2' = l2 + beta / (2 * lr) (Keras's beta):
//   g'  <- g + (2 * l2_shrinkage) * theta                 (only when l2_shrinkage > 0)
//   n'  <- fma(g, g, n)                                     (Adagrad's sum: the raw grad)
//   z   <- z + (g' - ((r(n') - r(n)) / lr) * theta)            [lr * g' - (r(n') - r(n)) * theta]
//   q    = r(n') / lr + 2 * l2'                                [r(n') + (2 * l2') * lr]
//   theta <- |z| > l1 ? (sign(z) * l1 - z) / q : 0             [l1 * lr]
// the brackets: multiply_linear_by_lr. TensorFlow's operation order but for n (TensorFlow: n + g * g).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "adagrad/rules/declare.hpp"

namespace adagrad {

struct FtrlOptions {
  double lr = 1e-3;
  double lr_power = -0.5;
  double l1 = 0.0;
  double l2 = 0.0;
  double l2_shrinkage = 0.0;
  double beta = 0.0;
  bool multiply_linear_by_lr = false;
  bool operator==(const FtrlOptions&) const = default;
};

// How r(x) = x^(-lr_power) is taken: a correctly rounded root, the constant 1, or libm's pow.
enum class FtrlPower : std::uint8_t { sqrt, one, pow };

template <class T>
struct FtrlCoeffs {
  T lr, l1, two_l2, two_l2_shrinkage;
  double exponent;  // -lr_power, for libm's pow in double
  FtrlPower power;
  bool shrinkage, by_lr;
};

struct FtrlRule {
  using Options = FtrlOptions;
  template <class T>
  using Coeffs = FtrlCoeffs<T>;
  static constexpr const char* kName = "ftrl";
  static constexpr auto kOptions = std::to_array<OptionField<Options>>({
      {.name = "lr", .check = Check::positive, .real = &Options::lr},
      {.name = "lr_power", .check = Check::non_positive, .real = &Options::lr_power},
      {.name = "l1", .check = Check::non_negative, .real = &Options::l1},
      {.name = "l2", .check = Check::non_negative, .real = &Options::l2},
      {.name = "l2_shrinkage", .check = Check::non_negative, .real = &Options::l2_shrinkage},
      {.name = "beta", .check = Check::non_negative, .real = &Options::beta},
      {.name = "multiply_linear_by_lr", .check = Check::flag, .flag = &Options::multiply_linear_by_lr},
  });
  static constexpr auto kStates =
      std::to_array<StateSpec>({{"n", "accumulator", "accumulator", "accumulator of "}, {"z", "linear", "linear", "linear of "}});
  static constexpr bool kRowwise = false;
  static constexpr bool kDecayCounts = false;

  // The constants in T, as Keras hands them to TensorFlow's op: l2' = l2 + beta / (2 * lr), then 2 * l2'
  // (times lr with multiply_linear_by_lr, and l1 * lr), each product rounded in T.
  template <class T>
  static Coeffs<T> coeffs(const Options& o, std::int64_t) {
    const T lr = static_cast<T>(o.lr), two = T(2);
    T l2 = static_cast<T>(o.l2);
    if (o.beta > 0.0) l2 = l2 + static_cast<T>(o.beta) / (two * lr);
    T l1 = static_cast<T>(o.l1), two_l2 = two * l2;
    if (o.multiply_linear_by_lr) {
      l1 = l1 * lr;
      two_l2 = two_l2 * lr;
    }
    const FtrlPower power = o.lr_power == -0.5 ? FtrlPower::sqrt : o.lr_power == 0.0 ? FtrlPower::one : FtrlPower::pow;
    const T two_l2_shrinkage = two * static_cast<T>(o.l2_shrinkage);
    return {lr, l1, two_l2, two_l2_shrinkage, -o.lr_power, power, o.l2_shrinkage > 0.0, o.multiply_linear_by_lr};
  }

  template <class O>
  struct Lanes {
    typename O::R lr, l1, two_l2, two_l2_shrinkage, zero, one;
    double exponent;
    FtrlPower power;
    bool shrinkage, by_lr;
    explicit Lanes(const Coeffs<typename O::T>& c)
        : lr(O::set1(c.lr)),
          l1(O::set1(c.l1)),
          two_l2(O::set1(c.two_l2)),
          two_l2_shrinkage(O::set1(c.two_l2_shrinkage)),
          zero(O::set1(typename O::T(0))),
          one(O::set1(typename O::T(1))),
          exponent(c.exponent),
          power(c.power),
          shrinkage(c.shrinkage),
          by_lr(c.by_lr) {}
  };

  // x^exponent lane by lane through libm's pow in double, rounded once to T: the reference calls the
  // same function (math.pow), so every ISA and the reference agree on one machine's libm.
  template <class O>
  static typename O::R pow_lanes(typename O::R x, double exponent) {
    using T = typename O::T;
    alignas(64) T v[O::W];
    O::store(v, x);
    for (std::size_t i = 0; i < O::W; ++i) v[i] = static_cast<T>(std::pow(static_cast<double>(v[i]), exponent));
    return O::load(v);
  }

  template <class O>
  static inline __attribute__((always_inline)) typename O::R root(typename O::R x, const Lanes<O>& k) {
    if (k.power == FtrlPower::sqrt) return O::sqrt(x);
    if (k.power == FtrlPower::one) return k.one;
    return pow_lanes<O>(x, k.exponent);
  }

  // The weight without a select: shrunk = max(|z| - l1, 0) (a NaN z stays NaN), w = shrunk / q, then
  // max(w, 0) turns 0 / 0 (q = 0, shrunk = 0) and a NaN z into 0, as TensorFlow's |z| > l1 select does;
  // -copysign(w, z) + 0 is (sign(z) * l1 - z) / q with a +0 where TensorFlow writes its 0.
  template <class O>
  static inline __attribute__((always_inline)) void apply(typename O::R& p, typename O::R g, typename O::R* s,
                                                          const Lanes<O>& k) {
    typename O::R gs = g;
    if (k.shrinkage) gs = O::add(g, O::mul(k.two_l2_shrinkage, p));
    const typename O::R n = O::fmadd(g, g, s[0]);
    const typename O::R root_old = root<O>(s[0], k), root_new = root<O>(n, k);
    const typename O::R step = O::sub(root_new, root_old);
    typename O::R q;
    if (k.by_lr) {
      s[1] = O::add(s[1], O::sub(O::mul(gs, k.lr), O::mul(step, p)));
      q = O::add(root_new, k.two_l2);
    } else {
      s[1] = O::add(s[1], O::sub(gs, O::mul(O::div(step, k.lr), p)));
      q = O::add(O::div(root_new, k.lr), k.two_l2);
    }
    s[0] = n;
    const typename O::R shrunk = O::max(k.zero, O::sub(O::abs(s[1]), k.l1));
    const typename O::R w = O::max(O::div(shrunk, q), k.zero);
    p = O::add(O::neg(O::copysign(w, s[1])), k.zero);
  }
};

}  // namespace adagrad
