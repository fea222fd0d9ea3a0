// Hyper-parameters of the dense update, and the per-call constants a kernel needs.
// SEMANTICS.md section 1 is the contract; this header holds no ISA code.
#pragma once

#include <cstdint>
#include <string>

namespace adagrad {

enum class WeightDecayMode : int { none = 0, coupled = 1, decoupled = 2 };

// What the user asked for, in double precision, exactly as given.
struct DenseOptions {
  double lr = 1e-2;
  double lr_decay = 0.0;
  double weight_decay = 0.0;
  double eps = 1e-10;
  bool maximize = false;
  bool decoupled_weight_decay = false;
  bool eps_inside_sqrt = false;
};

// Throws std::invalid_argument naming the offending option (non-finite or negative).
void validate(const DenseOptions& options);

// The kernel is instantiated once per combination of the three switches below.
constexpr int kDenseVariants = 12;
constexpr int dense_variant(bool maximize, WeightDecayMode wd, bool eps_inside_sqrt) {
  return (maximize ? 1 : 0) + 2 * static_cast<int>(wd) + 6 * (eps_inside_sqrt ? 1 : 0);
}
constexpr bool variant_maximize(int v) { return v % 2 == 1; }
constexpr WeightDecayMode variant_weight_decay(int v) { return static_cast<WeightDecayMode>((v / 2) % 3); }
constexpr bool variant_eps_inside_sqrt(int v) { return v >= 6; }
int dense_variant(const DenseOptions& options);

// Constants of one update, rounded once to the tensor's dtype (as torch's fused kernel does).
template <class T>
struct DenseCoeffs {
  T clr;           // lr / fma(t - 1, lr_decay, 1), computed in double
  T eps;
  T weight_decay;  // coupled: g <- fma(theta, wd, g)
  T decay;         // decoupled: theta <- theta * (1 - clr * wd), the factor computed in double
};

template <class T>
DenseCoeffs<T> dense_coeffs(const DenseOptions& options, std::int64_t step);

}  // namespace adagrad
