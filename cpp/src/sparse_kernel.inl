// The sparse row kernels, written once for every rule. Each kernels_<isa>.cpp includes this file
// after dense_kernel.inl (whose update_lanes the element-wise rows share): one call updates the rows
// of one part of a table (kernels.hpp, SparseTask), with no function call and no set-up per row.
//
// Schedule (FBGEMM's, made exact): rows are visited in a fixed order (occurrences in input order, or
// unique rows in order of first occurrence) and the lines of the row kRowsAhead rows further on are
// prefetched, so that the memory latency of random rows overlaps the arithmetic. A row's
// occurrences are summed in input order from +0, as the dense-equivalent gradient
// np.add.at(zeros, indices, values) is, so every path gives the same bits; the transforms then
// apply to the summed row.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "adagrad/kernels.hpp"

namespace adagrad {
namespace {

// Rows (unique rows, or occurrences) prefetched ahead of the one being updated. 8 to 32 measured
// the same within noise at 1M x 64 and 1M x 128 float32 (docs/speed.md, "Sparse"); FBGEMM uses 16.
constexpr std::size_t kRowsAhead = 16;

// Every cache line of the n elements at p, for writing (table and state rows) or reading (values).
template <int kWrite, class T>
inline __attribute__((always_inline)) void prefetch_lines(const T* p, std::size_t n) {
  constexpr std::uintptr_t kLine = 64;
  const std::uintptr_t first = reinterpret_cast<std::uintptr_t>(p) & ~(kLine - 1);
  const std::uintptr_t last = reinterpret_cast<std::uintptr_t>(p + n) - 1;
  for (std::uintptr_t a = first; a <= last; a += kLine) __builtin_prefetch(reinterpret_cast<const void*>(a), kWrite, 3);
}

template <class Task>
inline __attribute__((always_inline)) std::uint64_t index_of(const Task& t, std::size_t i) {
  return t.indices_int64 ? static_cast<std::uint64_t>(static_cast<const std::int64_t*>(t.indices)[i])
                         : static_cast<std::uint64_t>(static_cast<const std::int32_t*>(t.indices)[i]);
}

template <class Task>
inline __attribute__((always_inline)) bool owns(const Task& t, std::uint64_t row) {
  return t.parts == 1 || row_part(row, t.parts) == t.part;
}

// The rule's state rows of table row r (element-wise: r * dim, row-wise: r).
template <class Rule, class P, class S>
inline __attribute__((always_inline)) RuleStates<Rule, S> states_at(const SparseTask<P, S>& t, std::size_t offset) {
  return rule_states<Rule>(t.states).offset(offset);
}

// Where occurrence o's gradient row is read: values row o or, in a bag's backward, its bag's row of
// the pooled gradient, then (scaled) times its scale in the compute type, rounded to P as torch's
// per-occurrence row is (load_value). The one accessor of value rows, prefetches included.
template <class P>
struct ValueRow {
  const P* row;
  compute_t<P> scale;
  bool scaled;
};

template <class P, class S>
inline __attribute__((always_inline)) ValueRow<P> value_row(const SparseTask<P, S>& t, std::size_t o) {
  const std::size_t r = t.bags == nullptr ? o : static_cast<std::size_t>(t.bags[o]);
  const P* row = t.values + r * t.dim;
  if (t.scales == nullptr) return {row, compute_t<P>(1), false};
  return {row, to_compute<compute_t<P>>(t.scales[o]), true};
}

template <class O, class P>
inline __attribute__((always_inline)) typename O::R load_value(const ValueRow<P>& v, std::size_t j) {
  const typename O::R x = load_as<O>(v.row + j);
  if (!v.scaled) return x;
  const typename O::R product = O::mul(x, O::set1(v.scale));
  if constexpr (is_16bit_storage<P>) {  // torch's row is a tensor of the table's dtype
    P rounded[O::W];
    store_as<O>(rounded, product);
    return load_as<O>(rounded);
  } else {
    return product;
  }
}

// The table and state lines of row r, about to be written.
template <class Rule, bool kRowwise, class P, class S>
inline __attribute__((always_inline)) void prefetch_row(const SparseTask<P, S>& t, std::size_t r) {
  const std::size_t d = t.dim;
  prefetch_lines<1>(t.table + r * d, d);
  for (std::size_t j = 0; j < Rule::kStates.size(); ++j) {
    prefetch_lines<1>(kRowwise ? t.states[j] + r : t.states[j] + r * d, kRowwise ? 1 : d);
  }
}

// The update of one row of d elements with gradient g (a value row, or a summed row in the
// compute type). kFromZero: the gradient is +0 + g, a sum of one occurrence from +0 (it differs
// from g only for g = -0, and then so may the result). index: the row's first element's number for
// stochastic rounding (duplicates = sum: its offset in the table, row * dim; sequential: in the
// values, occurrence * dim, so that each occurrence of a repeated row draws fresh bits).
template <class V, class Rule, bool kPlain, bool kFromZero, class P, class S, class G>
inline __attribute__((always_inline)) void update_row(P* __restrict p, const G* __restrict g,
                                                      const RuleStates<Rule, S>& s, std::size_t d,
                                                      const Lanes<V, Rule>& kv,
                                                      const Lanes<ScalarVec<typename V::T>, Rule>& ks,
                                                      std::uint64_t index) {
  using T = typename V::T;
  auto one = [&](auto ops, const auto& k, std::size_t j) {
    using O = decltype(ops);
    typename O::R gv = load_as<O>(g + j);
    if constexpr (kFromZero) gv = O::add(O::set1(T(0)), gv);
    update_lanes<O, Rule, kPlain>(p + j, gv, s.offset(j), k, index + j);
  };
  std::size_t j = 0;
  if constexpr (V::W > 1) {
    for (; j + V::W <= d; j += V::W) one(V{}, kv, j);
  }
  for (; j < d; ++j) one(ScalarVec<T>{}, ks, j);
}

// AdagradDecay: row r's sums take the decays due since it was last touched (decay_sums), once per
// update of the row, before it; its count of decays done becomes the step's.
template <class Rule, class P, class S>
inline __attribute__((always_inline)) void catch_up_decays(const SparseTask<P, S>& t, std::size_t r) {
  if constexpr (Rule::kDecayCounts) {
    const auto& c = rule_coeffs<Rule>(*t.coeffs);
    const std::int64_t due = c.periods - t.decay_counts[r];
    if (due > 0) {
      decay_sums(t.states[0] + r * t.dim, t.dim, due, c.rate, c.floor);
      t.decay_counts[r] = c.periods;
    }
  }
}

// out = ((+0 + v[o0]) + v[o1]) + ... over the chain of occurrences from o0, in input order, in the
// compute type (16-bit values widened).
template <class V, class P, class S>
void sum_chain(typename V::T* __restrict out, const SparseTask<P, S>& t, std::uint32_t o0) {
  using T = typename V::T;
  const std::size_t d = t.dim;
  auto start = [&](auto ops, const ValueRow<P>& a, std::size_t j) {
    using O = decltype(ops);
    O::store(out + j, O::add(O::set1(T(0)), load_value<O>(a, j)));
  };
  auto add = [&](auto ops, const ValueRow<P>& a, std::size_t j) {
    using O = decltype(ops);
    O::store(out + j, O::add(O::load(out + j), load_value<O>(a, j)));
  };
  auto over_row = [&](auto op, const ValueRow<P>& a) {
    std::size_t j = 0;
    if constexpr (V::W > 1) {
      for (; j + V::W <= d; j += V::W) op(V{}, a, j);
    }
    for (; j < d; ++j) op(ScalarVec<T>{}, a, j);
  };
  over_row(start, value_row(t, o0));
  for (std::uint32_t o = t.next[o0]; o != kEndOfChain; o = t.next[o]) over_row(add, value_row(t, o));
}

// Unique row u's table and state lines, and the value rows of all its occurrences (sum modes).
template <class Rule, bool kRowwise, class P, class S>
inline __attribute__((always_inline)) void prefetch_unique(const SparseTask<P, S>& t, std::size_t u) {
  prefetch_row<Rule, kRowwise>(t, t.rows[u]);
  for (std::uint32_t o = t.first[u]; o != kEndOfChain; o = t.next[o]) {
    prefetch_lines<0>(value_row(t, o).row, t.dim);
  }
}

// duplicates = sum, element-wise state, any row length: each unique row updated once with its
// summed gradient (a row seen once straight from its value row, others summed into scratch).
template <class V, class Rule, bool kPlain, class P, class S>
void sum_rows(const SparseTask<P, S>& t) {
  using T = typename V::T;
  const std::size_t d = t.dim;
  const Lanes<V, Rule> kv(*t.coeffs);
  const Lanes<ScalarVec<T>, Rule> ks(*t.coeffs);
  for (std::size_t u = 0; u < t.unique; ++u) {
    if (u + kRowsAhead < t.unique) prefetch_unique<Rule, false>(t, u + kRowsAhead);
    const std::size_t r = t.rows[u];
    const std::uint32_t o = t.first[u];
    catch_up_decays<Rule>(t, r);
    const RuleStates<Rule, S> s = states_at<Rule>(t, r * d);
    const ValueRow<P> v = value_row(t, o);
    if (t.next[o] == kEndOfChain && !v.scaled) {
      update_row<V, Rule, kPlain, true>(t.table + r * d, v.row, s, d, kv, ks, r * d);
    } else {  // a scaled row summed from +0 alone: the bits of the direct path's +0 + g
      sum_chain<V>(t.scratch, t, o);
      update_row<V, Rule, kPlain, false>(t.table + r * d, t.scratch, s, d, kv, ks, r * d);
    }
  }
}

// g = ((+0 + v[o0]) + v[o1]) + ... over the chain of occurrences from o0, a row of exactly kD
// elements held in kD / W registers (sum_chain's order).
template <class V, std::size_t kD, class P, class S>
inline __attribute__((always_inline)) void sum_chain_in_registers(typename V::R* g, const SparseTask<P, S>& t,
                                                                  std::uint32_t o0) {
  constexpr std::size_t kRegs = kD / V::W;
  const typename V::R zero = V::set1(typename V::T(0));
  ValueRow<P> v = value_row(t, o0);
  for (std::size_t q = 0; q < kRegs; ++q) g[q] = V::add(zero, load_value<V>(v, q * V::W));
  for (std::uint32_t o = t.next[o0]; o != kEndOfChain; o = t.next[o]) {
    v = value_row(t, o);
    for (std::size_t q = 0; q < kRegs; ++q) g[q] = V::add(g[q], load_value<V>(v, q * V::W));
  }
}

// duplicates = sum, element-wise state, rows of exactly kD elements: the summed gradient of a row
// stays in kD / W registers from its first value row to its update.
template <class V, class Rule, bool kPlain, std::size_t kD, class P, class S>
void sum_rows_fixed(const SparseTask<P, S>& t) {
  constexpr std::size_t kRegs = kD / V::W;
  const Lanes<V, Rule> kv(*t.coeffs);
  // The task's pointers in locals: the compiler cannot tell that a row's stores leave them as they
  // were, and would read them again after each.
  P* const table = t.table;
  const RuleStates<Rule, S> states = rule_states<Rule>(t.states);
  for (std::size_t u = 0; u < t.unique; ++u) {
    if (u + kRowsAhead < t.unique) prefetch_unique<Rule, false>(t, u + kRowsAhead);
    typename V::R g[kRegs];
    sum_chain_in_registers<V, kD>(g, t, t.first[u]);
    const std::size_t r = t.rows[u];
    catch_up_decays<Rule>(t, r);
    const RuleStates<Rule, S> s = states.offset(r * kD);
    for (std::size_t q = 0; q < kRegs; ++q) {
      update_lanes<V, Rule, kPlain>(table + r * kD + q * V::W, g[q], s.offset(q * V::W), kv, r * kD + q * V::W);
    }
  }
}

// Every occurrence i of a row this part owns, in input order: update(i, row). Prefetches the
// table, state and value lines of the occurrence kRowsAhead * parts positions on (about kRowsAhead
// owned ones); no grouping pass.
template <class Rule, bool kRowwise, class P, class S, class Update>
inline __attribute__((always_inline)) void for_each_owned_occurrence(const SparseTask<P, S>& t, Update update) {
  const std::size_t d = t.dim, ahead = kRowsAhead * t.parts;
  for (std::size_t i = 0; i < t.k; ++i) {
    if (i + ahead < t.k) {
      const std::uint64_t next_row = index_of(t, i + ahead);
      if (owns(t, next_row)) {
        prefetch_row<Rule, kRowwise>(t, static_cast<std::size_t>(next_row));
        prefetch_lines<0>(value_row(t, i + ahead).row, d);
      }
    }
    const std::uint64_t r = index_of(t, i);
    if (owns(t, r)) update(i, static_cast<std::size_t>(r));
  }
}

// out = occurrence's gradient row (value_row), in the compute type.
template <class V, class P>
void scaled_row(typename V::T* __restrict out, const ValueRow<P>& v, std::size_t d) {
  using T = typename V::T;
  std::size_t j = 0;
  if constexpr (V::W > 1) {
    for (; j + V::W <= d; j += V::W) V::store(out + j, load_value<V>(v, j));
  }
  for (; j < d; ++j) ScalarVec<T>::store(out + j, load_value<ScalarVec<T>>(v, j));
}

// duplicates = sequential, element-wise state: each occurrence the dense update of its row.
template <class V, class Rule, bool kPlain, class P, class S>
void sequential_rows(const SparseTask<P, S>& t) {
  using T = typename V::T;
  const std::size_t d = t.dim;
  const Lanes<V, Rule> kv(*t.coeffs);
  const Lanes<ScalarVec<T>, Rule> ks(*t.coeffs);
  for_each_owned_occurrence<Rule, false>(t, [&](std::size_t i, std::size_t r) {
    catch_up_decays<Rule>(t, r);
    const ValueRow<P> v = value_row(t, i);
    if (!v.scaled) {
      update_row<V, Rule, kPlain, false>(t.table + r * d, v.row, states_at<Rule>(t, r * d), d, kv, ks, i * d);
    } else {
      scaled_row<V>(t.scratch, v, d);
      update_row<V, Rule, kPlain, false>(t.table + r * d, t.scratch, states_at<Rule>(t, r * d), d, kv, ks, i * d);
    }
  });
}

// The row-wise sum of squares in its canonical order (docs/semantics.md section 3, FBGEMM's): the
// square of element j, rounded, added to lane j % 8 in increasing j (lanes from +0), then
// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)). Fed register by register (register q holds
// elements q * W ..): registers of W lanes hold canonical lanes when W divides 8; a 16-lane
// register's upper half is added after its lower half into an accumulator whose lanes 0..7 count.
template <class V>
struct SquareLanes {
  using T = typename V::T;
  using R = typename V::R;
  static constexpr std::size_t kRegs = V::W >= 8 ? 1 : 8 / V::W;
  static_assert(V::W <= 8 ? 8 % V::W == 0 : V::W == 16);
  R acc[kRegs];

