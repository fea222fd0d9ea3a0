// The options of one update: the rule's (one of the registry's Options) and the transforms'; and the
// constants a kernel computes with, made from them once per call.
#pragma once

#include <cstddef>
#include <cstdint>

#include "adagrad/kernels.hpp"
#include "adagrad/rules/registry.hpp"
#include "adagrad/transforms.hpp"

namespace adagrad {

struct StepOptions {
  RuleOptions rule;  // the alternative is the rule (its index in registry.hpp's Rules)
  TransformOptions transform;
  // torch's fused CPU kernel with a 16-bit param (docs/semantics.md section 6), for the torch adapter's
  // Adagrad: its vector body rounds clr, eps and weight_decay to the param's dtype, its scalar tail
  // (the last n % width elements, width = torch's vector length for that dtype) does not. 0: no
  // element does (the contract of the NumPy API: the constants rounded once, to float32).
  std::size_t narrowed_constants_width = 0;
  int rule_index() const { return static_cast<int>(rule.index()); }
};

// The kernel's constants for these options at this step (the 1-based number of the update), in the
// compute type T. The clip switch is on only where the clip, computed in T, can change a grad (a
// norm within its bound costs nothing).
template <class T>
Coeffs<T> coeffs_of(const StepOptions& options, std::int64_t step);

// Whether a call's constants select the kernels compiled for the plain case (kernels.hpp,
// PairKernels): no loss scale, no clip that applies, no maximize, no stochastic rounding, and the
// rule's own switches at its plain() values (rules/*.hpp), for rules that declare one.
template <class T>
bool is_plain(const Coeffs<T>& c);

// Throws std::invalid_argument naming the option unless a real value passes its check (declare.hpp;
// not for Check::flag or Check::positive_int, which are types, checked where the values are read).
void check_real_option(double value, Check check, const char* name);

}  // namespace adagrad
