// Sparse (row-indexed) Adagrad on a 2-D table: SEMANTICS.md section 3.
#pragma once

#include <cstddef>
#include <cstdint>

#include "adagrad/dense.hpp"
#include "adagrad/hyper.hpp"
#include "adagrad/kernels.hpp"

namespace adagrad {

enum class Duplicates {
  sum,         // values of repeated indices summed in input order, one update per unique row
  sequential,  // every occurrence its own accumulate-then-update, in input order
};

struct SparseProblem {
  Dtype dtype;        // the table's and the values'
  Dtype state_dtype;  // dtype, or f32 for a 16-bit table (float32 state)
  void* table;  // rows x dim, C order
  std::size_t rows, dim;
  const void* indices;  // k of int32 or int64, all in [0, rows): checked by the caller
  bool indices_int64;
  std::size_t k;
  const void* values;  // k x dim, C order
  void* state;         // rows x dim (element-wise) or rows (row-wise)
  void* grad_sum;      // rows x dim: Adagrad-DA's sum of gradients (options.rule), else null
  std::int64_t* decay_counts;  // rows: AdagradDecay's decays done per row, else null
  bool rowwise;
  Duplicates duplicates;
  DenseOptions options;
  std::int64_t step;
  // The dense kernel variant for the rows; -1: the options' one. Benchmarks only (element-wise
  // state): kStreamVariant is the memory ceiling (the same schedule, trivial arithmetic);
  // kFloorVariant / kFloorWithValuesVariant the floors (kernels.hpp, SparseVariants::floor: the
  // indices taken as the rows to touch once each, with no grouping; the values read or not).
  int variant = -1;
  std::size_t value_rows = 0;  // rows of values: k, but for kFloorWithValuesVariant (any number)
};

constexpr int kFloorVariant = kKernelVariants;
constexpr int kFloorWithValuesVariant = kKernelVariants + 1;

// indices[i], whichever of int32 / int64 they are.
std::int64_t index_at(const SparseProblem& p, std::size_t i);

// Index of the first out-of-range index, or k when all are within [0, rows).
std::size_t first_bad_index(const SparseProblem& p);

// Updates only the indexed rows. Each unique row is owned by one thread: no races, no atomics,
// and the same bits for every thread count.
void run_sparse(const KernelTable& kernels, const SparseProblem& p);

// False where the kernel table has no kernel for the problem (a 16-bit table with options beyond
// half_sparse_variant(), or a benchmark floor): the bindings refuse it before anything runs.
bool sparse_kernel_exists(const KernelTable& kernels, const SparseProblem& p);

}  // namespace adagrad
