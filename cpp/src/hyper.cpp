#include "adagrad/hyper.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace adagrad {

namespace {
void require_finite_non_negative(double value, const char* name) {
  if (!std::isfinite(value) || value < 0.0) {
    char shown[32];
    std::snprintf(shown, sizeof shown, "%.17g", value);
    throw std::invalid_argument(std::string(name) + " must be a finite number >= 0, got " + shown);
  }
}
}  // namespace

void validate(const DenseOptions& o) {
  require_finite_non_negative(o.lr, "lr");
  if (o.rule == Rule::adagrad_decay) {
    if (o.decay_step < 1) throw std::invalid_argument("accumulator_decay_step must be an int >= 1");
    if (!(o.decay_rate > 0.0 && o.decay_rate < 1.0)) {
      char shown[32];
      std::snprintf(shown, sizeof shown, "%.17g", o.decay_rate);
      throw std::invalid_argument(std::string("accumulator_decay_rate must be > 0 and < 1, got ") + shown);
    }
    if (!std::isfinite(o.decay_floor) || !(o.decay_floor > 0.0)) {
      char shown[32];
      std::snprintf(shown, sizeof shown, "%.17g", o.decay_floor);
      throw std::invalid_argument(std::string("initial_accumulator_value must be a finite number > 0, got ") + shown);
    }
    return;
  }
  if (o.rule != Rule::adagrad) {
    require_finite_non_negative(o.l1, "l1");
    require_finite_non_negative(o.l2, "l2");
    return;
  }
  require_finite_non_negative(o.lr_decay, "lr_decay");
  require_finite_non_negative(o.weight_decay, "weight_decay");
  require_finite_non_negative(o.eps, "eps");
  if (o.scale_grads) validate_grad_scale(o.grad_scale);
}

void validate_grad_scale(double grad_scale) {
  const auto as_float = static_cast<float>(grad_scale);  // what the kernels divide by
  if (!std::isfinite(grad_scale) || !std::isfinite(as_float) || !(as_float > 0.0f)) {
    char shown[32];
    std::snprintf(shown, sizeof shown, "%.17g", grad_scale);
    throw std::invalid_argument(std::string("grad_scale must be a finite number > 0 (in float32, the loss scale's "
                                            "dtype: about 1.4e-45 to 3.4e38), got ") +
                                shown);
  }
}

void validate_clip_threshold(double threshold, const char* name) {
  if (!std::isfinite(threshold) || !(threshold > 0.0)) {
    char shown[32];
    std::snprintf(shown, sizeof shown, "%.17g", threshold);
    throw std::invalid_argument(std::string(name) + " must be a finite number > 0, got " + shown);
  }
}

namespace {

template <class T>
struct Clip {
  bool applies;
  T scale, lo, hi;
};

template <class T>
Clip<T> clip_of(const DenseOptions& o) {
  constexpr T inf = std::numeric_limits<T>::infinity();
  const auto threshold = static_cast<T>(o.clip_threshold);
  switch (o.clip) {
    case ClipRule::value:
      return {true, T(1), -threshold, threshold};
    case ClipRule::global_norm: {
      // torch's clip_grad_norm_ in the grad's dtype: reciprocal(total + 1e-6) * max_norm, then
      // clamped to at most 1 (a NaN stays NaN and multiplies every grad, as there).
      const T c = (T(1) / (static_cast<T>(o.clip_norm) + static_cast<T>(1e-6))) * threshold;
      return {!(c >= T(1)), c, -inf, inf};
    }
    case ClipRule::tensor_norm: {
      const bool applies = !(o.clip_norm <= o.clip_threshold);  // a NaN norm applies (NaN grads)
      return {applies, applies ? threshold / static_cast<T>(o.clip_norm) : T(1), -inf, inf};
    }
    case ClipRule::none:
      break;
  }
  return {false, T(1), -inf, inf};
}

}  // namespace

template <class T>
int dense_variant(const DenseOptions& o) {
  if (o.rule == Rule::proximal) return kProximalVariant + (o.l1 > 0.0 ? 1 : 0);
  if (o.rule == Rule::dual_averaging) return kDualAveragingVariant;
  if (o.rule == Rule::adagrad_decay) return kAdagradDecayVariant;
  WeightDecayMode wd = WeightDecayMode::none;
  if (o.weight_decay != 0.0) wd = o.decoupled_weight_decay ? WeightDecayMode::decoupled : WeightDecayMode::coupled;
  return dense_variant(o.maximize, wd, o.eps_inside_sqrt, grad_scale_mode(o), clip_of<T>(o).applies);
}

template int dense_variant<float>(const DenseOptions&);
template int dense_variant<double>(const DenseOptions&);

GradScaleMode grad_scale_mode(const DenseOptions& o) {
  if (!o.scale_grads) return GradScaleMode::none;
  // The divisor as a float32 (validated finite and > 0). A power of two from 2**-126 to 2**127 has
  // an exact reciprocal (2**-127 .. 2**126) in float32 and float64 alike: x * (1/s) is then the
  // exact x / s rounded once, the same bits as the division, for every x (subnormals, inf, nan).
  const auto s = static_cast<float>(o.grad_scale);
  int exponent = 0;
  const bool power_of_two = std::frexp(s, &exponent) == 0.5f;
  return power_of_two && s >= std::numeric_limits<float>::min() ? GradScaleMode::multiply : GradScaleMode::divide;
}

template <class T>
DenseCoeffs<T> dense_coeffs(const DenseOptions& o, std::int64_t step) {
  // In double with one fma, as torch's fused CPU kernel does: its source writes
  // 1 + (t - 1) * lr_decay, which GCC contracts to an fma in torch's AVX2 / AVX-512 builds
  // (measured against torch 2.13: lr_decay = 0.1 differs in the last bit from step 8 without it).
  const bool decay = o.rule == Rule::adagrad_decay;  // Adagrad's update with lr, no eps
  const double clr = decay ? o.lr : o.lr / std::fma(static_cast<double>(step - 1), o.lr_decay, 1.0);
  const double weight_decay_factor = 1.0 - clr * o.weight_decay;
  // The loss scale as torch's fused kernel sees it: a float32 value, converted to T.
  const T grad_scale = static_cast<T>(static_cast<float>(o.scale_grads ? o.grad_scale : 1.0));
  const Clip<T> clip = clip_of<T>(o);
  // Adagrad-DA's constants as TensorFlow's ApplyAdagradDA forms them: the step converted to T, then
  // each product rounded in T.
  const auto lr = static_cast<T>(o.lr), l1 = static_cast<T>(o.l1), l2 = static_cast<T>(o.l2);
  const auto t = static_cast<T>(step);
  return {static_cast<T>(clr),
          decay ? T(0) : static_cast<T>(o.eps),
          static_cast<T>(o.weight_decay),
          static_cast<T>(weight_decay_factor),
          grad_scale,
          T(1) / grad_scale,
          clip.scale,
          clip.lo,
          clip.hi,
          lr,
          l1,
          l2,
          t * l1,
          l2 * (t * lr),
          static_cast<T>(o.decay_rate),
          static_cast<T>(o.decay_floor),
          decay ? step / o.decay_step : 0,
          o.stochastic_rounding,
          o.stochastic_rounding ? sr_key(o.sr_seed, o.sr_stream, step) : SrKey{},
          0};
}

template DenseCoeffs<float> dense_coeffs<float>(const DenseOptions&, std::int64_t);
template DenseCoeffs<double> dense_coeffs<double>(const DenseOptions&, std::int64_t);

}  // namespace adagrad
