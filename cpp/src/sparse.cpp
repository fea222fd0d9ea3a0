#include "adagrad/sparse.hpp"

#include <algorithm>
#include <vector>

#include "adagrad/half.hpp"
#include "adagrad/thread_pool.hpp"

namespace adagrad {

namespace {

// One part's work space, reused from call to call (fresh allocations of this size cost page faults).
struct PartSpace {
  // Open addressing from row to its unique number; a free slot holds kFreeSlot. Only the slots a
  // call used are freed after it, so a big table costs nothing to clear.
  struct Slot {
    std::uint64_t row;
    std::uint32_t unique;
  };
  static constexpr std::uint64_t kFreeSlot = ~std::uint64_t{0};
  std::vector<Slot> slots;
  std::vector<std::size_t> rows;      // unique rows, in order of first occurrence
  std::vector<std::uint32_t> first;   // per unique row: its first occurrence
  std::vector<std::uint32_t> last;    // per unique row: its latest occurrence so far
  std::vector<std::uint32_t> next;    // per occurrence: the next one of the same row (kEndOfChain)
  std::vector<std::size_t> used;      // per unique row: its slot
  std::size_t unique = 0;
  std::vector<unsigned char> scratch;
  std::vector<std::size_t> floor_rows;  // the benchmark floor's rows
};

// The slot hash: golden-ratio multiplier, top bits (row_part() uses another multiplier).
inline std::size_t slot_of(std::uint64_t row, int shift) {
  return static_cast<std::size_t>((row * 0x9E3779B97F4A7C15ull) >> shift);
}

// Moves the first `unique` rows into a table of `capacity` slots.
void rehash(PartSpace& w, std::size_t capacity, std::size_t unique) {
  w.slots.assign(capacity, {PartSpace::kFreeSlot, 0});
  const int shift = 64 - __builtin_ctzll(capacity);
  for (std::size_t u = 0; u < unique; ++u) {
    std::size_t h = slot_of(w.rows[u], shift);
    while (w.slots[h].row != PartSpace::kFreeSlot) h = (h + 1) & (capacity - 1);
    w.slots[h] = {w.rows[u], static_cast<std::uint32_t>(u)};
    w.used[u] = h;
  }
}

// The unique rows of one part (all rows when parts == 1) in order of first occurrence, each with
// the chain of its occurrences in input order: one pass over the indices, no sort. (A branch-free
// form of the insert measured slower here: 5.9-7.1 against 5.0-5.8 ns per id of a Zipf batch.)
template <class Index>
void group_rows(const Index* indices, std::size_t k, std::uint32_t parts, std::uint32_t part, PartSpace& w) {
  // Room for every occurrence being a new row: no reallocation in the loop.
  for (auto* v : {&w.first, &w.last, &w.next}) {
    if (v->size() < k) v->resize(k);
  }
  for (auto* v : {&w.rows, &w.used}) {
    if (v->size() < k) v->resize(k);
  }
  std::size_t wanted = 16;
  while (wanted < 2 * (k / parts) + 2) wanted *= 2;
  if (w.slots.size() < wanted) w.slots.assign(wanted, {PartSpace::kFreeSlot, 0});
  std::size_t capacity = w.slots.size();
  int shift = 64 - __builtin_ctzll(capacity);
  std::size_t unique = 0;
  for (std::size_t i = 0; i < k; ++i) {
    const auto row = static_cast<std::uint64_t>(indices[i]);
    if (parts > 1 && row_part(row, parts) != part) continue;
    const auto occurrence = static_cast<std::uint32_t>(i);
    w.next[i] = kEndOfChain;
    std::size_t h = slot_of(row, shift);
    while (w.slots[h].row != PartSpace::kFreeSlot && w.slots[h].row != row) h = (h + 1) & (capacity - 1);
    if (w.slots[h].row == row) {
      const std::uint32_t u = w.slots[h].unique;
      w.next[w.last[u]] = occurrence;
      w.last[u] = occurrence;
      continue;
    }
    w.slots[h] = {row, static_cast<std::uint32_t>(unique)};
    w.used[unique] = h;
    w.rows[unique] = static_cast<std::size_t>(row);
    w.first[unique] = occurrence;
    w.last[unique] = occurrence;
    if (2 * ++unique > capacity) {  // keep the load at most 1/2 (only when a part owns most rows)
      rehash(w, 2 * capacity, unique);
      capacity = w.slots.size();
      shift = 64 - __builtin_ctzll(capacity);
    }
  }
  for (std::size_t u = 0; u < unique; ++u) w.slots[w.used[u]].row = PartSpace::kFreeSlot;
  w.unique = unique;
}

template <class P, class S>
SparseFn<P, S> pick_kernel(const PairKernels<P, S>& kernels, int rule, bool plain, SparseMode mode, std::size_t dim) {
  if (mode == SparseMode::sum) {
    for (int i = 0; i < kFixedDimCount; ++i) {
      if (dim == kFixedDims[i]) return kernels.fixed_sum[rule][i][plain];
    }
  }
  return kernels.sparse[rule][static_cast<int>(mode)][plain];
}

// Below this many value elements (k * dim) a call runs on the calling thread alone.
constexpr std::size_t kInlineSparseElements = std::size_t{1} << 15;

SparseMode mode_of(const SparseProblem& p) {
  if (p.rowwise) return p.duplicates == Duplicates::sum ? SparseMode::rowwise_sum : SparseMode::rowwise_sequential;
  return p.duplicates == Duplicates::sum ? SparseMode::sum : SparseMode::sequential;
}

// The calling thread's part spaces: a reference to them is what the tasks capture (inside a task
// a thread_local name would mean the worker's own).
std::vector<PartSpace>& calling_threads_parts(std::size_t parts) {
  thread_local std::vector<PartSpace> spaces;
  if (spaces.size() < parts) spaces.resize(parts);
  return spaces;
}

// How many parts (tasks) the rows are dealt to: one per thread, or one for a small call.
std::uint32_t part_count(const SparseProblem& p) {
  const int threads = get_num_threads();
  return static_cast<std::uint32_t>(p.k * p.dim < kInlineSparseElements || threads == 1 ? 1 : threads);
}

// A part's task over the whole problem; the grouping (or the floor's rows) is the caller's to add.
template <class P, class S>
SparseTask<P, S> task_for(const SparseProblem& p, const Coeffs<compute_t<P>>& coeffs, PartSpace& w,
                          std::uint32_t parts, std::uint32_t part) {
  using C = compute_t<P>;
  w.scratch.resize(std::max<std::size_t>(p.dim, 16) * sizeof(C));  // at least one register (floor_rows)
  SparseTask<P, S> t{};
  t.table = static_cast<P*>(p.table);
  for (std::size_t j = 0; j < kMaxStates; ++j) t.states[j] = static_cast<S*>(p.states[j]);
  t.decay_counts = p.decay_counts;
  t.values = static_cast<const P*>(p.values);
  t.dim = p.dim;
  t.coeffs = &coeffs;
  t.scratch = reinterpret_cast<C*>(w.scratch.data());
  t.indices = p.indices;
  t.indices_int64 = p.indices_int64;
  t.k = p.k;
  t.parts = parts;
  t.part = part;
  return t;
}

template <class P, class S>
SparseFn<P, S> kernel_of(const KernelTable& table, const SparseProblem& p, bool plain) {
  return pick_kernel(pair_kernels(table, P{}, S{}), p.options.rule_index(), plain, mode_of(p), p.dim);
}

template <class P, class S>
void run_typed(const KernelTable& table, const SparseProblem& p) {
  if (p.k == 0) return;
  using C = compute_t<P>;
  const Coeffs<C> coeffs = coeffs_of<C>(p.options, p.step);
  const SparseFn<P, S> kernel = kernel_of<P, S>(table, p, is_plain(coeffs));
  const std::uint32_t parts = part_count(p);
  std::vector<PartSpace>& spaces = calling_threads_parts(parts);
  parallel_for(parts, [&](std::size_t part_index) {
    const auto part = static_cast<std::uint32_t>(part_index);
    PartSpace& w = spaces[part];
    SparseTask<P, S> t = task_for<P, S>(p, coeffs, w, parts, part);
    if (p.duplicates == Duplicates::sum) {
      if (p.indices_int64) {
        group_rows(static_cast<const std::int64_t*>(p.indices), p.k, parts, part, w);
      } else {
        group_rows(static_cast<const std::int32_t*>(p.indices), p.k, parts, part, w);
      }
      t.rows = w.rows.data();
      t.first = w.first.data();
      t.next = w.next.data();
      t.unique = w.unique;
    }
    kernel(t);
  });
}

// The benchmark's floors: the indices are the rows to touch, each part the ones it owns (as in
// run_typed), and a contiguous slice of the values (any number of rows) when they are read.
template <class T>
void run_floor_typed(const KernelTable& table, const SparseProblem& p) {
  if (p.k == 0) return;
  const Coeffs<T> coeffs = coeffs_of<T>(p.options, p.step);
  const std::uint32_t parts = part_count(p);
  std::vector<PartSpace>& spaces = calling_threads_parts(parts);
  parallel_for(parts, [&](std::size_t part_index) {
    const auto part = static_cast<std::uint32_t>(part_index);
    PartSpace& w = spaces[part];
    SparseTask<T> t = task_for<T, T>(p, coeffs, w, parts, part);
    w.floor_rows.clear();
    for (std::size_t i = 0; i < p.k; ++i) {
      const auto row = static_cast<std::uint64_t>(index_at(p, i));
      if (parts == 1 || row_part(row, parts) == part) w.floor_rows.push_back(static_cast<std::size_t>(row));
    }
    t.rows = w.floor_rows.data();
    t.unique = w.floor_rows.size();
    const std::size_t begin = p.value_rows * part / parts, end = p.value_rows * (part + 1) / parts;
    t.values = p.floor == SparseProblem::Floor::with_values ? t.values + begin * p.dim : nullptr;
    t.k = end - begin;  // the value rows to read
    pair_kernels(table, T{}, T{}).floor(t);
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

// The table's and state's storage types as a call of f<P, S>.
template <class F>
decltype(auto) with_types(const SparseProblem& p, F&& f) {
  const bool master = p.state_dtype == Dtype::f32;
  switch (p.dtype) {
    case Dtype::f16:
      return master ? f(float16{}, float{}) : f(float16{}, float16{});
    case Dtype::bf16:
      return master ? f(bfloat16{}, float{}) : f(bfloat16{}, bfloat16{});
    case Dtype::f64:
      return f(double{}, double{});
    case Dtype::f32:
      break;
  }
  return f(float{}, float{});
}

void run_sparse(const KernelTable& kernels, const SparseProblem& p) {
  if (p.floor != SparseProblem::Floor::none) {
    if (p.dtype == Dtype::f32) {
      run_floor_typed<float>(kernels, p);
    } else {
      run_floor_typed<double>(kernels, p);  // float64 alone otherwise: the bindings refuse 16-bit floors
    }
    return;
  }
  with_types(p, [&](auto table, auto state) { run_typed<decltype(table), decltype(state)>(kernels, p); });
}

bool sparse_kernel_exists(const KernelTable& kernels, const SparseProblem& p) {
  if (p.floor != SparseProblem::Floor::none) return !is_16bit(p.dtype);
  return with_types(p, [&](auto table, auto state) {
    return kernel_of<decltype(table), decltype(state)>(kernels, p, false) != nullptr;
  });
}

}  // namespace adagrad
