#include "adagrad/sparse.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "adagrad/half.hpp"
#include "adagrad/thread_pool.hpp"

namespace adagrad {

namespace {

// The calling thread's work space for its sparse calls, shared by the parts (tasks) of a call: each
// part has its own slices of it. reserve_sparse() sizes it for the whole step before the step
// writes anything (a failed allocation is then a MemoryError with nothing changed); a call only
// fills it. It grows with the ids of one call, not with the threads, and one bigger than
// kRetainedBytes is freed after the step that needed it.
struct Workspace {
  // Open addressing from row to its unique number; a free slot holds kFreeSlot. Each part probes
  // its own range of the slots, and frees only the slots it used: a call costs nothing to clear.
  struct Slot {
    std::uint64_t row;
    std::uint32_t unique;
  };
  static constexpr std::uint64_t kFreeSlot = ~std::uint64_t{0};
  std::vector<Slot> slots;
  // Per occurrence: the next one of the same row (kEndOfChain); with several parts, the
  // occurrences dealt to each part, in input order within it.
  std::vector<std::uint32_t> next, order;
  // Per part, a slice as long as its occurrences: its unique rows in order of first occurrence,
  // each one's first and latest occurrence and slot.
  std::vector<std::size_t> rows, used;
  std::vector<std::uint32_t> first, last;
  std::vector<std::size_t> part_begin, slot_begin;  // parts + 1 offsets into the slices, the slots
  std::vector<unsigned char> scratch;               // per part: one row of the compute type
  std::size_t scratch_stride = 0;
  // Row-wise duplicates = sum (sums_held): per occurrence its unique row, and per part a slice of
  // summed rows (one per unique row, as long as its occurrences' slice) in the compute type.
  std::vector<std::uint32_t> owner;
  std::vector<unsigned char> sums;
  bool slots_free = true;  // false while a call runs: a call cut short leaves them to be cleared

