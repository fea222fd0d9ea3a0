// The table of kernels one instruction set provides: rule x param dtype x state dtype, each entry one
// instantiation of one kernel body (dense_kernel.inl, sparse_kernel.inl). Each kernels_<isa>.cpp
// defines one table, constant-initialised so that no code built for that ISA runs before dispatch
// picked it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "adagrad/half.hpp"
#include "adagrad/rules/registry.hpp"
#include "adagrad/transforms.hpp"

namespace adagrad {

// The constants of one update in the compute type T: the transforms' and the rule's.
template <class T>
struct Coeffs {
  Transform<T> transform;
  RuleCoeffs<T> rule;  // the alternative of the rule the kernel is for
};

// In place over contiguous buffers of n elements; param, grad and the states never overlap.
// states[j]: the rule's state j (its kStates order). P: the param's (and grad's) storage, S: the
// states' (half.hpp); computed in compute_t<P>.
template <class P, class S = P>
using DenseFn = void (*)(P* param, const P* grad, S* const* states, std::size_t n, const Coeffs<compute_t<P>>& c);

// Sparse rows (sparse.hpp). One call of a sparse kernel updates the rows of one part of a table:
// rows are dealt to parts by row_part(), each part is one task, and each row is updated by its one
// part alone, in input order, so that no result depends on how many parts (threads) there are.
constexpr std::uint32_t kEndOfChain = 0xFFFFFFFFu;

// The part (of `parts`) that owns a row: the high bits of a multiplicative hash, so that the hot rows
// of a skewed id distribution and runs of neighbouring rows both spread over the parts. (The hash
// tables of sparse.cpp use another multiplier: its bits must not correlate with these.)
inline std::uint32_t row_part(std::uint64_t row, std::uint32_t parts) {
  const std::uint64_t mixed = (row * 0xC2B2AE3D27D4EB4Full) >> 32;
  return static_cast<std::uint32_t>((mixed * parts) >> 32);
}

// P: the table's (and values') storage, S: the states' (half.hpp); computed in compute_t<P>, in which
// a row's occurrences are summed too.
template <class P, class S = P>
struct SparseTask {
  P* table;                      // rows x dim, C order
  S* states[kMaxStates];         // the rule's states: rows x dim (element-wise) or rows (row-wise)
  std::int64_t* decay_counts;    // rows: AdagradDecay's decays done per row (else null)
  const P* values;               // k x dim: occurrence o's gradient row is values + o * dim
  // A bag's backward (sparse.hpp, SparseProblem::bags): occurrence o's gradient row is values row
  // bags[o], times scales[o] if set (rounded to P); null: the layout above.
  const std::int64_t* bags;
  const P* scales;
  std::size_t dim;
  const Coeffs<compute_t<P>>* coeffs;
  compute_t<P>* scratch;  // dim elements of the task's own (a summed row, a row-wise gradient)
  // duplicates = sum: the part's unique rows in order of first occurrence; rows[u] is the table
  // row of unique row u, first[u] its first occurrence, next[o] the occurrence after o of the same
  // row (input order), kEndOfChain after the last.
  const std::size_t* rows;
  const std::uint32_t* first;
  const std::uint32_t* next;
  std::size_t unique;
  // Row-wise duplicates = sum, when the workspace holds the sums (sparse.cpp): owner[o] is the
  // unique row of occurrence o, and scratch holds `unique` summed rows of dim elements; else null.
  const std::uint32_t* owner;
  // duplicates = sequential: every occurrence of a row owned by `part`, in input order.
  const void* indices;
  bool indices_int64;
  std::size_t k;
  std::uint32_t parts, part;
};

template <class P, class S = P>
using SparseFn = void (*)(const SparseTask<P, S>& task);

// How the rows are updated. Element-wise state: each touched row as the dense update would;
// row-wise state (one accumulator per row, docs/semantics.md section 3; rules with kRowwise), FBGEMM's:
//   s <- s + (sum of g_j^2) / d,   m = clr / (sqrt(s) + eps),   theta_j <- theta_j - m * g_j
// with the sum of squares in one fixed order on every ISA, so that all paths give the same bits:
// g_j^2 rounded, added to lane j % 8 in increasing j (lanes start at +0), then
// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
enum class SparseMode : int { sum = 0, sequential = 1, rowwise_sum = 2, rowwise_sequential = 3 };
constexpr int kSparseModes = 4;

// Row lengths with kernels of their own for duplicates = sum, element-wise state: a row's summed
// gradient then lives in registers (when it fits in 16 of them), with no loop over the row.
constexpr std::size_t kFixedDims[] = {16, 32, 64, 128};
constexpr int kFixedDimCount = 4;

// The kernels of one (param, state) storage pair: per rule (registry.hpp order), the dense update,
// the sparse modes for any row length (the row-wise ones null for rules without row-wise state) and
// duplicates = sum at the fixed row lengths; each twice, [plain]: the one body with every switch a
// runtime branch (0), and compiled for the plain case (1: no transform, and the rule's switches at
// its plain() values where it declares one; is_plain, options.hpp), where the branches cost.
// floor (benchmarks; float32 / float64 only, else null) reads and writes each of the `unique` rows
// once (no grouping, no arithmetic to speak of) and, when values is set, first reads k value rows.
template <class P, class S = P>
struct PairKernels {
  DenseFn<P, S> dense[kRuleCount][2];
  SparseFn<P, S> sparse[kRuleCount][kSparseModes][2];
  SparseFn<P, S> fixed_sum[kRuleCount][kFixedDimCount][2];
  SparseFn<P, S> floor;
};

template <class T>
using AllFiniteFn = bool (*)(const T* x, std::size_t n);

// Gradient norms (grad_norm.hpp). sum_squares[GradScaleMode]: the sum of squares of n <=
// kNormBlock elements in its one fixed order (norm_kernel.inl), each element first divided by
// the loss scale (scale: the divisor as the update's dtype holds it; inv_scale its exact
// reciprocal, for GradScaleMode::multiply). max_abs: the largest |x| of any n, NaN if an x is NaN.
constexpr std::size_t kNormBlock = 1024;
template <class T>
using SumSquaresFn = double (*)(const T* x, std::size_t n, double scale, double inv_scale);
template <class T>
using MaxAbsFn = double (*)(const T* x, std::size_t n);
template <class T>
struct NormKernels {
  SumSquaresFn<T> sum_squares[3];
  MaxAbsFn<T> max_abs;
};

// Stochastic rounding alone (stochastic_rounding.hpp), for tests and benchmarks: out[i] = x[i]
// rounded to P with the random bits of element index0 + i under key.
template <class P>
using StochasticRoundFn = void (*)(const float* x, P* out, std::size_t n, std::uint64_t index0, SrKey key);

// The forward pooling of bags [first_bag, end_bag) of an embedding bag on a float32 table
// (pool_kernel.inl): out (bags x dim) row b from ids [offsets[b], offsets[b + 1]), all checked in
// range by the caller; weights: null or one per id (fused_weights: fma into the sum, else a product
// then a sum); padding_idx: an id skipped (-1: none); mean: divided by max(ids but padding, 1).
struct PoolTask {
  const float* table;
  std::size_t dim;
  const void* ids;
  bool ids_int64;
  std::size_t n;
  const std::int64_t* offsets;
  const float* weights;
  bool fused_weights;
  std::int64_t padding_idx;
  bool mean;
  float* out;
  std::size_t first_bag, end_bag;
};
using PoolFn = void (*)(const PoolTask& task);

struct KernelTable {
  const char* name;
  PairKernels<float> f32;
  PairKernels<double> f64;
  // 16-bit params and grads, with state of their own dtype or float32.
  PairKernels<float16> f16;
  PairKernels<float16, float> f16_f32;
  PairKernels<bfloat16> bf16;
  PairKernels<bfloat16, float> bf16_f32;
  AllFiniteFn<float> all_finite_f32;
  AllFiniteFn<double> all_finite_f64;
  NormKernels<float> norm_f32;
  NormKernels<double> norm_f64;
  StochasticRoundFn<float16> round_f16;
  StochasticRoundFn<bfloat16> round_bf16;
  PoolFn pool_f32;
};

// The table's kernels for a (param, state) storage pair.
inline const PairKernels<float>& pair_kernels(const KernelTable& k, float, float) { return k.f32; }
inline const PairKernels<double>& pair_kernels(const KernelTable& k, double, double) { return k.f64; }
inline const PairKernels<float16>& pair_kernels(const KernelTable& k, float16, float16) { return k.f16; }
inline const PairKernels<float16, float>& pair_kernels(const KernelTable& k, float16, float) { return k.f16_f32; }
inline const PairKernels<bfloat16>& pair_kernels(const KernelTable& k, bfloat16, bfloat16) { return k.bf16; }
inline const PairKernels<bfloat16, float>& pair_kernels(const KernelTable& k, bfloat16, float) { return k.bf16_f32; }

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
