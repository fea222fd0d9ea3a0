// The table of kernels one instruction set provides. Each kernels_<isa>.cpp defines one table,
// constant-initialised so that no code built for that ISA runs before dispatch picked it.
#pragma once

#include <cstddef>

#include "adagrad/hyper.hpp"

namespace adagrad {

// In place over contiguous buffers of n elements; param, grad and sum never overlap.
template <class T>
using DenseFn = void (*)(T* param, const T* grad, T* sum, std::size_t n, const DenseCoeffs<T>& c);

// fn[0 .. kDenseVariants-1]: the update variants (hyper.hpp). fn[kStreamVariant]: the memory
// ceiling for benchmarks, the same traffic with no arithmetic to speak of (read param, grad and
// sum; write param and sum).
constexpr int kStreamVariant = kDenseVariants;

template <class T>
struct DenseVariants {
  DenseFn<T> fn[kDenseVariants + 1];
};

struct KernelTable {
  const char* name;
  DenseVariants<float> dense_f32;
  DenseVariants<double> dense_f64;
};

extern const KernelTable kBaselineKernels;
#if defined(ADAGRAD_HAVE_AVX2)
extern const KernelTable kAvx2Kernels;
#endif
#if defined(ADAGRAD_HAVE_AVX512)
extern const KernelTable kAvx512Kernels;
#endif
#if defined(ADAGRAD_HAVE_NEON)
extern const KernelTable kNeonKernels;
#endif

}  // namespace adagrad