  std::size_t bytes() const {
    return slots.capacity() * sizeof(Slot) +
           (next.capacity() + order.capacity() + first.capacity() + last.capacity() + owner.capacity()) * 4 +
           sums.capacity() +
           (rows.capacity() + used.capacity() + part_begin.capacity() + slot_begin.capacity()) * 8 + scratch.capacity();
  }
};

thread_local Workspace t_workspace;

// A workspace bigger than this is freed after the step: a huge call's memory is not kept for the
// small ones that follow (at the cost of page faults if huge calls repeat: ~4 ms a 64 MiB).
constexpr std::size_t kRetainedBytes = std::size_t{64} << 20;

// Slice offsets are rounded up to a cache line of each array, so that parts never share one.
constexpr std::size_t kSlicePad = 16;
inline std::size_t padded(std::size_t n) { return (n + kSlicePad - 1) / kSlicePad * kSlicePad; }

// A part's hash table: at least 16 slots and twice its occurrences (load <= 1/2), a power of two.
inline std::size_t slot_count(std::size_t occurrences) {
  std::size_t n = 16;
  while (n < 2 * occurrences + 2) n *= 2;
  return n;
}

// The slot hash: golden-ratio multiplier, top bits (row_part() uses another multiplier).
inline std::size_t slot_of(std::uint64_t row, int shift) {
  return static_cast<std::size_t>((row * 0x9E3779B97F4A7C15ull) >> shift);
}

template <class V>
void grow(V& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
}

// Deals the occurrences to the parts (a counting sort by row_part, input order kept within each
// part) and lays out each part's slices and slots. One part: every occurrence, no order array.
template <class Index>
void deal_to_parts(const Index* indices, std::size_t k, std::uint32_t parts, Workspace& w) {
  w.part_begin[0] = 0;
  w.slot_begin[0] = 0;
  if (parts == 1) {
    w.part_begin[1] = k;
    w.slot_begin[1] = slot_count(k);
    return;
  }
  std::size_t* const count = w.part_begin.data() + 1;  // counts first, then offsets
  std::fill(count, count + parts, std::size_t{0});
  for (std::size_t i = 0; i < k; ++i) ++count[row_part(static_cast<std::uint64_t>(indices[i]), parts)];
  std::size_t at = 0, slot_at = 0;
  for (std::uint32_t part = 0; part < parts; ++part) {
    const std::size_t c = count[part];
    count[part] = at;  // part_begin[part] now: the fill position below
    at = padded(at + c);
    slot_at += slot_count(c);
    w.slot_begin[part + 1] = slot_at;
  }
  // part_begin[p + 1] holds part p's fill position; once filled it is its end, which the layout
  // then pads to the start of part p + 1.
  for (std::size_t i = 0; i < k; ++i) {
    const std::uint32_t part = row_part(static_cast<std::uint64_t>(indices[i]), parts);
    w.order[count[part]++] = static_cast<std::uint32_t>(i);
  }
}

// Part p's occurrences: [part_start(p), part_end(p)) of the order array (or of 0..k for one part).
inline std::size_t part_start(const Workspace& w, std::uint32_t parts, std::uint32_t part) {
  return part == 0 || parts == 1 ? 0 : padded(w.part_begin[part]);
}
inline std::size_t part_end(const Workspace& w, std::uint32_t part) { return w.part_begin[part + 1]; }

// The unique rows of one part in order of first occurrence, each with the chain of its occurrences
// in input order: one pass over the part's occurrences, no sort. Returns the number of unique rows.
// (A branch-free form of the insert measured slower here: 5.9-7.1 against 5.0-5.8 ns per id.)
// owner: where each occurrence's unique row is written (null: nowhere).
template <class Index>
std::size_t group_rows(const Index* indices, std::uint32_t parts, std::uint32_t part, Workspace& w,
                       std::uint32_t* owner) {
  const std::size_t begin = part_start(w, parts, part), end = part_end(w, part);
  Workspace::Slot* const slots = w.slots.data() + w.slot_begin[part];
  const std::size_t capacity = w.slot_begin[part + 1] - w.slot_begin[part];
  const int shift = 64 - __builtin_ctzll(capacity);
  std::size_t* const rows = w.rows.data() + begin;
  std::size_t* const used = w.used.data() + begin;
  std::uint32_t* const first = w.first.data() + begin;
  std::uint32_t* const last = w.last.data() + begin;
  std::uint32_t* const next = w.next.data();
  std::size_t unique = 0;
  for (std::size_t at = begin; at < end; ++at) {
    const std::size_t i = parts == 1 ? at : w.order[at];
    const auto row = static_cast<std::uint64_t>(indices[i]);
    const auto occurrence = static_cast<std::uint32_t>(i);
    next[i] = kEndOfChain;
    std::size_t h = slot_of(row, shift);
    while (slots[h].row != Workspace::kFreeSlot && slots[h].row != row) h = (h + 1) & (capacity - 1);
    if (slots[h].row == row) {
      const std::uint32_t u = slots[h].unique;
      if (owner != nullptr) owner[i] = u;
      next[last[u]] = occurrence;
      last[u] = occurrence;
      continue;
    }
    slots[h] = {row, static_cast<std::uint32_t>(unique)};
    if (owner != nullptr) owner[i] = static_cast<std::uint32_t>(unique);
    used[unique] = h;
    rows[unique] = static_cast<std::size_t>(row);
    first[unique] = occurrence;
    last[unique] = occurrence;
    ++unique;
  }
  for (std::size_t u = 0; u < unique; ++u) slots[used[u]].row = Workspace::kFreeSlot;
  return unique;
}

// The benchmark floors' rows of one part: its occurrences' rows, in input order.
template <class Index>
std::size_t floor_rows(const Index* indices, std::uint32_t parts, std::uint32_t part, Workspace& w) {
  const std::size_t begin = part_start(w, parts, part), end = part_end(w, part);
  for (std::size_t at = begin; at < end; ++at) {
    w.rows[at] = static_cast<std::size_t>(indices[parts == 1 ? at : w.order[at]]);
  }
  return end - begin;
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

// How many parts (tasks) the rows are dealt to: one per thread, or one for a small call.
std::uint32_t part_count(const SparseProblem& p) {
  const int threads = step_threads();
  return static_cast<std::uint32_t>(p.k * p.dim < kInlineSparseElements || threads == 1 ? 1 : threads);
}

std::size_t compute_size(Dtype dtype) { return dtype == Dtype::f64 ? sizeof(double) : sizeof(float); }

// Row-wise duplicates = sum sums a row's occurrences in input order into the workspace (one pass
// down the values, which the hardware prefetcher streams) rather than by walking each row's chain
// (scattered reads): measured 1.2-1.4x faster at 1M x 64 and 1M x 128 (docs/speed.md, "Row-wise").
// Up to this many bytes of sums; a larger call walks the chains, with the same bits.
constexpr std::size_t kRowwiseSumsBytes = std::size_t{16} << 20;

bool sums_held(const SparseProblem& p) {
  return p.rowwise && p.duplicates == Duplicates::sum && p.floor == SparseProblem::Floor::none &&
         p.k * p.dim * compute_size(p.dtype) <= kRowwiseSumsBytes;
}

// Room in the calling thread's workspace for one problem (nothing written to any array).
void reserve_for(const SparseProblem& p, Workspace& w) {
  const std::size_t parts = part_count(p);
  const bool grouped = p.duplicates == Duplicates::sum || p.floor != SparseProblem::Floor::none;
  // A row of the compute type (at least one register: the floors' kernel stores one), per part.
  const std::size_t stride = (std::max<std::size_t>(p.dim, 16) * compute_size(p.dtype) + 63) / 64 * 64;
  w.scratch_stride = std::max(stride, w.scratch_stride);
  grow(w.scratch, parts * w.scratch_stride + 64);  // + 64: room to align the first row
  grow(w.part_begin, parts + 1);
  grow(w.slot_begin, parts + 1);
  if (!grouped || p.k == 0) return;
  const std::size_t slices = p.k + kSlicePad * parts;
  for (auto* v : {&w.rows, &w.used}) grow(*v, slices);
  for (auto* v : {&w.first, &w.last}) grow(*v, slices);
  grow(w.next, p.k);
  if (parts > 1) grow(w.order, slices);
  if (sums_held(p)) {
    grow(w.owner, p.k);
    grow(w.sums, slices * p.dim * compute_size(p.dtype) + 64);  // + 64: room to align the first row
  }
  // Each part's slots: a power of two below 4 c + 4 (and 16 at least) for c occurrences; one
  // part's exactly (resize writes every slot: the bound would be memory touched for nothing).
  const std::size_t slot_bound = parts == 1 ? slot_count(p.k) : 4 * p.k + 20 * parts;
  if (!w.slots_free) {  // a call cut short (an exception in a task) may have left rows behind
    w.slots.assign(std::max(w.slots.size(), slot_bound), {Workspace::kFreeSlot, 0});
    w.slots_free = true;
  } else if (w.slots.size() < slot_bound) {
    w.slots.resize(slot_bound, {Workspace::kFreeSlot, 0});
  }
}

// A part's task over the whole problem; the grouping (or the floor's rows) is the caller's to add.
template <class P, class S>
SparseTask<P, S> task_for(const SparseProblem& p, const Coeffs<compute_t<P>>& coeffs, Workspace& w,
                          std::uint32_t parts, std::uint32_t part) {
  using C = compute_t<P>;
  const auto base = reinterpret_cast<std::uintptr_t>(w.scratch.data());
  const std::uintptr_t aligned = (base + 63) / 64 * 64 + part * w.scratch_stride;
  SparseTask<P, S> t{};
  t.table = static_cast<P*>(p.table);
  for (std::size_t j = 0; j < kMaxStates; ++j) t.states[j] = static_cast<S*>(p.states[j]);
  t.decay_counts = p.decay_counts;
  t.values = static_cast<const P*>(p.values);
  t.bags = p.bags;
  t.scales = static_cast<const P*>(p.scales);
  t.dim = p.dim;
  t.coeffs = &coeffs;
  t.scratch = reinterpret_cast<C*>(aligned);
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

// f(indices) with the indices' own type.
template <class F>
decltype(auto) with_indices(const SparseProblem& p, F&& f) {
  if (p.indices_int64) return f(static_cast<const std::int64_t*>(p.indices));
  return f(static_cast<const std::int32_t*>(p.indices));
}

template <class P, class S>
void run_typed(const KernelTable& table, const SparseProblem& p, Workspace& w) {
  using C = compute_t<P>;
  const Coeffs<C> coeffs = coeffs_of<C>(p.options, p.step);
  const SparseFn<P, S> kernel = kernel_of<P, S>(table, p, is_plain(coeffs));
  const std::uint32_t parts = part_count(p);
  const bool grouped = p.duplicates == Duplicates::sum;
  const bool held = sums_held(p);
  if (grouped) with_indices(p, [&](auto indices) { deal_to_parts(indices, p.k, parts, w); });
  w.slots_free = false;
  parallel_for(parts, [&](std::size_t part_index) {
    const auto part = static_cast<std::uint32_t>(part_index);
    SparseTask<P, S> t = task_for<P, S>(p, coeffs, w, parts, part);
    if (grouped) {
      std::uint32_t* const owner = held ? w.owner.data() : nullptr;
      t.unique = with_indices(p, [&](auto indices) { return group_rows(indices, parts, part, w, owner); });
      t.rows = w.rows.data() + part_start(w, parts, part);
      t.first = w.first.data() + part_start(w, parts, part);
      t.next = w.next.data();
    }
    if (held) {
      const auto base = reinterpret_cast<std::uintptr_t>(w.sums.data());
      t.owner = w.owner.data();
      t.scratch = reinterpret_cast<C*>((base + 63) / 64 * 64) + part_start(w, parts, part) * p.dim;
    }
    kernel(t);
  });
  w.slots_free = true;
}

// The benchmark's floors: the indices are the rows to touch, each part the ones it owns (as in
// run_typed), and a contiguous slice of the values (any number of rows) when they are read.
template <class T>
void run_floor_typed(const KernelTable& table, const SparseProblem& p, Workspace& w) {
  const Coeffs<T> coeffs = coeffs_of<T>(p.options, p.step);
  const std::uint32_t parts = part_count(p);
  with_indices(p, [&](auto indices) { deal_to_parts(indices, p.k, parts, w); });
  parallel_for(parts, [&](std::size_t part_index) {
    const auto part = static_cast<std::uint32_t>(part_index);
    SparseTask<T> t = task_for<T, T>(p, coeffs, w, parts, part);
    t.unique = with_indices(p, [&](auto indices) { return floor_rows(indices, parts, part, w); });
    t.rows = w.rows.data() + part_start(w, parts, part);
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

void reserve_sparse(const std::vector<SparseProblem>& problems) {
  for (const SparseProblem& p : problems) reserve_for(p, t_workspace);
}

void release_sparse() {
  if (t_workspace.bytes() > kRetainedBytes) t_workspace = Workspace{};
}

void run_sparse(const KernelTable& kernels, const SparseProblem& p) {
  if (p.k == 0) return;
  Workspace& w = t_workspace;
  reserve_for(p, w);  // nothing to do after reserve_sparse
  if (p.floor != SparseProblem::Floor::none) {
    if (p.dtype == Dtype::f32) {
      run_floor_typed<float>(kernels, p, w);
    } else {
      run_floor_typed<double>(kernels, p, w);  // float64 alone otherwise: the bindings refuse 16-bit floors
    }
    return;
  }
  with_types(p, [&](auto table, auto state) { run_typed<decltype(table), decltype(state)>(kernels, p, w); });
}

bool sparse_kernel_exists(const KernelTable& kernels, const SparseProblem& p) {
  if (p.floor != SparseProblem::Floor::none) return !is_16bit(p.dtype);
  return with_types(p, [&](auto table, auto state) {
    return kernel_of<decltype(table), decltype(state)>(kernels, p, false) != nullptr;
  });
}

}  // namespace adagrad
