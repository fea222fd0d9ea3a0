#include "adagrad/dense.hpp"

#include <algorithm>
#include <cstdint>

#include "adagrad/thread_pool.hpp"

namespace adagrad {

namespace {

// Below this many elements in one call, waking threads costs more than it saves
// (measured on a 2-core AVX2 VM: 64K elements 0.82x with 2 threads, 128K 1.07x, 256K 1.32x).
constexpr std::size_t kInlineElements = std::size_t{1} << 15;
// Chunk of one tensor given to one thread: 3 arrays x 128 KiB (f32) stay within L2.
constexpr std::size_t kChunkElements = std::size_t{1} << 14;

void run_range(const KernelTable& k, const DenseTensor& t, std::size_t begin, std::size_t end) {
  const std::size_t n = end - begin;
  if (t.dtype == Dtype::f32) {
    k.dense_f32.fn[t.variant](static_cast<float*>(t.param) + begin, static_cast<const float*>(t.grad) + begin,
                              static_cast<float*>(t.sum) + begin, n, t.c32);
  } else {
    k.dense_f64.fn[t.variant](static_cast<double*>(t.param) + begin, static_cast<const double*>(t.grad) + begin,
                              static_cast<double*>(t.sum) + begin, n, t.c64);
  }
}

// A piece of one tensor, at most kChunkElements long.
struct Segment {
  std::size_t tensor, begin, end;
};

}  // namespace

DenseTensor make_dense_tensor(Dtype dtype, void* param, const void* grad, void* sum, std::size_t n,
                              const DenseOptions& options, std::int64_t step) {
  DenseTensor t{dtype, dense_variant(options), param, grad, sum, n, {}, {}};
  if (dtype == Dtype::f32) {
    t.c32 = dense_coeffs<float>(options, step);
  } else {
    t.c64 = dense_coeffs<double>(options, step);
  }
  return t;
}

std::size_t parallel_threshold() { return kInlineElements; }

void run_dense(const KernelTable& k, const std::vector<DenseTensor>& tensors) {
  std::size_t total = 0;
  for (const auto& t : tensors) total += t.n;
  if (total < kInlineElements || get_num_threads() == 1) {
    for (const auto& t : tensors) run_range(k, t, 0, t.n);
    return;
  }
  // Big tensors are cut into chunks; runs of small tensors are packed together, so that every
  // task is worth waking a thread for and 1,000 tiny tensors are not 1,000 tasks.
  std::vector<Segment> segments;
  std::vector<std::size_t> task_starts{0};
  segments.reserve(tensors.size() + total / kChunkElements);
  std::size_t in_task = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    for (std::size_t b = 0; b < tensors[i].n; b += kChunkElements) {
      const std::size_t e = std::min(tensors[i].n, b + kChunkElements);
      segments.push_back({i, b, e});
      in_task += e - b;
      if (in_task >= kChunkElements) {
        task_starts.push_back(segments.size());
        in_task = 0;
      }
    }
  }
  if (task_starts.back() != segments.size()) task_starts.push_back(segments.size());
  parallel_for(task_starts.size() - 1, [&](std::size_t task) {
    for (std::size_t s = task_starts[task]; s < task_starts[task + 1]; ++s) {
      run_range(k, tensors[segments[s].tensor], segments[s].begin, segments[s].end);
    }
  });
}

}  // namespace adagrad
