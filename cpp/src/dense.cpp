#include "adagrad/dense.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "adagrad/half.hpp"
#include "adagrad/thread_pool.hpp"

namespace adagrad {

namespace {

// Below this many elements in one call, waking threads costs more than it saves
// (measured on a 2-core AVX2 VM: 64K elements 0.82x with 2 threads, 128K 1.07x, 256K 1.32x).
constexpr std::size_t kInlineElements = std::size_t{1} << 15;
// Chunk of one tensor given to one thread: 3 arrays x 128 KiB (f32) stay within L2.
constexpr std::size_t kChunkElements = std::size_t{1} << 14;

template <class P, class S>
void run_typed(const PairKernels<P, S>& fns, const DenseTensor& t, std::size_t begin, std::size_t end,
               const Coeffs<compute_t<P>>& c) {
  if (c.transform.stochastic && c.transform.sr_first_index != begin) {  // numbers start at the chunk's offset
    Coeffs<compute_t<P>> chunk = c;
    chunk.transform.sr_first_index = begin;
    return run_typed(fns, t, begin, end, chunk);
  }
  S* states[kMaxStates] = {};
  for (std::size_t j = 0; j < kMaxStates; ++j) {
    if (t.states[j] != nullptr) states[j] = static_cast<S*>(t.states[j]) + begin;
  }
  fns.dense[t.rule][t.plain](static_cast<P*>(t.param) + begin, static_cast<const P*>(t.grad) + begin, states, end - begin, c);
}

// A 16-bit param: its first n - n % narrowed_width elements with the narrowed constants, if any.
template <class P, class S>
void run_16bit(const PairKernels<P, S>& fns, const DenseTensor& t, std::size_t begin, std::size_t end) {
  const std::size_t body_end = t.narrowed_width == 0 ? 0 : t.n - t.n % t.narrowed_width;
  if (begin < body_end) run_typed(fns, t, begin, std::min(end, body_end), t.c32_narrowed);
  if (end > body_end) run_typed(fns, t, std::max(begin, body_end), end, t.c32);
}

void run_range(const KernelTable& k, const DenseTensor& t, std::size_t begin, std::size_t end) {
  const bool master = t.state_dtype == Dtype::f32;
  switch (t.dtype) {
    case Dtype::f32:
      return run_typed(k.f32, t, begin, end, t.c32);
    case Dtype::f64:
      return run_typed(k.f64, t, begin, end, t.c64);
    case Dtype::f16:
      return master ? run_16bit(k.f16_f32, t, begin, end) : run_16bit(k.f16, t, begin, end);
    case Dtype::bf16:
      return master ? run_16bit(k.bf16_f32, t, begin, end) : run_16bit(k.bf16, t, begin, end);
  }
}

// A 16-bit element is a NaN or an infinity when its exponent bits are all ones.
bool all_finite_16bit(const std::uint16_t* x, std::size_t n, std::uint16_t exponent) {
  std::uint16_t seen = 0;
  for (std::size_t i = 0; i < n; ++i) seen |= static_cast<std::uint16_t>(((x[i] & exponent) == exponent) ? 1 : 0);
  return seen == 0;
}

bool span_finite(const KernelTable& k, const GradSpan& s, std::size_t begin, std::size_t end) {
  const std::size_t n = end - begin;
  switch (s.dtype) {
    case Dtype::f32:
      return k.all_finite_f32(static_cast<const float*>(s.data) + begin, n);
    case Dtype::f64:
      return k.all_finite_f64(static_cast<const double*>(s.data) + begin, n);
    case Dtype::f16:
      return all_finite_16bit(static_cast<const std::uint16_t*>(s.data) + begin, n, 0x7C00);
    case Dtype::bf16:
      return all_finite_16bit(static_cast<const std::uint16_t*>(s.data) + begin, n, 0x7F80);
  }
  return false;
}

template <class P>
float narrowed(float x) {
  return widen(narrow(x, P{}));
}

}  // namespace

std::size_t dtype_size(Dtype dtype) {
  return dtype == Dtype::f64 ? sizeof(double) : dtype == Dtype::f32 ? sizeof(float) : sizeof(std::uint16_t);
}

const char* dtype_name(Dtype dtype) {
  static const char* const kNames[] = {"float32", "float64", "float16", "bfloat16"};
  return kNames[static_cast<int>(dtype)];
}

DenseTensor make_dense_tensor(Dtype dtype, Dtype state_dtype, const StepOptions& options, std::int64_t step) {
  DenseTensor t{dtype, state_dtype, options.rule_index(), false, nullptr, nullptr, {}, 0, nullptr, 0, {}, {}, 0, {}};
  if (dtype == Dtype::f64) {
    t.c64 = coeffs_of<double>(options, step);
    t.plain = is_plain(t.c64);
    return t;
  }
  t.c32 = coeffs_of<float>(options, step);
  t.plain = is_plain(t.c32);
  auto* adagrad = std::get_if<rule_index<AdagradRule>>(&t.c32.rule);
  if (is_16bit(dtype) && options.narrowed_constants_width != 0 && adagrad != nullptr) {
    t.narrowed_width = options.narrowed_constants_width;
    t.c32_narrowed = t.c32;
    auto& c = *std::get_if<rule_index<AdagradRule>>(&t.c32_narrowed.rule);
    const auto narrow_16 = dtype == Dtype::f16 ? &narrowed<float16> : &narrowed<bfloat16>;
    c.clr = narrow_16(c.clr);
    c.eps = narrow_16(c.eps);
    c.weight_decay = narrow_16(c.weight_decay);
  }
  return t;
}

std::size_t parallel_threshold() { return kInlineElements; }

std::size_t chunk_elements() { return kChunkElements; }

TaskPlan plan_tasks(const std::vector<std::size_t>& sizes) {
  // Big tensors are cut into chunks; runs of small tensors are packed together, so that every
  // task is worth waking a thread for and 1,000 tiny tensors are not 1,000 tasks.
  TaskPlan plan;
  std::size_t total = 0;
  for (const std::size_t n : sizes) total += n;
  plan.segments.reserve(sizes.size() + total / kChunkElements);
  plan.task_starts.push_back(0);
  std::size_t in_task = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    for (std::size_t b = 0; b < sizes[i]; b += kChunkElements) {
      const std::size_t e = std::min(sizes[i], b + kChunkElements);
      plan.segments.push_back({i, b, e});
      in_task += e - b;
      if (in_task >= kChunkElements) {
        plan.task_starts.push_back(plan.segments.size());
        in_task = 0;
      }
    }
  }
  if (plan.task_starts.back() != plan.segments.size()) plan.task_starts.push_back(plan.segments.size());
  return plan;
}

