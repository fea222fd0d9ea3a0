// Runs the dense update over many tensors at once: one pass, chunks spread over the thread pool.
#pragma once

#include <cstddef>
#include <vector>

#include "adagrad/hyper.hpp"
#include "adagrad/kernels.hpp"

namespace adagrad {

enum class Dtype { f32, f64 };

struct DenseTensor {
  Dtype dtype;
  int variant;
  void* param;
  const void* grad;
  void* sum;
  std::size_t n;
  DenseCoeffs<float> c32;   // used when dtype == f32
  DenseCoeffs<double> c64;  // used when dtype == f64
};

DenseTensor make_dense_tensor(Dtype dtype, void* param, const void* grad, void* sum, std::size_t n,
                              const DenseOptions& options, std::int64_t step);

// Calls with fewer elements in all run on the calling thread alone.
std::size_t parallel_threshold();

// Results are bitwise independent of the thread count: every element sees the same operations.
void run_dense(const KernelTable& kernels, const std::vector<DenseTensor>& tensors);

}  // namespace adagrad
