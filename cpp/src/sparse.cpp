#include "adagrad/sparse.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "adagrad/thread_pool.hpp"

namespace adagrad {

namespace {

// Reused from call to call (per calling thread): fresh allocations of this size cost page faults.
struct Workspace {
  std::vector<std::int64_t> keys;          // hash map: row, or -1 for an empty slot
  std::vector<std::uint32_t> key_slot;     // hash map: the row's number among the unique rows
  std::vector<std::uint32_t> slot_of;      // per occurrence: its unique row's number
  std::vector<std::int64_t> rows;          // unique rows, in order of first occurrence
  std::vector<std::size_t> offsets, order; // sequential mode: occurrences grouped by row
  std::vector<unsigned char> sums;         // sum mode: one summed gradient row per unique row
};

// Numbers the unique rows in order of first occurrence, without sorting: open addressing.
void number_rows(const SparseProblem& p, Workspace& w) {
  std::size_t capacity = 16;
  while (capacity < 2 * p.k) capacity *= 2;
  w.keys.assign(capacity, -1);
  w.key_slot.resize(capacity);
  w.slot_of.resize(p.k);
  w.rows.clear();
  const int shift = 64 - __builtin_ctzll(capacity);
  for (std::size_t i = 0; i < p.k; ++i) {
    const std::int64_t row = index_at(p, i);
    std::size_t h = static_cast<std::size_t>((static_cast<std::uint64_t>(row) * 0x9E3779B97F4A7C15ull) >> shift);
    while (w.keys[h] != -1 && w.keys[h] != row) h = (h + 1) & (capacity - 1);
    if (w.keys[h] == -1) {
      w.keys[h] = row;
      w.key_slot[h] = static_cast<std::uint32_t>(w.rows.size());
      w.rows.push_back(row);
    }
    w.slot_of[i] = w.key_slot[h];
  }
}

// Sequential mode: the occurrences of each unique row, in input order (a counting pass).
void group_occurrences(const SparseProblem& p, Workspace& w) {
  w.offsets.assign(w.rows.size() + 1, 0);
  for (std::size_t i = 0; i < p.k; ++i) ++w.offsets[w.slot_of[i] + 1];
  for (std::size_t u = 0; u < w.rows.size(); ++u) w.offsets[u + 1] += w.offsets[u];
  std::vector<std::size_t> fill(w.offsets.begin(), w.offsets.end() - 1);
  w.order.resize(p.k);
  for (std::size_t i = 0; i < p.k; ++i) w.order[fill[w.slot_of[i]]++] = i;
}

// How many rows ahead the table and state rows are prefetched.
constexpr std::size_t kPrefetchRows = 4;

template <class T>
void prefetch_row(const T* row, std::size_t bytes) {
  const char* p = reinterpret_cast<const char*>(row);
  for (std::size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off, 1, 3);
}

template <class T>
struct Kernels {
  DenseFn<T> dense;
  RowwiseFn<T> rowwise;
  AccumulateFn<T> accumulate;
};

// The row-wise table has no stream variant: the ceiling is element-wise only.
Kernels<float> kernels_for(const KernelTable& k, float, int variant) {
  return {k.dense_f32.fn[variant], variant < kDenseVariants ? k.rowwise_f32.fn[variant] : nullptr, k.accumulate_f32};
}
Kernels<double> kernels_for(const KernelTable& k, double, int variant) {
  return {k.dense_f64.fn[variant], variant < kDenseVariants ? k.rowwise_f64.fn[variant] : nullptr, k.accumulate_f64};
}

// Below this many touched elements the rows are updated on the calling thread.
constexpr std::size_t kInlineSparseElements = std::size_t{1} << 15;

template <class T>
void run_typed(const KernelTable& table, const SparseProblem& p) {
  if (p.k == 0) return;
  thread_local Workspace calling_threads_workspace;
  // A reference, so that the lambda below captures the caller's workspace: inside it a
  // thread_local name would mean the worker thread's own (empty) one.
  Workspace& w = calling_threads_workspace;
  number_rows(p, w);
  const Kernels<T> kern = kernels_for(table, T{}, p.variant >= 0 ? p.variant : dense_variant(p.options));
  const DenseCoeffs<T> c = dense_coeffs<T>(p.options, p.step);
  T* const tab = static_cast<T*>(p.table);
  T* const st = static_cast<T*>(p.state);
  const T* const vals = static_cast<const T*>(p.values);
  const std::size_t d = p.dim, unique = w.rows.size();
  const bool sum_mode = p.duplicates == Duplicates::sum;

  T* sums = nullptr;
  if (sum_mode) {
    // Stream the values once, in input order, into one row per unique row: each sum runs from +0
    // in input order (the dense-equivalent gradient's bits) and values are read sequentially.
    w.sums.resize(unique * d * sizeof(T));
    sums = reinterpret_cast<T*>(w.sums.data());
    std::fill(sums, sums + unique * d, T(0));
    // A row's table and state lines are prefetched at its first occurrence, so that they arrive
    // while the values stream (measured here: 6 of 6 alternating runs faster, ~8% at 1Mx64).
    std::size_t next_new = 0;
    for (std::size_t i = 0; i < p.k; ++i) {
      const std::size_t slot = w.slot_of[i];
      if (slot == next_new) {
        const auto r = static_cast<std::size_t>(w.rows[slot]);
        prefetch_row(tab + r * d, d * sizeof(T));
        prefetch_row(p.rowwise ? st + r : st + r * d, p.rowwise ? sizeof(T) : d * sizeof(T));
        ++next_new;
      }
      kern.accumulate(sums + slot * d, vals + i * d, d);
    }
  } else {
    group_occurrences(p, w);
  }

  auto update_rows = [&](std::size_t begin, std::size_t end) {
    std::vector<T> scratch(p.rowwise && !sum_mode ? d : 0);
    for (std::size_t u = begin; u < end; ++u) {
      if (u + kPrefetchRows < end) {
        const auto ahead = static_cast<std::size_t>(w.rows[u + kPrefetchRows]);
        prefetch_row(tab + ahead * d, d * sizeof(T));
        prefetch_row(p.rowwise ? st + ahead : st + ahead * d, p.rowwise ? sizeof(T) : d * sizeof(T));
      }
      const auto row = static_cast<std::size_t>(w.rows[u]);
      T* const param = tab + row * d;
      T* const state = p.rowwise ? st + row : st + row * d;
      if (sum_mode) {
        T* const g = sums + u * d;  // ours to overwrite: the row-wise kernel rewrites its gradient
        if (p.rowwise) {
          kern.rowwise(param, g, state, d, c);
        } else {
          kern.dense(param, g, state, d, c);
        }
        continue;
      }
      for (std::size_t o = w.offsets[u]; o < w.offsets[u + 1]; ++o) {
        const T* v = vals + w.order[o] * d;
        if (p.rowwise) {
          std::memcpy(scratch.data(), v, d * sizeof(T));
          kern.rowwise(param, scratch.data(), state, d, c);
        } else {
          kern.dense(param, v, state, d, c);
        }
      }
    }
  };

  if (unique * d < kInlineSparseElements || get_num_threads() == 1) {
    update_rows(0, unique);
    return;
  }
  // Tasks of consecutive unique rows, about 4K elements each.
  const std::size_t rows_per_task = std::max<std::size_t>(1, (std::size_t{1} << 12) / d);
  const std::size_t n_tasks = (unique + rows_per_task - 1) / rows_per_task;
  parallel_for(n_tasks, [&](std::size_t t) {
    update_rows(t * rows_per_task, std::min(unique, (t + 1) * rows_per_task));
  });
}

}  // namespace

std::int64_t index_at(const SparseProblem& p, std::size_t i) {
  return p.indices_int64 ? static_cast<const std::int64_t*>(p.indices)[i]
                         : static_cast<const std::int32_t*>(p.indices)[i];
}

std::size_t first_bad_index(const SparseProblem& p) {
  const auto rows = static_cast<std::int64_t>(p.rows);
  for (std::size_t i = 0; i < p.k; ++i) {
    const std::int64_t r = index_at(p, i);
    if (r < 0 || r >= rows) return i;
  }
  return p.k;
}

void run_sparse(const KernelTable& kernels, const SparseProblem& p) {
  if (p.dtype == Dtype::f32) {
    run_typed<float>(kernels, p);
  } else {
    run_typed<double>(kernels, p);
  }
}

}  // namespace adagrad
