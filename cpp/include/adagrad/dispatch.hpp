// Which kernel table runs: the best one this CPU supports, picked once at first use,
// or the one named by the environment variable ADAGRAD_ISA, or by set_isa().
#pragma once

#include <string>
#include <vector>

#include "adagrad/kernels.hpp"

namespace adagrad {

std::vector<std::string> compiled_isas();   // built into this binary, worst to best
std::vector<std::string> available_isas();  // compiled and supported by this CPU, worst to best

// The active table. The first call resolves it; throws std::invalid_argument if ADAGRAD_ISA
// names an unknown or unavailable instruction set (and keeps throwing until that is fixed).
const KernelTable& active_kernels();

// Forces a table by name; throws std::invalid_argument for an unknown or unavailable name.
void set_isa(const std::string& name);

}  // namespace adagrad
