#include "adagrad/grad_norm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "adagrad/thread_pool.hpp"

namespace adagrad {

namespace {

// The loss scale as the update divides by it, and its reciprocal (exact in multiply mode).
struct Unscale {
  GradScaleMode mode;
  double f32_scale, f32_inv, f64_scale, f64_inv;
};

Unscale unscale_of(const TransformOptions& o) {
  const GradScaleMode mode = grad_scale_mode(o);
  const float s32 = static_cast<float>(o.scale_grads ? o.grad_scale : 1.0);
  const auto s64 = static_cast<double>(s32);
  return {mode, s64, static_cast<double>(1.0f / s32), s64, 1.0 / s64};
}

double nan_max(double a, double b);

// A 16-bit grad's elements [begin, end) widened to float32 (exact), kNormBlock at a time: its norm
// is the norm of the float32 values.
template <class H>
double widened_norm(const KernelTable& k, const H* x, std::size_t n, NormType type, const Unscale& u) {
  float block[kNormBlock];
  double out = 0.0;
  for (std::size_t b = 0; b < n; b += kNormBlock) {  // a sum of squares: n <= kNormBlock
    const std::size_t m = std::min(kNormBlock, n - b);
    for (std::size_t i = 0; i < m; ++i) block[i] = widen(x[b + i]);
    out = type == NormType::two ? k.norm_f32.sum_squares[static_cast<int>(u.mode)](block, m, u.f32_scale, u.f32_inv)
                                : nan_max(out, k.norm_f32.max_abs(block, m));
  }
  return out;
}

double block_norm(const KernelTable& k, const GradSpan& s, std::size_t begin, std::size_t end, NormType type,
                  const Unscale& u) {
  const std::size_t n = end - begin;
  const auto mode = static_cast<int>(u.mode);
  switch (s.dtype) {
    case Dtype::f32: {
      const float* x = static_cast<const float*>(s.data) + begin;
      return type == NormType::two ? k.norm_f32.sum_squares[mode](x, n, u.f32_scale, u.f32_inv)
                                   : k.norm_f32.max_abs(x, n);
    }
    case Dtype::f64: {
      const double* x = static_cast<const double*>(s.data) + begin;
      return type == NormType::two ? k.norm_f64.sum_squares[mode](x, n, u.f64_scale, u.f64_inv)
                                   : k.norm_f64.max_abs(x, n);
    }
    case Dtype::f16:
      return widened_norm(k, static_cast<const float16*>(s.data) + begin, n, type, u);
    case Dtype::bf16:
      return widened_norm(k, static_cast<const bfloat16*>(s.data) + begin, n, type, u);
  }
  return 0.0;
}

double nan_max(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
  return a > b ? a : b;
}

double max_of(const double* v, std::size_t n) {
  double m = 0.0;
  for (std::size_t i = 0; i < n; ++i) m = nan_max(m, v[i]);
  return m;
}

// The largest |g| of a span, unscaled once, in the span's dtype (monotonic rounding: see max_abs).
double unscaled_max(double m, Dtype dtype, const TransformOptions& o) {
  if (!o.scale_grads) return m;
  const auto s = static_cast<float>(o.grad_scale);
  if (dtype != Dtype::f64) return static_cast<double>(static_cast<float>(m) / s);
  return m / static_cast<double>(s);
}

}  // namespace

double pairwise_sum(double* v, std::size_t n) {
  if (n == 0) return 0.0;
  while (n > 1) {
    const std::size_t half = n / 2;
    for (std::size_t i = 0; i < half; ++i) v[i] = v[2 * i] + v[2 * i + 1];
    if (n % 2 == 1) v[half] = v[n - 1];
    n = half + n % 2;
  }
  return v[0];
}

double grad_norms(const KernelTable& k, const std::vector<GradSpan>& spans, NormType type, const TransformOptions& scale,
                  std::vector<double>& norms) {
  const Unscale u = unscale_of(scale);
  // One result per block: block b of span i at first_block[i] + b.
  std::vector<std::size_t> first_block(spans.size() + 1, 0);
  std::vector<std::size_t> sizes(spans.size());
  std::size_t total = 0;
  for (std::size_t i = 0; i < spans.size(); ++i) {
    sizes[i] = spans[i].n;
    total += spans[i].n;
    first_block[i + 1] = first_block[i] + (spans[i].n + kNormBlock - 1) / kNormBlock;
  }
  std::vector<double> blocks(first_block.back(), 0.0);  // inf: blocks left 0 add nothing to the max
  auto run_segment = [&](std::size_t i, std::size_t begin, std::size_t end) {
    if (type == NormType::inf) {  // a max in any order: one call for the segment, in its first block
      if (begin < end) blocks[first_block[i] + begin / kNormBlock] = block_norm(k, spans[i], begin, end, type, u);
      return;
    }
    for (std::size_t b = begin; b < end; b += kNormBlock) {
      blocks[first_block[i] + b / kNormBlock] = block_norm(k, spans[i], b, std::min(end, b + kNormBlock), type, u);
    }
  };
  // Last grads first, so that the first ones, which the update reads first, are the ones most
  // recently read into the cache. (The blocks' results have fixed places: any order gives the same
  // bits.)
  const TaskPlan plan = plan_tasks(sizes);
  const std::size_t tasks = plan.task_starts.size() - 1;
  auto run_task = [&](std::size_t task) {
    for (std::size_t s = plan.task_starts[task]; s < plan.task_starts[task + 1]; ++s) {
      const Segment& seg = plan.segments[s];
      run_segment(seg.tensor, seg.begin, seg.end);
    }
  };
  // Segments start at multiples of chunk_elements(), itself a multiple of kNormBlock: the blocks
  // are the same whatever the plan.
  if (total < parallel_threshold() || step_threads() == 1) {
    for (std::size_t t = tasks; t-- > 0;) run_task(t);
  } else {
    parallel_for(tasks, [&](std::size_t task) { run_task(tasks - 1 - task); });
  }
  norms.resize(spans.size());
  std::vector<double> per_span(spans.size());
  for (std::size_t i = 0; i < spans.size(); ++i) {
    double* own = blocks.data() + first_block[i];
    const std::size_t count = first_block[i + 1] - first_block[i];
    if (type == NormType::two) {
      per_span[i] = pairwise_sum(own, count);
      norms[i] = std::sqrt(per_span[i]);
    } else {
      per_span[i] = unscaled_max(max_of(own, count), spans[i].dtype, scale);
      norms[i] = per_span[i];
    }
  }
  if (type == NormType::two) return std::sqrt(pairwise_sum(per_span.data(), per_span.size()));
  return max_of(per_span.data(), per_span.size());
}

}  // namespace adagrad
