// Sparse (row-indexed) Adagrad on a 2-D table: docs/semantics.md section 3.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "adagrad/dense.hpp"
#include "adagrad/kernels.hpp"
#include "adagrad/options.hpp"

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
  void* states[kMaxStates];    // the rule's float states: rows x dim (element-wise) or rows (row-wise)
  std::int64_t* decay_counts;  // rows: AdagradDecay's decays done per row, else null
  bool rowwise;
  Duplicates duplicates;
  StepOptions options;
  std::int64_t step;
  // Benchmarks only (element-wise state): the indices taken as the rows to touch once each, with no
  // grouping (kernels.hpp, PairKernels::floor), the values read (any number of rows) or not.
  enum class Floor { none, without_values, with_values } floor = Floor::none;
  std::size_t value_rows = 0;  // rows of values: k, but for Floor::with_values (any number)
  // A bag's backward (adagrad.torch.EmbeddingBag), the values then the pooled gradient (value_rows
  // x dim): occurrence i's gradient row is values row bags[i] (checked: in [0, value_rows)), times
  // scales[i] (k of the table's dtype) when set, the product rounded to the table's dtype: the row
  // torch's EmbeddingBag backward builds (mean's 1 / bag size, or a per-sample weight), never built.
  const std::int64_t* bags = nullptr;
  const void* scales = nullptr;
};

// indices[i], whichever of int32 / int64 they are.
std::int64_t index_at(const SparseProblem& p, std::size_t i);

// Index of the first out-of-range index, or k when all are within [0, rows).
std::size_t first_bad_index(const SparseProblem& p);

// Room in the calling thread's workspace for these problems, made before a step writes anything
// (std::bad_alloc then leaves everything unchanged); within a ParallelSection, which fixes the
// thread count. release_sparse() frees a workspace grown past 64 MiB.
void reserve_sparse(const std::vector<SparseProblem>& problems);
void release_sparse();

// Updates only the indexed rows. Each unique row is owned by one thread: no races, no atomics,
// and the same bits for every thread count. Allocates nothing after reserve_sparse.
void run_sparse(const KernelTable& kernels, const SparseProblem& p);

// False where the kernel table has no kernel for the problem (row-wise state of a rule without it,
// a benchmark floor of a 16-bit table): the bindings refuse it before anything runs.
bool sparse_kernel_exists(const KernelTable& kernels, const SparseProblem& p);

}  // namespace adagrad
