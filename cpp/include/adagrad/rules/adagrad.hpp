// Adagrad (docs/semantics.md section 1), torch's fused CPU kernel's maths, per element in the compute
// type T, each operation rounded once, after the transforms (transforms.hpp):
//   g     <- fma(theta, weight_decay, g)        coupled weight decay
//   theta <- theta * (1 - clr * weight_decay)   decoupled weight decay (the factor rounded once)
//   s     <- fma(g, g, s)
//   theta <- theta - (clr * g) / (sqrt(s) + eps)      or / sqrt(s + eps) with eps inside the root
// with clr = lr / fma(step - 1, lr_decay, 1) computed in double. Row-wise state (one accumulator per
// row of a table, docs/semantics.md section 3) is Adagrad's alone: sparse_kernel.inl, rowwise_row.
#pragma once

#include <cmath>
#include <array>
#include <cstdint>

#include "adagrad/rules/declare.hpp"

namespace adagrad {

enum class WeightDecayMode : int { none = 0, coupled = 1, decoupled = 2 };

struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0.0;
  double weight_decay = 0.0;
  double eps = 1e-10;
  bool decoupled_weight_decay = false;
  bool eps_inside_sqrt = false;
  bool operator==(const AdagradOptions&) const = default;
};

template <class T>
struct AdagradCoeffs {
  T clr, eps;
  T weight_decay;  // coupled: g <- fma(theta, weight_decay, g)
  T decay;         // decoupled: theta <- theta * decay, decay = 1 - clr * weight_decay (in double)
  WeightDecayMode mode;
  bool eps_inside_sqrt;
};

struct AdagradRule {
  using Options = AdagradOptions;
  template <class T>
  using Coeffs = AdagradCoeffs<T>;
  static constexpr const char* kName = "adagrad";
  static constexpr auto kOptions = std::to_array<OptionField<Options>>({
      {.name = "lr", .check = Check::non_negative, .real = &Options::lr},
      {.name = "lr_decay", .check = Check::non_negative, .real = &Options::lr_decay},
      {.name = "weight_decay", .check = Check::non_negative, .real = &Options::weight_decay},
      {.name = "eps", .check = Check::non_negative, .real = &Options::eps},
      {.name = "decoupled_weight_decay", .check = Check::flag, .flag = &Options::decoupled_weight_decay},
      {.name = "eps_inside_sqrt", .check = Check::flag, .flag = &Options::eps_inside_sqrt},
  });
  static constexpr auto kStates = std::to_array<StateSpec>({{"sum", "state_sum", "state", "state sum of "}});
  static constexpr bool kRowwise = true;
  static constexpr bool kDecayCounts = false;

  template <class T>
  static Coeffs<T> coeffs(const Options& o, std::int64_t step) {
    // In double with one fma, as torch's fused CPU kernel does: its source writes
    // 1 + (t - 1) * lr_decay, which GCC contracts to an fma in torch's AVX2 / AVX-512 builds
    // (measured against torch 2.13: lr_decay = 0.1 differs in the last bit from step 8 without it).
    const double clr = o.lr / std::fma(static_cast<double>(step - 1), o.lr_decay, 1.0);
    WeightDecayMode mode = WeightDecayMode::none;
    if (o.weight_decay != 0.0) mode = o.decoupled_weight_decay ? WeightDecayMode::decoupled : WeightDecayMode::coupled;
    return {static_cast<T>(clr), static_cast<T>(o.eps), static_cast<T>(o.weight_decay),
            static_cast<T>(1.0 - clr * o.weight_decay), mode, o.eps_inside_sqrt};
  }

  template <class O>
  struct Lanes {
    typename O::R clr, eps, weight_decay, decay;
    WeightDecayMode mode;
    bool eps_inside_sqrt;
    explicit Lanes(const Coeffs<typename O::T>& c)
        : clr(O::set1(c.clr)),
          eps(O::set1(c.eps)),
          weight_decay(O::set1(c.weight_decay)),
          decay(O::set1(c.decay)),
          mode(c.mode),
          eps_inside_sqrt(c.eps_inside_sqrt) {}
  };

  // The weight decay, in two halves that the row-wise update (sparse_kernel.inl) applies in two
  // passes: the coupled one on the gradient, the decoupled one on the param.
  template <class O>
  static inline __attribute__((always_inline)) typename O::R coupled(typename O::R p, typename O::R g,
                                                                     const Lanes<O>& k) {
    return k.mode == WeightDecayMode::coupled ? O::fmadd(p, k.weight_decay, g) : g;
  }

  template <class O>
  static inline __attribute__((always_inline)) typename O::R decoupled(typename O::R p, const Lanes<O>& k) {
    return k.mode == WeightDecayMode::decoupled ? O::mul(p, k.decay) : p;
  }

  // The common case (no weight decay, eps outside the root) has a kernel compiled on its own: its
  // switches as branches cost up to a quarter of a sparse step (docs/speed.md, "Switches as
  // branches"). The same operations as apply's with those switches.
  template <class T>
  static bool plain(const Coeffs<T>& c) {
    return c.mode == WeightDecayMode::none && !c.eps_inside_sqrt;
  }

  template <class O>
  static inline __attribute__((always_inline)) void apply_plain(typename O::R& p, typename O::R g, typename O::R* s,
                                                                const Lanes<O>& k) {
    s[0] = O::fmadd(g, g, s[0]);
    p = O::sub(p, O::div(O::mul(k.clr, g), O::add(O::sqrt(s[0]), k.eps)));
  }

  template <class O>
  static inline __attribute__((always_inline)) void apply(typename O::R& p, typename O::R g, typename O::R* s,
                                                          const Lanes<O>& k) {
    g = coupled(p, g, k);
    p = decoupled(p, k);
    s[0] = O::fmadd(g, g, s[0]);
    typename O::R denom;
    if (k.eps_inside_sqrt) {
      denom = O::sqrt(O::add(s[0], k.eps));
    } else {
      denom = O::add(O::sqrt(s[0]), k.eps);
    }
    p = O::sub(p, O::div(O::mul(k.clr, g), denom));
  }
};

}  // namespace adagrad
