// What every rule's gradient goes through before the rule itself, in this order (docs/semantics.md,
// sections 1 and 7), and the stochastic rounding of a 16-bit param's write:
//   g <- g / grad_scale                  loss scaling: an IEEE division in the compute type, or the
//                                        same bits as g * (1/grad_scale) where that reciprocal is exact
//   g <- min(hi, max(lo, g * c))         a clip (ClipRule), when it can change a grad
//   g <- -g                              maximize
// Each is a runtime switch of the one kernel body per rule; the plain case (none of them) is the one
// compiled variant (dense_kernel.inl): measured in docs/speed.md, "Switches as branches".
#pragma once

#include <cstdint>

#include "adagrad/stochastic_rounding.hpp"

namespace adagrad {

// Gradient clipping (docs/semantics.md section 7), applied right after the loss scale is divided out:
//   value:       g <- clamp(g, -threshold, threshold)                       (Keras clipvalue)
//   global_norm: g <- g * c,  c = (1 / (norm + 1e-6)) * threshold, when c < 1 or NaN, with norm the
//                norm of every grad of the step (torch's clip_grad_norm_, its arithmetic in T)
//   tensor_norm: g <- g * (threshold / norm), when norm > threshold or NaN, with norm this grad's
//                own norm (Keras clipnorm)
enum class ClipRule : int { none = 0, value = 1, global_norm = 2, tensor_norm = 3 };

// How grads are divided by the loss scale: not at all; g / scale; or g * (1 / scale) where that
// reciprocal is exact (a power of two in float32's normal range, as GradScaler's scales are), which
// rounds the same exact value once, so gives the same bits as the division, at a multiply's cost.
enum class GradScaleMode : int { none = 0, divide = 1, multiply = 2 };

// What the caller asked for, in double precision, exactly as given.
struct TransformOptions {
  bool maximize = false;
  // The divisor is grad_scale rounded to float32 (torch keeps the loss scale in a float32 tensor),
  // then converted to the compute type.
  bool scale_grads = false;
  double grad_scale = 1.0;
  // The clip: its rule, its threshold (> 0, finite), and for the norm rules the norm measured before
  // the update (NaN or inf when a grad holds one).
  ClipRule clip = ClipRule::none;
  double clip_threshold = 0.0;
  double clip_norm = 0.0;
  // Stochastic rounding of a float16 / bfloat16 param's write (stochastic_rounding.hpp), keyed by
  // (sr_seed, sr_stream, step); other dtypes ignore it.
  bool stochastic_rounding = false;
  std::uint64_t sr_seed = 0;
  std::uint64_t sr_stream = 0;  // the tensor's own stream (an optimizer's param ordinal)
  bool operator==(const TransformOptions&) const = default;
};

// The transforms' constants, rounded once to the compute type T.
template <class T>
struct Transform {
  GradScaleMode scale_mode;
  T scale;      // the loss scale: float32-rounded, then T
  T inv_scale;  // 1 / scale, exact in GradScaleMode::multiply
  bool clip;    // the clip can change a grad: g <- clamp(g * clip_scale, clip_lo, clip_hi)
  T clip_scale, clip_lo, clip_hi;
  bool maximize;
  // Stochastic rounding: the key of (seed, stream, step), and the number of the call's first element
  // (dense: the chunk's offset in its array; the sparse kernels number rows themselves).
  bool stochastic;
  SrKey sr_key;
  std::uint64_t sr_first_index;
};

template <class T>
Transform<T> transform_coeffs(const TransformOptions& options, std::int64_t step);

GradScaleMode grad_scale_mode(const TransformOptions& options);

// Throws std::invalid_argument unless grad_scale, rounded to float32, is finite and > 0.
void validate_grad_scale(double grad_scale);

// Throws std::invalid_argument unless a clipping threshold is finite and > 0 (`name` in the message).
void validate_clip_threshold(double threshold, const char* name);

}  // namespace adagrad