namespace {

// AdagradDecay: each row of the array takes the decays due since its last update (rows behind the
// step's count: after sparse updates of some rows, or always one when a period ends).
template <class T, class S>
void catch_up_rows(const DenseTensor& t, const Coeffs<T>& coeffs) {
  const auto& c = *std::get_if<rule_index<AdagradDecayRule>>(&coeffs.rule);
  const std::size_t row = t.decay_rows == 0 ? 0 : t.n / t.decay_rows;
  for (std::size_t r = 0; r < t.decay_rows; ++r) {
    const std::int64_t due = c.periods - t.decay_counts[r];
    if (due <= 0) continue;
    decay_sums(static_cast<S*>(t.states[0]) + r * row, row, due, c.rate, c.floor);
    t.decay_counts[r] = c.periods;
  }
}

void catch_up(const DenseTensor& t) {
  switch (t.state_dtype) {
    case Dtype::f64:
      return catch_up_rows<double, double>(t, t.c64);
    case Dtype::f32:
      return catch_up_rows<float, float>(t, t.c32);
    case Dtype::f16:
      return catch_up_rows<float, float16>(t, t.c32);
    case Dtype::bf16:
      return catch_up_rows<float, bfloat16>(t, t.c32);
  }
}

}  // namespace

void run_dense(const KernelTable& k, const std::vector<DenseTensor>& tensors) {
  std::size_t total = 0;
  for (const auto& t : tensors) total += t.n;
  const bool inline_only = total < kInlineElements || step_threads() == 1;
  // The plan is allocated before AdagradDecay's catch-up writes anything.
  std::vector<std::size_t> sizes;
  TaskPlan plan;
  if (!inline_only) {
    sizes.reserve(tensors.size());
    for (const auto& t : tensors) sizes.push_back(t.n);
    plan = plan_tasks(sizes);
  }
  for (const auto& t : tensors) {
    if (t.decay_counts != nullptr) catch_up(t);
  }
  if (inline_only) {
    for (const auto& t : tensors) run_range(k, t, 0, t.n);
    return;
  }
  parallel_for(plan.task_starts.size() - 1, [&](std::size_t task) {
    for (std::size_t s = plan.task_starts[task]; s < plan.task_starts[task + 1]; ++s) {
      const Segment& seg = plan.segments[s];
      run_range(k, tensors[seg.tensor], seg.begin, seg.end);
    }
  });
}

std::size_t first_nonfinite(const KernelTable& k, const std::vector<GradSpan>& spans) {
  std::size_t total = 0;
  for (const auto& s : spans) total += s.n;
  if (total < kInlineElements || step_threads() == 1) {
    for (std::size_t i = 0; i < spans.size(); ++i) {
      if (!span_finite(k, spans[i], 0, spans[i].n)) return i;
    }
    return spans.size();
  }
  std::vector<std::size_t> sizes;
  sizes.reserve(spans.size());
  for (const auto& s : spans) sizes.push_back(s.n);
  const TaskPlan plan = plan_tasks(sizes);
  // The smallest index of a span found bad so far. A segment of a span at or after it need not be
  // read; every span before it is read in full, so the result is the first bad span whatever the
  // threads' timing.
  std::atomic<std::size_t> first_bad{spans.size()};
  parallel_for(plan.task_starts.size() - 1, [&](std::size_t task) {
    for (std::size_t s = plan.task_starts[task]; s < plan.task_starts[task + 1]; ++s) {
      const Segment& seg = plan.segments[s];
      std::size_t known = first_bad.load(std::memory_order_relaxed);
      if (seg.tensor >= known || span_finite(k, spans[seg.tensor], seg.begin, seg.end)) continue;
      while (seg.tensor < known && !first_bad.compare_exchange_weak(known, seg.tensor, std::memory_order_relaxed)) {
      }
    }
  });
  return first_bad.load(std::memory_order_relaxed);
}

}  // namespace adagrad
