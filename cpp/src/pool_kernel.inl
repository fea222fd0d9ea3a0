// The forward pooling of an embedding bag on a float32 table (adagrad.torch.EmbeddingBag), written
// once for every ISA: bag b's row is the sum of its ids' table rows in input order from +0 (each
// id's row times its per-sample weight with one rounding, a fused multiply-add, where the task
// says so), mean's divided by max(its ids but padding, 1): the bits of torch's CPU forward
// (embedding_bag.py says which of its paths each task reproduces). Each bag is one task's alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "adagrad/kernels.hpp"

namespace adagrad {
namespace {

// How an id's row enters its bag's sum: as it is, times its per-sample weight by one fused
// multiply-add, or times its weight (rounded) then added. A type each, so that the per-id loop is
// compiled once per (id type, weighing) without a branch on either (measured: the loop with those
// branches and its fields reloaded ran ~25 instructions per id, 1.2x the time of the one here).
struct Unweighted {};
struct FusedWeight {};
struct ProductWeight {};

// f(ids, weighing) with the task's ids typed and its weighing as a tag.
template <class F>
void with_pool_types(const PoolTask& t, F&& f) {
  auto with_ids = [&](auto weighing) {
    if (t.ids_int64) return f(static_cast<const std::int64_t*>(t.ids), weighing);
    f(static_cast<const std::int32_t*>(t.ids), weighing);
  };
  if (t.weights == nullptr) return with_ids(Unweighted{});
  if (t.fused_weights) return with_ids(FusedWeight{});
  with_ids(ProductWeight{});
}

// acc + w * row (O's registers or scalars), in the weighing's one order.
template <class O, class Weighing>
typename O::R weighed_add(typename O::R acc, typename O::R row, const float* weights, std::size_t k) {
  if constexpr (std::is_same_v<Weighing, Unweighted>) {
    return O::add(acc, row);
  } else if constexpr (std::is_same_v<Weighing, FusedWeight>) {
    return O::fmadd(O::set1(weights[k]), row, acc);
  } else {
    return O::add(acc, O::mul(O::set1(weights[k]), row));
  }
}

// Ids whose rows are prefetched ahead: 32 against 16 took the 2,048 bags x 32 ids forward on a
// 1M x 64 table from 0.76-0.80x to 0.84-0.89x nn.EmbeddingBag's speed (one thread, Zen 4).
constexpr std::size_t kPoolAhead = 32;

// Rows of exactly kD elements (kD / W registers, at most 16): a bag's sum stays in registers from
// its first id to its store; the same operations in the same order as pool_bags_any.
template <class V, std::size_t kD, class Id, class Weighing>
void pool_fixed_rows(const PoolTask& t, const Id* __restrict ids) {
  using R = typename V::R;
  constexpr std::size_t kRegs = kD / V::W;
  const float* const table = t.table;
  const float* const weights = t.weights;
  const std::int64_t* const offsets = t.offsets;
  const std::int64_t padding = t.padding_idx;
  const bool mean = t.mean;
  float* const out = t.out;
  const std::size_t last = t.n - 1;  // only read where a bag holds an id, so n > 0
  for (std::size_t b = t.first_bag; b < t.end_bag; ++b) {
    R acc[kRegs];
    for (std::size_t q = 0; q < kRegs; ++q) acc[q] = V::set1(0.0f);
    const auto begin = static_cast<std::size_t>(offsets[b]), end = static_cast<std::size_t>(offsets[b + 1]);
    std::int64_t count = 0;
    for (std::size_t k = begin; k < end; ++k) {
      // near the end the last id's row again: a select, not a branch
      const std::size_t next = k + kPoolAhead <= last ? k + kPoolAhead : last;
      const float* ahead = table + static_cast<std::size_t>(ids[next]) * kD;
      for (std::size_t j = 0; j < kD; j += 16) __builtin_prefetch(ahead + j, 0, 3);
      const std::int64_t id = ids[k];
      if (id == padding) continue;
      ++count;
      const float* __restrict row = table + static_cast<std::size_t>(id) * kD;
      for (std::size_t q = 0; q < kRegs; ++q) {
        acc[q] = weighed_add<V, Weighing>(acc[q], V::load(row + q * V::W), weights, k);
      }
    }
    if (mean) {
      const R size = V::set1(static_cast<float>(count > 0 ? count : 1));
      for (std::size_t q = 0; q < kRegs; ++q) acc[q] = V::div(acc[q], size);
    }
    for (std::size_t q = 0; q < kRegs; ++q) V::store(out + b * kD + q * V::W, acc[q]);
  }
}

template <class V, std::size_t kD>
void pool_bags_fixed(const PoolTask& t) {
  with_pool_types(t, [&](const auto* ids, auto weighing) {
    pool_fixed_rows<V, kD, std::remove_cv_t<std::remove_pointer_t<decltype(ids)>>, decltype(weighing)>(t, ids);
  });
}

// Rows of any length: each bag's sum in out's row, V's registers then scalar tails.
template <class V, class Id, class Weighing>
void pool_any_rows(const PoolTask& t, const Id* __restrict ids) {
  using S = ScalarVec<float>;
  const std::size_t d = t.dim;
  const float* const table = t.table;
  const float* const weights = t.weights;
  const std::int64_t padding = t.padding_idx;
  auto over_row = [&](auto op) {
    std::size_t j = 0;
    if constexpr (V::W > 1) {
      for (; j + V::W <= d; j += V::W) op(V{}, j);
    }
    for (; j < d; ++j) op(S{}, j);
  };
  const std::size_t last = t.n - 1;  // only read where a bag holds an id, so n > 0
  for (std::size_t b = t.first_bag; b < t.end_bag; ++b) {
    float* __restrict out = t.out + b * d;
    over_row([&](auto ops, std::size_t j) {
      using O = decltype(ops);
      O::store(out + j, O::set1(0.0f));
    });
    const auto begin = static_cast<std::size_t>(t.offsets[b]), end = static_cast<std::size_t>(t.offsets[b + 1]);
    std::int64_t count = 0;
    for (std::size_t k = begin; k < end; ++k) {
      const std::size_t next = k + kPoolAhead <= last ? k + kPoolAhead : last;
      const float* ahead = table + static_cast<std::size_t>(ids[next]) * d;
      for (std::size_t j = 0; j < d; j += 16) __builtin_prefetch(ahead + j, 0, 3);
      const std::int64_t id = ids[k];
      if (id == padding) continue;
      ++count;
      const float* __restrict row = table + static_cast<std::size_t>(id) * d;
      over_row([&](auto ops, std::size_t j) {
        using O = decltype(ops);
        O::store(out + j, weighed_add<O, Weighing>(O::load(out + j), O::load(row + j), weights, k));
      });
    }
    if (t.mean) {
      const float size = static_cast<float>(count > 0 ? count : 1);
      over_row([&](auto ops, std::size_t j) {
        using O = decltype(ops);
        O::store(out + j, O::div(O::load(out + j), O::set1(size)));
      });
    }
  }
}

template <class V>
void pool_bags_any(const PoolTask& t) {
  with_pool_types(t, [&](const auto* ids, auto weighing) {
    pool_any_rows<V, std::remove_cv_t<std::remove_pointer_t<decltype(ids)>>, decltype(weighing)>(t, ids);
  });
}

template <class V, std::size_t kD>
constexpr bool pooled_row_fits_registers() {
  return V::W > 1 && kD % V::W == 0 && kD / V::W <= 16;
}

template <class V>
void pool_bags(const PoolTask& t) {
  if constexpr (pooled_row_fits_registers<V, 16>()) {
    if (t.dim == 16) return pool_bags_fixed<V, 16>(t);
  }
  if constexpr (pooled_row_fits_registers<V, 32>()) {
    if (t.dim == 32) return pool_bags_fixed<V, 32>(t);
  }
  if constexpr (pooled_row_fits_registers<V, 64>()) {
    if (t.dim == 64) return pool_bags_fixed<V, 64>(t);
  }
  if constexpr (pooled_row_fits_registers<V, 128>()) {
    if (t.dim == 128) return pool_bags_fixed<V, 128>(t);
  }
  pool_bags_any<V>(t);
}

}  // namespace
}  // namespace adagrad
