// The sparse row kernels, written once. Each kernels_<isa>.cpp includes this file after
// dense_kernel.inl (whose dense_apply and rowwise_row they share): one call updates the rows of one
// part of a table (kernels.hpp, SparseTask), with no function call and no set-up per row.
//
// Schedule (FBGEMM's, made exact): rows are visited in a fixed order (occurrences in input order, or
// unique rows in order of first occurrence) and the lines of the row kRowsAhead rows further on are
// prefetched, so that the memory latency of random rows overlaps the arithmetic. A row's
// occurrences are summed in input order from +0, as the dense-equivalent gradient
// np.add.at(zeros, indices, values) is, so every path gives the same bits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "adagrad/kernels.hpp"

namespace adagrad {
namespace {

// Rows (unique rows, or occurrences) prefetched ahead of the one being updated. 8 to 32 measured
// the same within noise at 1M x 64 and 1M x 128 float32 (bench/README.md, "Sparse"); FBGEMM uses 16.
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

// One group of lanes of the update (or, for kStreamVariant, the ceiling's state += g, row += g).
// a: the grad sum's lanes (Adagrad-DA), else null. index: the first lane's number for stochastic
// rounding (duplicates = sum: its element's offset in the table, row * dim + j; sequential: in the
// values, occurrence * dim + j, so that each occurrence of a repeated row draws fresh bits).
template <class O, int kVariant, class P, class S>
inline __attribute__((always_inline)) void apply_lanes(P* __restrict p, typename O::R g, S* __restrict s,
                                                       S* __restrict a, const DenseConsts<O>& k,
                                                       std::uint64_t index) {
  if constexpr (kVariant == kStreamVariant) {
    store_as<O>(s, O::add(load_as<O>(s), g));
    store_as<O>(p, O::add(load_as<O>(p), g));
  } else {
    update_lanes<O, kVariant>(p, g, s, a, k, index);
  }
}

// The dense update of one row of d elements with gradient g (a value row, or a summed row in the
// compute type). kFromZero: the gradient is +0 + g, a sum of one occurrence from +0 (it differs
// from g only for g = -0, and then so may the result).
template <class V, int kVariant, bool kFromZero, class P, class S, class G>
inline __attribute__((always_inline)) void update_row(P* __restrict p, const G* __restrict g, S* __restrict s,
                                                      S* __restrict a, std::size_t d, const DenseConsts<V>& kv,
                                                      const DenseConsts<ScalarVec<typename V::T>>& ks,
                                                      std::uint64_t index) {
  using T = typename V::T;
  auto one = [&](auto ops, const auto& k, std::size_t j) {
    using O = decltype(ops);
    typename O::R gv = load_as<O>(g + j);
    if constexpr (kFromZero) gv = O::add(O::set1(T(0)), gv);
    apply_lanes<O, kVariant>(p + j, gv, s + j, grad_sum_row<kVariant>(a, j), k, index + j);
  };
  std::size_t j = 0;
  if constexpr (V::W > 1) {
    for (; j + V::W <= d; j += V::W) one(V{}, kv, j);
  }
  for (; j < d; ++j) one(ScalarVec<T>{}, ks, j);
}

// AdagradDecay: row r's sums take the decays due since it was last touched (decay_sums), once per
// update of the row, before it; its count of decays done becomes the step's.
template <int kVariant, class Task>
inline __attribute__((always_inline)) void catch_up_decays(const Task& t, std::size_t r) {
  if constexpr (variant_rule(kVariant) == Rule::adagrad_decay) {
    const std::int64_t due = t.coeffs->decay_periods - t.decay_counts[r];
    if (due > 0) {
      decay_sums(t.state + r * t.dim, t.dim, due, t.coeffs->decay_rate, t.coeffs->decay_floor);
      t.decay_counts[r] = t.coeffs->decay_periods;
    }
  }
}

// out = ((+0 + v[o0]) + v[o1]) + ... over the chain of occurrences from o0, in input order, in the
// compute type (16-bit values widened).
template <class V, class P>
void sum_chain(typename V::T* __restrict out, const P* __restrict values, const std::uint32_t* next, std::uint32_t o0,
               std::size_t d) {
  using T = typename V::T;
  auto start = [&](auto ops, const P* a, std::size_t j) {
    using O = decltype(ops);
    O::store(out + j, O::add(O::set1(T(0)), load_as<O>(a + j)));
  };
  auto add = [&](auto ops, const P* a, std::size_t j) {
    using O = decltype(ops);
    O::store(out + j, O::add(O::load(out + j), load_as<O>(a + j)));
  };
  auto over_row = [&](auto op, const P* a) {
    std::size_t j = 0;
    if constexpr (V::W > 1) {
      for (; j + V::W <= d; j += V::W) op(V{}, a, j);
    }
    for (; j < d; ++j) op(ScalarVec<T>{}, a, j);
  };
  over_row(start, values + static_cast<std::size_t>(o0) * d);
  for (std::uint32_t o = next[o0]; o != kEndOfChain; o = next[o]) over_row(add, values + static_cast<std::size_t>(o) * d);
}

// Unique row u's table and state lines, and the value rows of all its occurrences (sum modes).
template <bool kRowwise, class Task>
inline __attribute__((always_inline)) void prefetch_unique(const Task& t, std::size_t u, std::size_t d) {
  const std::size_t r = t.rows[u];
  prefetch_lines<1>(t.table + r * d, d);
  prefetch_lines<1>(kRowwise ? t.state + r : t.state + r * d, kRowwise ? 1 : d);
  if (t.grad_sum != nullptr) prefetch_lines<1>(t.grad_sum + r * d, d);
  for (std::uint32_t o = t.first[u]; o != kEndOfChain; o = t.next[o]) {
    prefetch_lines<0>(t.values + static_cast<std::size_t>(o) * d, d);
  }
}

// duplicates = sum, element-wise state, any row length: each unique row updated once with its
// summed gradient (a row seen once straight from its value row, others summed into scratch).
template <class V, int kVariant, class P, class S>
void sum_rows(const SparseTask<P, S>& t) {
  using T = typename V::T;
  const std::size_t d = t.dim;
  const DenseConsts<V> kv(*t.coeffs);
  const DenseConsts<ScalarVec<T>> ks(*t.coeffs);
  for (std::size_t u = 0; u < t.unique; ++u) {
    if (u + kRowsAhead < t.unique) prefetch_unique<false>(t, u + kRowsAhead, d);
    const std::size_t r = t.rows[u];
    const std::uint32_t o = t.first[u];
    S* const a = grad_sum_row<kVariant>(t.grad_sum, r * d);
    catch_up_decays<kVariant>(t, r);
    if (t.next[o] == kEndOfChain) {
      update_row<V, kVariant, true>(t.table + r * d, t.values + static_cast<std::size_t>(o) * d, t.state + r * d, a,
                                    d, kv, ks, r * d);
    } else {
      sum_chain<V>(t.scratch, t.values, t.next, o, d);
      update_row<V, kVariant, false>(t.table + r * d, t.scratch, t.state + r * d, a, d, kv, ks, r * d);
    }
  }
}

// duplicates = sum, element-wise state, rows of exactly kD elements: the summed gradient of a row
// stays in kD / W registers from its first value row to its update.
template <class V, int kVariant, std::size_t kD, class P, class S>
void sum_rows_fixed(const SparseTask<P, S>& t) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr std::size_t kRegs = kD / V::W;
  const DenseConsts<V> kv(*t.coeffs);
  const R zero = V::set1(T(0));
  for (std::size_t u = 0; u < t.unique; ++u) {
    if (u + kRowsAhead < t.unique) prefetch_unique<false>(t, u + kRowsAhead, kD);
    std::uint32_t o = t.first[u];
    const P* v = t.values + static_cast<std::size_t>(o) * kD;
    R g[kRegs];
    for (std::size_t q = 0; q < kRegs; ++q) g[q] = V::add(zero, load_as<V>(v + q * V::W));
    for (o = t.next[o]; o != kEndOfChain; o = t.next[o]) {
      v = t.values + static_cast<std::size_t>(o) * kD;
      for (std::size_t q = 0; q < kRegs; ++q) g[q] = V::add(g[q], load_as<V>(v + q * V::W));
    }
    const std::size_t r = t.rows[u];
    catch_up_decays<kVariant>(t, r);
    for (std::size_t q = 0; q < kRegs; ++q) {
      apply_lanes<V, kVariant>(t.table + r * kD + q * V::W, g[q], t.state + r * kD + q * V::W,
                               grad_sum_row<kVariant>(t.grad_sum, r * kD + q * V::W), kv, r * kD + q * V::W);
    }
  }
}

// Every occurrence i of a row this part owns, in input order: update(i, row). Prefetches the
// table, state and value lines of the occurrence kRowsAhead * parts positions on (about kRowsAhead
// owned ones); no grouping pass.
template <bool kRowwise, class Task, class Update>
inline __attribute__((always_inline)) void for_each_owned_occurrence(const Task& t, Update update) {
  const std::size_t d = t.dim, ahead = kRowsAhead * t.parts;
  for (std::size_t i = 0; i < t.k; ++i) {
    if (i + ahead < t.k) {
      const std::uint64_t next_row = index_of(t, i + ahead);
      if (owns(t, next_row)) {
        prefetch_lines<1>(t.table + next_row * d, d);
        prefetch_lines<1>(kRowwise ? t.state + next_row : t.state + next_row * d, kRowwise ? 1 : d);
        if (t.grad_sum != nullptr) prefetch_lines<1>(t.grad_sum + next_row * d, d);
        prefetch_lines<0>(t.values + (i + ahead) * d, d);
      }
    }
    const std::uint64_t r = index_of(t, i);
    if (owns(t, r)) update(i, static_cast<std::size_t>(r));
  }
}

// duplicates = sequential, element-wise state: each occurrence the dense update of its row.
template <class V, int kVariant, class P, class S>
void sequential_rows(const SparseTask<P, S>& t) {
  using T = typename V::T;
  const std::size_t d = t.dim;
  const DenseConsts<V> kv(*t.coeffs);
  const DenseConsts<ScalarVec<T>> ks(*t.coeffs);
  for_each_owned_occurrence<false>(t, [&](std::size_t i, std::size_t r) {
    catch_up_decays<kVariant>(t, r);
    update_row<V, kVariant, false>(t.table + r * d, t.values + i * d, t.state + r * d,
                                   grad_sum_row<kVariant>(t.grad_sum, r * d), d, kv, ks, i * d);
  });
}

// duplicates = sum, row-wise state: the summed row in scratch, then the row-wise update.
template <class V, int kVariant, class P, class S>
void rowwise_sum_rows(const SparseTask<P, S>& t) {
  const std::size_t d = t.dim;
  for (std::size_t u = 0; u < t.unique; ++u) {
    if (u + kRowsAhead < t.unique) prefetch_unique<true>(t, u + kRowsAhead, d);
    sum_chain<V>(t.scratch, t.values, t.next, t.first[u], d);
    const std::size_t r = t.rows[u];
    rowwise_row<V, kVariant>(t.table + r * d, t.scratch, t.state + r, d, *t.coeffs, r * d);
  }
}

// duplicates = sequential, row-wise state.
template <class V, int kVariant, class P, class S>
void rowwise_sequential_rows(const SparseTask<P, S>& t) {
  using T = typename V::T;
  const std::size_t d = t.dim;
  for_each_owned_occurrence<true>(t, [&](std::size_t i, std::size_t r) {
    // The row-wise kernel rewrites its gradient: a copy, in the compute type.
    if constexpr (is_16bit_storage<P>) {
      for (std::size_t j = 0; j < d; ++j) t.scratch[j] = widen(t.values[i * d + j]);
    } else {
      std::memcpy(t.scratch, t.values + i * d, d * sizeof(T));
    }
    rowwise_row<V, kVariant>(t.table + r * d, t.scratch, t.state + r, d, *t.coeffs, i * d);
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
  const T zero = t.coeffs->eps * T(0);  // a zero the compiler cannot see through: the loads and stores stay
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
      prefetch_lines<1>(t.state + ahead * d, d);
    }
    const std::size_t r = t.rows[u];
    for (T* x : {t.table + r * d, t.state + r * d}) {
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
template <class V, int kVariant, std::size_t kD, class P, class S>
constexpr SparseFn<P, S> fixed_sum_kernel() {
  if constexpr (is_16bit_storage<P> && !half_sparse_variant(kVariant)) {
    return nullptr;
  } else if constexpr (kD % V::W == 0 && kD / V::W <= 16) {
    return &sum_rows_fixed<V, kVariant, kD, P, S>;
  } else {
    return &sum_rows<V, kVariant, P, S>;
  }
}

template <class V, std::size_t kD, class P, class S, std::size_t... I>
constexpr void fill_fixed(SparseFn<P, S> (&out)[kKernelVariants], std::index_sequence<I...>) {
  ((out[I] = fixed_sum_kernel<V, static_cast<int>(I), kD, P, S>()), ...);
}

// The kernel of one mode and variant: the ceiling has a sum schedule only, the row-wise modes are
// Adagrad's only, 16-bit tables half_sparse_variant()'s only (null otherwise).
template <class V, SparseMode kMode, int kVariant, class P, class S>
constexpr SparseFn<P, S> sparse_kernel() {
  constexpr bool kAdagrad = variant_rule(kVariant) == Rule::adagrad && kVariant != kStreamVariant;
  if constexpr (is_16bit_storage<P> && !half_sparse_variant(kVariant)) {
    return nullptr;
  } else if constexpr (kMode == SparseMode::sum) {
    return &sum_rows<V, kVariant, P, S>;
  } else if constexpr (kMode == SparseMode::sequential && kVariant != kStreamVariant) {
    return &sequential_rows<V, kVariant, P, S>;
  } else if constexpr (kMode == SparseMode::rowwise_sum && kAdagrad) {
    return &rowwise_sum_rows<V, kVariant, P, S>;
  } else if constexpr (kMode == SparseMode::rowwise_sequential && kAdagrad) {
    return &rowwise_sequential_rows<V, kVariant, P, S>;
  } else {
    return nullptr;
  }
}

template <class V, class P, class S>
constexpr SparseFn<P, S> floor_kernel() {
  if constexpr (is_16bit_storage<P>) {
    return nullptr;  // the benchmark's floors are float32's
  } else {
    return &floor_rows<V>;
  }
}

template <class V, class P, class S, std::size_t... I>
constexpr SparseVariants<P, S> sparse_variants(std::index_sequence<I...> variants) {
  SparseVariants<P, S> table{{{sparse_kernel<V, SparseMode::sum, static_cast<int>(I), P, S>()...},
                              {sparse_kernel<V, SparseMode::sequential, static_cast<int>(I), P, S>()...},
                              {sparse_kernel<V, SparseMode::rowwise_sum, static_cast<int>(I), P, S>()...},
                              {sparse_kernel<V, SparseMode::rowwise_sequential, static_cast<int>(I), P, S>()...}},
                             {},
                             floor_kernel<V, P, S>()};
  fill_fixed<V, kFixedDims[0], P, S>(table.fixed_sum[0], variants);
  fill_fixed<V, kFixedDims[1], P, S>(table.fixed_sum[1], variants);
  fill_fixed<V, kFixedDims[2], P, S>(table.fixed_sum[2], variants);
  fill_fixed<V, kFixedDims[3], P, S>(table.fixed_sum[3], variants);
  return table;
}

}  // namespace
}  // namespace adagrad
