// Every rule, in one list. The kernel tables (kernels.hpp) hold one entry per rule in this order,
// records name a rule by its kName (cpp/bindings/record.cpp), and the options and coefficients of a
// step are one of the rules' (the variants below). A new rule: its header, and its line in Rules.
#pragma once

#include <algorithm>
#include <cstddef>
#include <variant>

#include "adagrad/rules/adagrad.hpp"
#include "adagrad/rules/adagrad_decay.hpp"
#include "adagrad/rules/dual_averaging.hpp"
#include "adagrad/rules/ftrl.hpp"
#include "adagrad/rules/proximal.hpp"
#include "adagrad/rules/stream.hpp"

namespace adagrad {

template <class... R>
struct RuleList {
  static constexpr int kCount = sizeof...(R);
  static constexpr std::size_t kMaxStates = std::max({R::kStates.size()...});
  using Options = std::variant<typename R::Options...>;
  template <class T>
  using Coeffs = std::variant<typename R::template Coeffs<T>...>;

  // f(Rule{}) for the rule at `index` (of this list); nothing for an index beyond it.
  template <class F>
  static void visit(int index, F&& f) {
    int i = 0;
    ((i++ == index ? (f(R{}), 0) : 0), ...);
  }

  // The rule's index in this list.
  template <class Rule>
  static constexpr int index_of() {
    int i = 0, found = -1;
    ((std::is_same_v<Rule, R> ? (found = i, ++i) : ++i), ...);
    return found;
  }
};

// StreamRule last: the benchmarks' ceiling, not a rule a record may name.
using Rules = RuleList<AdagradRule, ProximalRule, DualAveragingRule, AdagradDecayRule, FtrlRule, StreamRule>;
constexpr int kRuleCount = Rules::kCount;
constexpr std::size_t kMaxStates = Rules::kMaxStates;
using RuleOptions = Rules::Options;  // the alternative at a rule's index is its Options
template <class T>
using RuleCoeffs = Rules::Coeffs<T>;

template <class Rule>
constexpr int rule_index = Rules::index_of<Rule>();

}  // namespace adagrad
