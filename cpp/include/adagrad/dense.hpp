// Runs the dense update over many tensors at once: one pass, chunks spread over the thread pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "adagrad/dtype.hpp"
#include "adagrad/kernels.hpp"
#include "adagrad/options.hpp"

namespace adagrad {

struct DenseTensor {
  Dtype dtype;        // the param's and the grad's
  Dtype state_dtype;  // the float states': dtype, or f32 for a 16-bit param (float32 master state)
  int rule;           // registry.hpp's index
  bool plain;         // the kernels compiled for the plain case (options.hpp, is_plain)
  void* param;
  const void* grad;
  void* states[kMaxStates];  // the rule's float states, in its kStates order
  std::size_t n;
  // AdagradDecay: the decays each of decay_rows rows (n / decay_rows elements each) has had, else
  // null. run_dense first gives every row the decays due by this step.
  std::int64_t* decay_counts;
  std::size_t decay_rows;
  Coeffs<float> c32;   // used when dtype is f32, f16 or bf16
  Coeffs<double> c64;  // used when dtype == f64
  // StepOptions::narrowed_constants_width: elements [0, n - n % width) take c32_narrowed, whose
  // clr, eps and weight_decay are rounded to the 16-bit dtype (and back); 0: none do.
  std::size_t narrowed_width;
  Coeffs<float> c32_narrowed;
};

// A tensor's rule, dtypes and constants (no arrays yet) for these options at this step.
DenseTensor make_dense_tensor(Dtype dtype, Dtype state_dtype, const StepOptions& options, std::int64_t step);

// Calls with fewer elements in all run on the calling thread alone.
std::size_t parallel_threshold();

// Results are bitwise independent of the thread count: every element sees the same operations.
void run_dense(const KernelTable& kernels, const std::vector<DenseTensor>& tensors);

// How a call over many arrays is cut into thread-pool tasks: elements [begin, end) of array
// `tensor` form one segment (at most chunk_elements() long); task t runs segments
// [task_starts[t], task_starts[t + 1]). Big arrays are cut into chunks, runs of small ones are
// packed together. Every size and offset is a std::size_t: arrays beyond 2**32 elements are fine.
struct Segment {
  std::size_t tensor, begin, end;
};
struct TaskPlan {
  std::vector<Segment> segments;
  std::vector<std::size_t> task_starts;  // size: tasks + 1
};
TaskPlan plan_tasks(const std::vector<std::size_t>& sizes);
std::size_t chunk_elements();

// A gradient buffer to check before an update: n contiguous elements of one dtype.
struct GradSpan {
  Dtype dtype;
  const void* data;
  std::size_t n;
};

// The index of the first span holding a NaN or an infinity, or spans.size() when every element
// is finite. Reads only; big calls are split over the thread pool like run_dense. The answer does
// not depend on the thread count.
std::size_t first_nonfinite(const KernelTable& kernels, const std::vector<GradSpan>& spans);

}  // namespace adagrad
