// Stochastic rounding of float32 results to float16 / bfloat16 storage: which random bits an element
// gets. The rounding itself is ISA code (cpp/src/stochastic_round.inl); this header is the key.
//
// Element `index` of a write keyed by (seed, stream, step) draws the 32 random bits
//   r = mix(lo32(index) ^ k0 ^ mix(hi32(index) ^ k1)),   (k0, k1) = the two halves of
//   key = splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ step)
// where mix is a bijective 32-bit integer hash (xor-shift-multiply, "lowbias32"). For a fixed key
// and hi32(index), index -> r is a permutation of the 2^32 values: the bits are exactly uniform over
// the elements, reproducible, and the same on every ISA and thread count. The rounding then uses the
// top bits of r: round away from zero iff (r's top k bits) < (the k bits rounded away), k = 16
// for bfloat16, 13 for a normal float16 (more below float16's normal range): E[round(x)] = x.
#pragma once

#include <cstdint>

namespace adagrad {

struct SrKey {
  std::uint32_t k0, k1;
};

constexpr std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr SrKey sr_key(std::uint64_t seed, std::uint64_t stream, std::int64_t step) {
  const std::uint64_t key = splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ static_cast<std::uint64_t>(step));
  return {static_cast<std::uint32_t>(key), static_cast<std::uint32_t>(key >> 32)};
}

}  // namespace adagrad
