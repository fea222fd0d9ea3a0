// The benchmarks' memory ceiling, a pseudo-rule: the update's traffic with no arithmetic to speak of
// (read param, grad and sum; write param and sum): s <- s + g, theta <- theta + g. Only the
// benchmark entry points use it (cpp/bindings/register_benchmarks.cpp); records cannot name it.
#pragma once

#include <array>
#include <cstdint>

#include "adagrad/rules/declare.hpp"

namespace adagrad {

struct StreamOptions {
  bool operator==(const StreamOptions&) const = default;
};

template <class T>
struct StreamCoeffs {};

struct StreamRule {
  using Options = StreamOptions;
  template <class T>
  using Coeffs = StreamCoeffs<T>;
  static constexpr const char* kName = "stream";
  static constexpr std::array<OptionField<Options>, 0> kOptions{};
  static constexpr auto kStates = std::to_array<StateSpec>({{"sum", "state_sum", "state", "state sum of "}});
  static constexpr bool kRowwise = false;
  static constexpr bool kDecayCounts = false;

  template <class T>
  static Coeffs<T> coeffs(const Options&, std::int64_t) {
    return {};
  }

  template <class O>
  struct Lanes {
    explicit Lanes(const Coeffs<typename O::T>&) {}
  };

  template <class O>
  static inline __attribute__((always_inline)) void apply(typename O::R& p, typename O::R g, typename O::R* s,
                                                          const Lanes<O>&) {
    s[0] = O::add(s[0], g);
    p = O::add(p, g);
  }
};

}  // namespace adagrad
