// Hyper-parameters of the dense update, and the per-call constants a kernel needs.
// SEMANTICS.md section 1 is the contract; this header holds no ISA code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "adagrad/stochastic_rounding.hpp"

namespace adagrad {

enum class WeightDecayMode : int { none = 0, coupled = 1, decoupled = 2 };

// The update rules: Adagrad (section 1), the paper's composite variants (section 4), Proximal
// Adagrad (composite mirror descent) and Adagrad-DA (regularized dual averaging), and DeepRec's
// AdagradDecay (Adagrad whose sums decay every decay_step steps, never below their start). One
// kernel body per ISA serves them all; a rule is a few kernel variants (below) and its coefficients.
enum class Rule : int { adagrad = 0, proximal = 1, dual_averaging = 2, adagrad_decay = 3 };

// Gradient clipping (SEMANTICS.md section 7), applied right after the loss scale is divided out:
//   value:       g <- clamp(g, -threshold, threshold)                       (Keras clipvalue)
//   global_norm: g <- g * c,  c = (1 / (norm + 1e-6)) * threshold, when c < 1 or NaN, with norm the
//                norm of every grad of the step (torch's clip_grad_norm_, its arithmetic in T)
//   tensor_norm: g <- g * (threshold / norm), when norm > threshold or NaN, with norm this grad's
//                own norm (Keras clipnorm)
enum class ClipRule : int { none = 0, value = 1, global_norm = 2, tensor_norm = 3 };

// What the user asked for, in double precision, exactly as given.
struct DenseOptions {
  double lr = 1e-2;
  double lr_decay = 0.0;
  double weight_decay = 0.0;
  double eps = 1e-10;
  bool maximize = false;
  bool decoupled_weight_decay = false;
  bool eps_inside_sqrt = false;
  // Loss scaling (mixed precision): grads are divided by grad_scale before anything else. The
  // divisor is grad_scale rounded to float32 (torch keeps the loss scale in a float32 tensor),
  // then converted to the tensor's dtype; the division is an IEEE division in that dtype.
  bool scale_grads = false;
  double grad_scale = 1.0;
  // Clipping: the rule, its threshold (> 0, finite), and for the norm rules the norm measured
  // before the update (a double; NaN or inf when a grad holds one).
  ClipRule clip = ClipRule::none;
  double clip_threshold = 0.0;
  double clip_norm = 0.0;
  // The rule (lr is every rule's; the options above it but lr are Adagrad's alone), and the composite
  // rules' regularization: l1 (the shrinkage) and l2, both finite and >= 0.
  Rule rule = Rule::adagrad;
  double l1 = 0.0;
  double l2 = 0.0;
  // AdagradDecay: every decay_step steps (>= 1) the sums become max(s * decay_rate, decay_floor),
  // decay_rate in (0, 1), decay_floor (the initial accumulator value) finite and > 0.
  std::int64_t decay_step = 1;
  double decay_rate = 1.0;
  double decay_floor = 0.0;
  // torch's fused CPU kernel with a 16-bit param (SEMANTICS.md section 6), for the torch adapter:
  // its vector body rounds clr, eps and weight_decay to the param's dtype, its scalar tail (the last
  // n % width elements, width = torch's vector length for that dtype) does not. 0: no element does
  // (the contract of the NumPy API: the constants rounded once, to float32).
  std::size_t narrowed_constants_width = 0;
  // Stochastic rounding of a float16 / bfloat16 param's write (stochastic_rounding.hpp): off, or
  // keyed by (sr_seed, sr_stream, step); other dtypes ignore it (their writes round nothing away).
  bool stochastic_rounding = false;
  std::uint64_t sr_seed = 0;
  std::uint64_t sr_stream = 0;  // the tensor's own stream (an optimizer's param ordinal)
};

// Throws std::invalid_argument naming the offending option (non-finite or negative; a grad_scale
// that is not > 0 and finite once rounded to float32).
void validate(const DenseOptions& options);

// Throws std::invalid_argument unless grad_scale, rounded to float32, is finite and > 0.
void validate_grad_scale(double grad_scale);

// Throws std::invalid_argument unless a clipping threshold is finite and > 0 (`name` in the message).
void validate_clip_threshold(double threshold, const char* name);


// How grads are divided by the loss scale: not at all; g / scale; or g * (1 / scale) where that
// reciprocal is exact (a power of two in float32's normal range, as GradScaler's scales are), which
// rounds the same exact value once, so gives the same bits as the division, at a multiply's cost.
enum class GradScaleMode : int { none = 0, divide = 1, multiply = 2 };

// The kernel is instantiated once per combination of the five switches below. A clip is one
// transform for every rule, g <- clamp(g * clip_scale, clip_lo, clip_hi), whose unused half is an
// exact identity (a scale of 1, bounds of -inf and +inf).
constexpr int kDenseVariants = 72;
constexpr int dense_variant(bool maximize, WeightDecayMode wd, bool eps_inside_sqrt, GradScaleMode scale, bool clip) {
  return (maximize ? 1 : 0) + 2 * static_cast<int>(wd) + 6 * (eps_inside_sqrt ? 1 : 0) + 12 * static_cast<int>(scale) +
         36 * (clip ? 1 : 0);
}
constexpr bool variant_maximize(int v) { return v % 2 == 1; }
constexpr WeightDecayMode variant_weight_decay(int v) { return static_cast<WeightDecayMode>((v / 2) % 3); }
constexpr bool variant_eps_inside_sqrt(int v) { return (v / 6) % 2 == 1; }
constexpr GradScaleMode variant_grad_scale(int v) { return static_cast<GradScaleMode>((v / 12) % 3); }
constexpr bool variant_clip(int v) { return v / 36 == 1; }

// After Adagrad's variants: the memory ceiling of the benchmarks, then the composite rules'.
// Proximal Adagrad has two (l1 = 0: no shrinkage, as TensorFlow skips it), Adagrad-DA one (its
// l1 = 0 gives the same bits through the general formula). fn[kKernelVariants] in the tables.
constexpr int kStreamVariant = kDenseVariants;
constexpr int kProximalVariant = kDenseVariants + 1;  // + 1 when l1 > 0
constexpr int kDualAveragingVariant = kDenseVariants + 3;
// AdagradDecay's update is Adagrad's plainest variant (0, with eps = 0), after its sums' decay.
constexpr int kAdagradDecayVariant = kDenseVariants + 4;
constexpr int kKernelVariants = kDenseVariants + 5;
constexpr Rule variant_rule(int v) {
  if (v < kProximalVariant) return Rule::adagrad;
  if (v < kDualAveragingVariant) return Rule::proximal;
  return v == kDualAveragingVariant ? Rule::dual_averaging : Rule::adagrad_decay;
}
constexpr bool variant_l1(int v) { return v == kProximalVariant + 1; }
// Rules with a second state array: Adagrad-DA's sum of gradients.
constexpr bool variant_has_grad_sum(int v) { return variant_rule(v) == Rule::dual_averaging; }
// The 16-bit kernels, fewer than float32's for compile time (each 16-bit pair's kernels cost about
// what float32's do): dense, Adagrad's variants without a clip; sparse, also without maximize,
// decoupled weight decay or eps inside the root. And the ceiling. Other entries are null.
constexpr bool half_dense_variant(int v) { return v == kStreamVariant || (v < kDenseVariants && !variant_clip(v)); }
constexpr bool half_sparse_variant(int v) {
  if (v == kStreamVariant) return true;
  return half_dense_variant(v) && !variant_maximize(v) && variant_weight_decay(v) != WeightDecayMode::decoupled &&
         !variant_eps_inside_sqrt(v);
}
GradScaleMode grad_scale_mode(const DenseOptions& options);
// The variant for a tensor of dtype T: the clip switch is on only where the clip, computed in T,
// can change a grad (a norm within its bound costs nothing).
template <class T>
int dense_variant(const DenseOptions& options);

// Constants of one update, rounded once to the tensor's dtype (as torch's fused kernel does).
template <class T>
struct DenseCoeffs {
  T clr;           // lr / fma(t - 1, lr_decay, 1), computed in double
  T eps;
  T weight_decay;  // coupled: g <- fma(theta, wd, g)
  T decay;         // decoupled: theta <- theta * (1 - clr * wd), the factor computed in double
  T grad_scale;    // g <- g / grad_scale first, when scale_grads (float32-rounded, then T)
  T inv_grad_scale;  // 1 / grad_scale, exact when the mode is GradScaleMode::multiply
  T clip_scale;      // the clip transform (ClipRule): g <- clamp(g * clip_scale, clip_lo, clip_hi)
  T clip_lo, clip_hi;
  // The composite rules (SEMANTICS.md section 4), each rounded once to T:
  T lr;          // proximal, dual averaging: the rate
  T l1, l2;      // proximal
  T l1_step;     // dual averaging: T(step) * l1, the product in T (as TensorFlow's kernel)
  T l2_step_lr;  // dual averaging: l2 * (T(step) * lr), the products in T
  T decay_rate, decay_floor;   // AdagradDecay: s <- max(s * decay_rate, decay_floor) per decay
  std::int64_t decay_periods;  // AdagradDecay: floor(step / decay_step), the decays due by this step
  // Stochastic rounding of a 16-bit param's write: the key of (seed, stream, step), and the index of
  // the first element of the call (dense: the chunk's offset in its array; sparse kernels index rows
  // themselves).
  bool stochastic = false;
  SrKey sr_key{};
  std::uint64_t sr_first_index = 0;
};

template <class T>
DenseCoeffs<T> dense_coeffs(const DenseOptions& options, std::int64_t step);

// AdagradDecay's catch-up: each of the n sums decayed `periods` times, s <- max(s * rate, floor),
// each product rounded, exactly as one decay per period would, so that a row's sums never depend
// on when it was last touched. A sum stops where a decay no longer changes it (the floor, or an
// infinity): no later decay would. Scalar IEEE operations, the same bits on every path. In an
// unnamed namespace: each translation unit (the per-ISA kernels among them) has its own copy, so
// the linker can never hand the baseline path one compiled with AVX flags.
namespace {
template <class T>
void decay_sums(T* s, std::size_t n, std::int64_t periods, T rate, T floor) {
  for (std::size_t i = 0; i < n; ++i) {
    T x = s[i];
    for (std::int64_t j = 0; j < periods; ++j) {
      const T product = x * rate;
      const T y = floor > product ? floor : product;  // x86 max: a NaN product stays NaN
      if (y == x || x != x) break;
      x = y;
    }
    s[i] = x;
  }
}
}  // namespace

}  // namespace adagrad