  SquareLanes() {
    for (std::size_t r = 0; r < kRegs; ++r) acc[r] = V::set1(T(0));
  }
  inline __attribute__((always_inline)) void add(std::size_t q, typename V::R x) {
    const R square = V::mul(x, x);
    if constexpr (V::W == 16) {
      acc[0] = V::add(V::add(acc[0], square), V::upper_half(square));
    } else {
      acc[q % kRegs] = V::add(acc[q % kRegs], square);
    }
  }
  // The total, with elements [from, d) of g added lane by lane first (from: the first element no
  // register held, a multiple of min(W, 8)).
  template <class G>
  inline __attribute__((always_inline)) T total(const G* g, std::size_t from, std::size_t d) const {
    alignas(64) T lanes[kRegs * V::W >= 8 ? kRegs * V::W : 8];
    for (std::size_t r = 0; r < kRegs; ++r) V::store(lanes + r * V::W, acc[r]);
    for (std::size_t j = from; j < d; ++j) {
      const T x = to_compute<T>(g[j]);
      lanes[j % 8] = lanes[j % 8] + x * x;
    }
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  }
};

// The multiplier of a row-wise row: its accumulator s takes the mean square, s + total / d (rounded
// to a 16-bit state on store, the multiplier using the unrounded value, as element-wise), and
// m = clr / (sqrt(s) + eps)  [eps inside: clr / sqrt(s + eps)].
template <class Rule, bool kPlain, class T, class St>
inline __attribute__((always_inline)) T rowwise_multiplier(St* state, T total, std::size_t d, const Coeffs<T>& c) {
  using S = ScalarVec<T>;
  const auto& rc = rule_coeffs<Rule>(c);
  const T s = to_compute<T>(*state) + total / static_cast<T>(d);
  *state = to_storage<St>(s);
  const T denom = !kPlain && rc.eps_inside_sqrt ? S::sqrt(s + rc.eps) : S::sqrt(s) + rc.eps;
  return rc.clr / denom;
}

// theta_j <- decoupled(theta_j) - m * g_j over W lanes, the param written (stochastic rounding:
// element number index).
template <class O, class Rule, bool kPlain, class P, class K>
inline __attribute__((always_inline)) void rowwise_apply(P* p, typename O::R g, typename O::R m, const K& k,
                                                         std::uint64_t index) {
  typename O::R v = load_as<O>(p);
  if constexpr (!kPlain) v = Rule::decoupled(v, k.rule);
  store_param<O, kPlain>(p, O::sub(v, O::mul(m, g)), k.transform, index);
}

// The gradient the row-wise update sees: the transforms, then the coupled weight decay (the plain
// case: the gradient as it is).
template <class O, class Rule, bool kPlain, class P, class K>
inline __attribute__((always_inline)) typename O::R rowwise_grad(const P* p, typename O::R g, const K& k) {
  if constexpr (kPlain) {
    return g;
  } else {
    return Rule::coupled(load_as<O>(p), transformed(g, k.transform), k.rule);
  }
}

// One row-wise update of a row of any length d (docs/semantics.md section 3), two passes: the
// gradient the update sees (into scratch unless it is the plain float gradient itself) and its
// sum of squares, then the multiplier and the update. grad: a value row (sequential) or a summed
// row in scratch (sum); index: the row's first element's number (stochastic rounding).
template <class V, class Rule, bool kPlain, class P, class St, class G>
void rowwise_row(P* __restrict param, const G* grad, typename V::T* scratch, St* __restrict state, std::size_t d,
                 const Coeffs<typename V::T>& c, std::uint64_t index) {
  using T = typename V::T;
  using S = ScalarVec<T>;
  const Lanes<V, Rule> kv(c);
  const Lanes<S, Rule> ks(c);
  // The plain case reads a float gradient where it is; otherwise the seen gradient goes to scratch.
  constexpr bool kInPlace = kPlain && std::is_same_v<G, T>;
  SquareLanes<V> squares;
  std::size_t j = 0;
  if constexpr (V::W > 1) {
    for (std::size_t q = 0; j + V::W <= d; j += V::W, ++q) {
      const typename V::R g = rowwise_grad<V, Rule, kPlain>(param + j, load_as<V>(grad + j), kv);
      if constexpr (!kInPlace) V::store(scratch + j, g);
      squares.add(q, g);
    }
  }
  const std::size_t vector_end = j;
  for (; j < d; ++j) {
    const T g = rowwise_grad<S, Rule, kPlain>(param + j, to_compute<T>(grad[j]), ks);
    if constexpr (!kInPlace) scratch[j] = g;
  }
  const T* const seen = kInPlace ? reinterpret_cast<const T*>(grad) : scratch;
  const T m = rowwise_multiplier<Rule, kPlain>(state, squares.total(seen, vector_end, d), d, c);
  j = 0;
  if constexpr (V::W > 1) {
    for (; j + V::W <= d; j += V::W) rowwise_apply<V, Rule, kPlain>(param + j, V::load(seen + j), V::set1(m), kv, index + j);
  }
  for (; j < d; ++j) rowwise_apply<S, Rule, kPlain>(param + j, seen[j], m, ks, index + j);
}

// One row-wise update of a row of exactly kD elements whose gradient is in g[kD / W] registers:
// one pass computes the seen gradient and its sum of squares, a second writes the row.
template <class V, class Rule, bool kPlain, std::size_t kD, class P, class St>
inline __attribute__((always_inline)) void rowwise_row_fixed(P* __restrict param, typename V::R* g,
                                                             St* __restrict state, const Lanes<V, Rule>& kv,
                                                             const Coeffs<typename V::T>& c, std::uint64_t index) {
  constexpr std::size_t kRegs = kD / V::W;
  SquareLanes<V> squares;
  for (std::size_t q = 0; q < kRegs; ++q) {
    g[q] = rowwise_grad<V, Rule, kPlain>(param + q * V::W, g[q], kv);
    squares.add(q, g[q]);
  }
  const typename V::R m = V::set1(rowwise_multiplier<Rule, kPlain>(state, squares.total(static_cast<const typename V::T*>(nullptr), kD, kD), kD, c));
  for (std::size_t q = 0; q < kRegs; ++q) rowwise_apply<V, Rule, kPlain>(param + q * V::W, g[q], m, kv, index + q * V::W);
}

// f(std::integral_constant<std::size_t, kD>{}) when d is one of kFixedDims whose row fits in 16
// registers of V; else f(std::integral_constant<std::size_t, 0>{}), the any-length kernel.
template <class V, std::size_t kD>
constexpr bool fits_registers() {
  return kD % V::W == 0 && kD / V::W <= 16;
}

template <class V, class F>
inline void with_fixed_dim(std::size_t d, F&& f) {
  auto try_dim = [&](auto dim) {
    if constexpr (fits_registers<V, decltype(dim)::value>()) {
      if (d == decltype(dim)::value) {
        f(dim);
        return true;
      }
    }
    return false;
  };
  if (try_dim(std::integral_constant<std::size_t, 16>{}) || try_dim(std::integral_constant<std::size_t, 32>{}) ||
      try_dim(std::integral_constant<std::size_t, 64>{}) || try_dim(std::integral_constant<std::size_t, 128>{})) {
    return;
  }
  f(std::integral_constant<std::size_t, 0>{});
}

// out = +0 + v (first) or out + v, d elements, in the compute type (16-bit values widened).
template <class V, bool kFirst, class P>
inline __attribute__((always_inline)) void add_row(typename V::T* __restrict out, const ValueRow<P>& v, std::size_t d) {
  using T = typename V::T;
  auto one = [&](auto ops, std::size_t j) {
    using O = decltype(ops);
    O::store(out + j, O::add(kFirst ? O::set1(T(0)) : O::load(out + j), load_value<O>(v, j)));
  };
  std::size_t j = 0;
  if constexpr (V::W > 1) {
    for (; j + V::W <= d; j += V::W) one(V{}, j);
  }
  for (; j < d; ++j) one(ScalarVec<T>{}, j);
}

// Row-wise duplicates = sum with the sums in the workspace (t.owner set): one pass down the
// occurrences adds each owned value row to its unique row's sum in scratch (the first from +0),
// in input order as the chains would; then each unique row's update reads its sum.
template <class V, class Rule, bool kPlain, class P, class S>
void rowwise_sum_held(const SparseTask<P, S>& t) {
  using T = typename V::T;
  using R = typename V::R;
  const std::size_t d = t.dim;
  T* const sums = t.scratch;
  for (std::size_t i = 0; i < t.k; ++i) {
    if (!owns(t, index_of(t, i))) continue;
    const std::uint32_t u = t.owner[i];
    if (t.first[u] == i) {
      add_row<V, true>(sums + u * d, value_row(t, i), d);
    } else {
      add_row<V, false>(sums + u * d, value_row(t, i), d);
    }
  }
  P* const table = t.table;
  S* const state = t.states[0];
  with_fixed_dim<V>(d, [&](auto fixed) {
    constexpr std::size_t kD = decltype(fixed)::value;
    const Lanes<V, Rule> kv(*t.coeffs);
    for (std::size_t u = 0; u < t.unique; ++u) {
      if (u + kRowsAhead < t.unique) prefetch_row<Rule, true>(t, t.rows[u + kRowsAhead]);
      const std::size_t r = t.rows[u];
      T* const sum = sums + u * d;
      if constexpr (kD == 0) {
        rowwise_row<V, Rule, kPlain>(table + r * d, sum, sum, state + r, d, *t.coeffs, r * d);
      } else {
        R g[kD / V::W];
        for (std::size_t q = 0; q < kD / V::W; ++q) g[q] = V::load(sum + q * V::W);
        rowwise_row_fixed<V, Rule, kPlain, kD>(table + r * kD, g, state + r, kv, *t.coeffs, r * kD);
      }
    }
  });
}

// duplicates = sum, row-wise state: each unique row's occurrences summed (in the workspace when it
// holds the sums; else along its chain, in registers for a fixed row length or in scratch), then
// the row-wise update.
template <class V, class Rule, bool kPlain, class P, class S>
void rowwise_sum_rows(const SparseTask<P, S>& t) {
  if (t.owner != nullptr) return rowwise_sum_held<V, Rule, kPlain>(t);
  with_fixed_dim<V>(t.dim, [&](auto fixed) {
    constexpr std::size_t kD = decltype(fixed)::value;
    P* const table = t.table;
    S* const state = t.states[0];
    if constexpr (kD == 0) {
      const std::size_t d = t.dim;
      for (std::size_t u = 0; u < t.unique; ++u) {
        if (u + kRowsAhead < t.unique) prefetch_unique<Rule, true>(t, u + kRowsAhead);
        sum_chain<V>(t.scratch, t, t.first[u]);
        const std::size_t r = t.rows[u];
        rowwise_row<V, Rule, kPlain>(table + r * d, t.scratch, t.scratch, state + r, d, *t.coeffs, r * d);
      }
    } else {
      const Lanes<V, Rule> kv(*t.coeffs);
      for (std::size_t u = 0; u < t.unique; ++u) {
        if (u + kRowsAhead < t.unique) prefetch_unique<Rule, true>(t, u + kRowsAhead);
        typename V::R g[kD / V::W];
        sum_chain_in_registers<V, kD>(g, t, t.first[u]);
        const std::size_t r = t.rows[u];
        rowwise_row_fixed<V, Rule, kPlain, kD>(table + r * kD, g, state + r, kv, *t.coeffs, r * kD);
      }
    }
  });
}

// duplicates = sequential, row-wise state: each occurrence its row's row-wise update.
template <class V, class Rule, bool kPlain, class P, class S>
void rowwise_sequential_rows(const SparseTask<P, S>& t) {
  using R = typename V::R;
  with_fixed_dim<V>(t.dim, [&](auto fixed) {
    constexpr std::size_t kD = decltype(fixed)::value;
    P* const table = t.table;
    S* const state = t.states[0];
    if constexpr (kD == 0) {
      const std::size_t d = t.dim;
      for_each_owned_occurrence<Rule, true>(t, [&](std::size_t i, std::size_t r) {
        const ValueRow<P> v = value_row(t, i);
        if (v.scaled) {  // a bag's scaled row, as torch's per-occurrence row, then updated from scratch
          scaled_row<V>(t.scratch, v, d);
          rowwise_row<V, Rule, kPlain>(table + r * d, t.scratch, t.scratch, state + r, d, *t.coeffs, i * d);
        } else {
          rowwise_row<V, Rule, kPlain>(table + r * d, v.row, t.scratch, state + r, d, *t.coeffs, i * d);
        }
      });
    } else {
      constexpr std::size_t kRegs = kD / V::W;
      const Lanes<V, Rule> kv(*t.coeffs);
      for_each_owned_occurrence<Rule, true>(t, [&](std::size_t i, std::size_t r) {
        const ValueRow<P> v = value_row(t, i);
        R g[kRegs];
        for (std::size_t q = 0; q < kRegs; ++q) g[q] = load_value<V>(v, q * V::W);
        rowwise_row_fixed<V, Rule, kPlain, kD>(table + r * kD, g, state + r, kv, *t.coeffs, i * kD);
      });
    }
  });
}

// The floor of any exact sparse step (benchmarks): the table and state rows of each of the unique
// rows read and written once, prefetched as above, with no grouping and no arithmetic to speak of
// (x + 0, which keeps every value but -0); with values, first every value row read once.
template <class V>
void floor_rows(const SparseTask<typename V::T, typename V::T>& t) {
  using T = typename V::T;
  using S = ScalarVec<T>;
  const std::size_t d = t.dim;
  T* const state = t.states[0];
  const T zero = T(t.dim) * T(0);  // a zero the compiler cannot see through: the loads and stores stay
  if (t.values != nullptr) {
    typename V::R acc = V::set1(zero);
    T tail = zero;
    const std::size_t n = t.k * d;
    std::size_t i = 0;
    if constexpr (V::W > 1) {
      for (; i + V::W <= n; i += V::W) acc = V::add(acc, V::load(t.values + i));
    }
    for (; i < n; ++i) tail += t.values[i];
    V::store(t.scratch, acc);  // scratch holds at least one register (sparse.cpp)
    t.scratch[0] += tail;
  }
  auto touch = [&](auto ops, T* x, std::size_t j) {
    using O = decltype(ops);
    O::store(x + j, O::add(O::load(x + j), O::set1(zero)));
  };
  for (std::size_t u = 0; u < t.unique; ++u) {
    if (u + kRowsAhead < t.unique) {
      const std::size_t ahead = t.rows[u + kRowsAhead];
      prefetch_lines<1>(t.table + ahead * d, d);
      prefetch_lines<1>(state + ahead * d, d);
    }
    const std::size_t r = t.rows[u];
    for (T* x : {t.table + r * d, state + r * d}) {
      std::size_t j = 0;
      if constexpr (V::W > 1) {
        for (; j + V::W <= d; j += V::W) touch(V{}, x, j);
      }
      for (; j < d; ++j) touch(S{}, x, j);
    }
  }
}

// A fixed row length keeps its registers only if the row fits in 16 of them; longer rows take the
// any-length kernel (its bits are the same).
template <class V, class Rule, bool kPlain, std::size_t kD, class P, class S>
constexpr SparseFn<P, S> fixed_sum_kernel() {
  if constexpr (kD % V::W == 0 && kD / V::W <= 16) {
    return &sum_rows_fixed<V, Rule, kPlain, kD, P, S>;
  } else {
    return &sum_rows<V, Rule, kPlain, P, S>;
  }
}

// The kernel of one mode: the row-wise modes are the rules' with row-wise state only (null
// otherwise), and the ceiling (StreamRule) has a sum schedule only.
template <class V, class Rule, bool kPlain, SparseMode kMode, class P, class S>
constexpr SparseFn<P, S> sparse_kernel() {
  constexpr bool kStream = rule_index<Rule> == rule_index<StreamRule>;
  if constexpr (kMode == SparseMode::sum) {
    return &sum_rows<V, Rule, kPlain, P, S>;
  } else if constexpr (kStream) {
    return nullptr;
  } else if constexpr (kMode == SparseMode::sequential) {
    return &sequential_rows<V, Rule, kPlain, P, S>;
  } else if constexpr (!Rule::kRowwise) {
    return nullptr;
  } else if constexpr (kMode == SparseMode::rowwise_sum) {
    return &rowwise_sum_rows<V, Rule, kPlain, P, S>;
  } else {
    return &rowwise_sequential_rows<V, Rule, kPlain, P, S>;
  }
}

template <class V, class P, class S>
constexpr SparseFn<P, S> floor_kernel() {
  if constexpr (is_16bit_storage<P> || !std::is_same_v<P, S>) {
    return nullptr;  // the benchmark's floors are float32's and float64's
  } else {
    return &floor_rows<V>;
  }
}

}  // namespace
}  // namespace adagrad
