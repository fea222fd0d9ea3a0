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

// Row-wise Adagrad on one row of d elements with one accumulator (SEMANTICS.md section 3):
// grad is scratch (loss scale, maximize and weight decay are applied to it in place), then
//   s <- s + (sum of g_j^2) / d,   theta_j <- theta_j - (clr * g_j) / (sqrt(s) + eps)
// The sum of squares has one fixed order on every ISA, so that all paths give the same bits:
// element j goes to lane j % 8 (fma, in increasing j, lanes start at +0), then
// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
template <class T>
using RowwiseFn = void (*)(T* param, T* grad, T* state, std::size_t d, const DenseCoeffs<T>& c);

template <class T>
struct RowwiseVariants {
  RowwiseFn<T> fn[kDenseVariants];
};

// acc[j] += v[j]: the sum of repeated indices' values, in input order.
template <class T>
using AccumulateFn = void (*)(T* acc, const T* v, std::size_t d);

// True when none of the n elements is a NaN or an infinity (reads only).
template <class T>
using AllFiniteFn = bool (*)(const T* x, std::size_t n);

struct KernelTable {
  const char* name;
  DenseVariants<float> dense_f32;
  DenseVariants<double> dense_f64;
  RowwiseVariants<float> rowwise_f32;
  RowwiseVariants<double> rowwise_f64;
  AccumulateFn<float> accumulate_f32;
  AccumulateFn<double> accumulate_f64;
  AllFiniteFn<float> all_finite_f32;
  AllFiniteFn<double> all_finite_f64;
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
