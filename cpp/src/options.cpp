#include "adagrad/options.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

namespace adagrad {

namespace {

std::string shown(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

template <class T>
struct Clip {
  bool applies;
  T scale, lo, hi;
};

template <class T>
Clip<T> clip_of(const TransformOptions& o) {
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

template <class T>
typename Rules::Coeffs<T> rule_coeffs_of(const RuleOptions& options, std::int64_t step) {
  typename Rules::Coeffs<T> out;
  Rules::visit(static_cast<int>(options.index()), [&](auto rule) {
    using Rule = decltype(rule);
    out.template emplace<rule_index<Rule>>(Rule::template coeffs<T>(*std::get_if<rule_index<Rule>>(&options), step));
  });
  return out;
}

}  // namespace

void check_real_option(double value, Check check, const char* name) {
  switch (check) {
    case Check::non_negative:
      if (!std::isfinite(value) || value < 0.0) {
        throw std::invalid_argument(std::string(name) + " must be a finite number >= 0, got " + shown(value));
      }
      return;
    case Check::non_positive:
      if (!std::isfinite(value) || value > 0.0) {
        throw std::invalid_argument(std::string(name) + " must be a finite number <= 0, got " + shown(value));
      }
      return;
    case Check::positive:
      if (!std::isfinite(value) || !(value > 0.0)) {
        throw std::invalid_argument(std::string(name) + " must be a finite number > 0, got " + shown(value));
      }
      return;
    case Check::open_unit:
      if (!(value > 0.0 && value < 1.0)) {
        throw std::invalid_argument(std::string(name) + " must be > 0 and < 1, got " + shown(value));
      }
      return;
    case Check::positive_int:
    case Check::flag:
      return;
  }
}

void validate_grad_scale(double grad_scale) {
  const auto as_float = static_cast<float>(grad_scale);  // what the kernels divide by
  if (!std::isfinite(grad_scale) || !std::isfinite(as_float) || !(as_float > 0.0f)) {
    throw std::invalid_argument(
        "grad_scale must be a finite number > 0 (in float32, the loss scale's dtype: about 1.4e-45 to 3.4e38), got " +
        shown(grad_scale));
  }
}

void validate_clip_threshold(double threshold, const char* name) {
  if (!std::isfinite(threshold) || !(threshold > 0.0)) {
    throw std::invalid_argument(std::string(name) + " must be a finite number > 0, got " + shown(threshold));
  }
}

GradScaleMode grad_scale_mode(const TransformOptions& o) {
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
Transform<T> transform_coeffs(const TransformOptions& o, std::int64_t step) {
  // The loss scale as torch's fused kernel sees it: a float32 value, converted to T.
  const T grad_scale = static_cast<T>(static_cast<float>(o.scale_grads ? o.grad_scale : 1.0));
  const Clip<T> clip = clip_of<T>(o);
  return {grad_scale_mode(o),
          grad_scale,
          T(1) / grad_scale,
          clip.applies,
          clip.scale,
          clip.lo,
          clip.hi,
          o.maximize,
          o.stochastic_rounding,
          o.stochastic_rounding ? sr_key(o.sr_seed, o.sr_stream, step) : SrKey{},
          0};
}

template Transform<float> transform_coeffs<float>(const TransformOptions&, std::int64_t);
template Transform<double> transform_coeffs<double>(const TransformOptions&, std::int64_t);

template <class T>
Coeffs<T> coeffs_of(const StepOptions& o, std::int64_t step) {
  return {transform_coeffs<T>(o.transform, step), rule_coeffs_of<T>(o.rule, step)};
}

template Coeffs<float> coeffs_of<float>(const StepOptions&, std::int64_t);
template Coeffs<double> coeffs_of<double>(const StepOptions&, std::int64_t);

template <class T>
bool is_plain(const Coeffs<T>& c) {
  const Transform<T>& t = c.transform;
  if (t.scale_mode != GradScaleMode::none || t.clip || t.maximize || t.stochastic) return false;
  bool plain = true;
  Rules::visit(static_cast<int>(c.rule.index()), [&](auto rule) {
    using Rule = decltype(rule);
    if constexpr (requires { Rule::plain(*std::get_if<rule_index<Rule>>(&c.rule)); }) {
      plain = Rule::plain(*std::get_if<rule_index<Rule>>(&c.rule));
    }
  });
  return plain;
}

template bool is_plain<float>(const Coeffs<float>&);
template bool is_plain<double>(const Coeffs<double>&);

}  // namespace adagrad
