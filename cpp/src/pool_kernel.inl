// The forward pooling of an embedding bag on a float32 table (adagrad.torch.EmbeddingBag), written
// once for every ISA: bag b's row is the sum of its ids' table rows in input order from +0 (each
// id's row times its per-sample weight with one rounding, a fused multiply-add, where the task
// says so), mean's divided by max(its ids but padding, 1): the bits of torch's CPU forward
// (embedding_bag.py says which of its paths each task reproduces). Each bag is one task's alone.
#pragma once

#include <cstddef>
#include <cstdint>

#include "adagrad/kernels.hpp"

namespace adagrad {
namespace {

// Rows of exactly kD elements (kD / W registers, at most 16): a bag's sum stays in registers from
// its first id to its store; the same operations in the same order as pool_bags_any.
template <class V, std::size_t kD>
void pool_bags_fixed(const PoolTask& t) {
  using R = typename V::R;
  constexpr std::size_t kRegs = kD / V::W;
  // Ids whose rows are prefetched ahead: 32 against 16 took the 2,048 bags x 32 ids forward on a
  // 1M x 64 table from 0.76-0.80x to 0.84-0.89x nn.EmbeddingBag's speed (one thread, Zen 4).
  constexpr std::size_t kAhead = 32;
  for (std::size_t b = t.first_bag; b < t.end_bag; ++b) {
    R acc[kRegs];
    for (std::size_t q = 0; q < kRegs; ++q) acc[q] = V::set1(0.0f);
    const auto begin = static_cast<std::size_t>(t.offsets[b]), end = static_cast<std::size_t>(t.offsets[b + 1]);
    std::int64_t count = 0;
    for (std::size_t k = begin; k < end; ++k) {
      if (k + kAhead < t.n) {
        const std::int64_t next = t.ids_int64 ? static_cast<const std::int64_t*>(t.ids)[k + kAhead]
                                              : static_cast<const std::int32_t*>(t.ids)[k + kAhead];
        const float* ahead = t.table + static_cast<std::size_t>(next) * kD;
        for (std::size_t j = 0; j < kD; j += 16) __builtin_prefetch(ahead + j, 0, 3);
      }
      const std::int64_t id = t.ids_int64 ? static_cast<const std::int64_t*>(t.ids)[k]
                                          : static_cast<const std::int32_t*>(t.ids)[k];
      if (id == t.padding_idx) continue;
      ++count;
      const float* __restrict row = t.table + static_cast<std::size_t>(id) * kD;
      if (t.weights == nullptr) {
        for (std::size_t q = 0; q < kRegs; ++q) acc[q] = V::add(acc[q], V::load(row + q * V::W));
      } else if (t.fused_weights) {
        const R w = V::set1(t.weights[k]);
        for (std::size_t q = 0; q < kRegs; ++q) acc[q] = V::fmadd(w, V::load(row + q * V::W), acc[q]);
      } else {
        const R w = V::set1(t.weights[k]);
        for (std::size_t q = 0; q < kRegs; ++q) acc[q] = V::add(acc[q], V::mul(w, V::load(row + q * V::W)));
      }
    }
    if (t.mean) {
      const R size = V::set1(static_cast<float>(count > 0 ? count : 1));
      for (std::size_t q = 0; q < kRegs; ++q) acc[q] = V::div(acc[q], size);
    }
    for (std::size_t q = 0; q < kRegs; ++q) V::store(t.out + b * kD + q * V::W, acc[q]);
  }
}

template <class V>
void pool_bags_any(const PoolTask& t) {
  using S = ScalarVec<float>;
  const std::size_t d = t.dim;
  auto id_at = [&](std::size_t k) -> std::int64_t {
    return t.ids_int64 ? static_cast<const std::int64_t*>(t.ids)[k] : static_cast<const std::int32_t*>(t.ids)[k];
  };
  auto over_row = [&](auto op) {
    std::size_t j = 0;
    if constexpr (V::W > 1) {
      for (; j + V::W <= d; j += V::W) op(V{}, j);
    }
    for (; j < d; ++j) op(S{}, j);
  };
  constexpr std::size_t kAhead = 16;  // ids whose rows are prefetched ahead, as the sparse kernels
  for (std::size_t b = t.first_bag; b < t.end_bag; ++b) {
    float* __restrict out = t.out + b * d;
    over_row([&](auto ops, std::size_t j) {
      using O = decltype(ops);
      O::store(out + j, O::set1(0.0f));
    });
    const auto begin = static_cast<std::size_t>(t.offsets[b]), end = static_cast<std::size_t>(t.offsets[b + 1]);
    std::int64_t count = 0;
    for (std::size_t k = begin; k < end; ++k) {
      if (k + kAhead < t.n) {
        const float* ahead = t.table + static_cast<std::size_t>(id_at(k + kAhead)) * d;
        for (std::size_t j = 0; j < d; j += 16) __builtin_prefetch(ahead + j, 0, 3);
      }
      const std::int64_t id = id_at(k);
      if (id == t.padding_idx) continue;
      ++count;
      const float* __restrict row = t.table + static_cast<std::size_t>(id) * d;
      if (t.weights == nullptr) {
        over_row([&](auto ops, std::size_t j) {
          using O = decltype(ops);
          O::store(out + j, O::add(O::load(out + j), O::load(row + j)));
        });
      } else if (t.fused_weights) {
        const float w = t.weights[k];
        over_row([&](auto ops, std::size_t j) {
          using O = decltype(ops);
          O::store(out + j, O::fmadd(O::set1(w), O::load(row + j), O::load(out + j)));
        });
      } else {
        const float w = t.weights[k];
        over_row([&](auto ops, std::size_t j) {
          using O = decltype(ops);
          O::store(out + j, O::add(O::load(out + j), O::mul(O::set1(w), O::load(row + j))));
        });
      }
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
