#include "adagrad/sparse.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "adagrad/thread_pool.hpp"

namespace adagrad {

namespace {

std::int64_t index_at(const SparseProblem& p, std::size_t i) {
  return p.indices_int64 ? static_cast<const std::int64_t*>(p.indices)[i]
                         : static_cast<const std::int32_t*>(p.indices)[i];
}

// The occurrences of each unique row, in input order, without sorting: an open-addressing hash
// map from row to a slot numbered in order of first occurrence, then a counting pass.
struct Groups {
  std::vector<std::int64_t> rows;       // unique rows, in order of first occurrence
  std::vector<std::size_t> offsets;     // occurrences of rows[u]: order[offsets[u] .. offsets[u+1])
  std::vector<std::size_t> order;       // occurrence indices grouped by row, input order within
};

Groups group_by_row(const SparseProblem& p) {
  Groups g;
  std::size_t capacity = 16;
  while (capacity < 2 * p.k) capacity *= 2;
  std::vector<std::int64_t> keys(capacity, -1);
  std::vector<std::uint32_t> slot_of_key(capacity);
  std::vector<std::uint32_t> slot_of(p.k);
  std::vector<std::size_t> count;
  const int shift = 64 - __builtin_ctzll(capacity);
  for (std::size_t i = 0; i < p.k; ++i) {
    const std::int64_t row = index_at(p, i);
    std::size_t h = static_cast<std::size_t>((static_cast<std::uint64_t>(row) * 0x9E3779B97F4A7C15ull) >> shift);
    while (keys[h] != -1 && keys[h] != row) h = (h + 1) & (capacity - 1);
    if (keys[h] == -1) {
      keys[h] = row;
      slot_of_key[h] = static_cast<std::uint32_t>(g.rows.size());
      g.rows.push_back(row);
      count.push_back(0);
    }
    slot_of[i] = slot_of_key[h];
    ++count[slot_of[i]];
  }
  g.offsets.assign(g.rows.size() + 1, 0);
  for (std::size_t u = 0; u < g.rows.size(); ++u) g.offsets[u + 1] = g.offsets[u] + count[u];
  std::vector<std::size_t> fill(g.offsets.begin(), g.offsets.end() - 1);
  g.order.resize(p.k);
  for (std::size_t i = 0; i < p.k; ++i) g.order[fill[slot_of[i]]++] = i;
  return g;
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

Kernels<float> kernels_for(const KernelTable& k, float, int variant) {
  return {k.dense_f32.fn[variant], k.rowwise_f32.fn[variant], k.accumulate_f32};
}
Kernels<double> kernels_for(const KernelTable& k, double, int variant) {
  return {k.dense_f64.fn[variant], k.rowwise_f64.fn[variant], k.accumulate_f64};
}

// Below this many touched elements the rows are updated on the calling thread.
constexpr std::size_t kInlineSparseElements = std::size_t{1} << 15;

template <class T>
void run_typed(const KernelTable& table, const SparseProblem& p) {
  if (p.k == 0) return;
  const Groups g = group_by_row(p);
  const Kernels<T> kern = kernels_for(table, T{}, dense_variant(p.options));
  const DenseCoeffs<T> c = dense_coeffs<T>(p.options, p.step);
  T* const tab = static_cast<T*>(p.table);
  T* const st = static_cast<T*>(p.state);
  const T* const vals = static_cast<const T*>(p.values);
  const std::size_t d = p.dim;

  auto update_rows = [&](std::size_t begin, std::size_t end) {
    std::vector<T> scratch(d);
    for (std::size_t u = begin; u < end; ++u) {
      if (u + kPrefetchRows < end) {
        const auto ahead = static_cast<std::size_t>(g.rows[u + kPrefetchRows]);
        prefetch_row(tab + ahead * d, d * sizeof(T));
        prefetch_row(p.rowwise ? st + ahead : st + ahead * d, p.rowwise ? sizeof(T) : d * sizeof(T));
      }
      const auto row = static_cast<std::size_t>(g.rows[u]);
      T* const param = tab + row * d;
      T* const state = p.rowwise ? st + row : st + row * d;
      if (p.duplicates == Duplicates::sum) {
        std::fill(scratch.begin(), scratch.end(), T(0));  // 0 + v: the dense-equivalent gradient's bits
        for (std::size_t o = g.offsets[u]; o < g.offsets[u + 1]; ++o) kern.accumulate(scratch.data(), vals + g.order[o] * d, d);
        if (p.rowwise) {
          kern.rowwise(param, scratch.data(), state, d, c);
        } else {
          kern.dense(param, scratch.data(), state, d, c);
        }
      } else {
        for (std::size_t o = g.offsets[u]; o < g.offsets[u + 1]; ++o) {
          const T* v = vals + g.order[o] * d;
          if (p.rowwise) {
            std::memcpy(scratch.data(), v, d * sizeof(T));  // the row-wise kernel rewrites its gradient
            kern.rowwise(param, scratch.data(), state, d, c);
          } else {
            kern.dense(param, v, state, d, c);
          }
        }
      }
    }
  };

  const std::size_t unique = g.rows.size();
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
