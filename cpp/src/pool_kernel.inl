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

template <class V>
void pool_bags(const PoolTask& t) {
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

}  // namespace
}  // namespace adagrad
