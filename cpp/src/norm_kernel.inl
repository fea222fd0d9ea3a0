// The gradient-norm kernels, written once (clipping, grad_norm.hpp). Each kernels_<isa>.cpp
// includes this file after the traits of its vector registers.
//
// Sum of squares of one block of at most kNormBlock elements, in double, in one fixed order on
// every ISA: element i of the block goes to lane i % 64 (acc <- fma(x, x, acc), in increasing i,
// lanes start at +0), then the lanes are added in halves, l[j] + l[j + 32], then l[j] + l[j + 16],
// and so on to one. A float32 element is widened to double first (its square is then exact); the
// loss scale is divided out first, rounded to the grad's dtype as the update rounds it.
//
// 64 lanes, because one read pass is bound by how many independent sums run at once: on the Xeon
// VM (one thread, 64 MB), 8 AVX-512 accumulators read 1.2-1.6x faster than 2.
#pragma once

#include <cstddef>

#include "adagrad/kernels.hpp"
#include "simd/scalar.hpp"

namespace adagrad {
namespace {

constexpr std::size_t kNormLanes = 64;
// Accumulator registers a pass keeps: the lanes are done in groups of kNormRegs * W lanes (one
// group with AVX-512's 8 doubles, two with AVX2's 4, ...), each lane still in increasing i.
constexpr std::size_t kNormRegs = 8;

// One element's (or W elements') value as the update sees it before the clip, in double lanes.
template <class D, class T, GradScaleMode kScale>
inline __attribute__((always_inline)) typename D::R norm_operand(const T* x, typename D::R scale,
                                                                 typename D::R inv_scale) {
  if constexpr (sizeof(T) == 4 && D::W == 1 && kScale != GradScaleMode::none) {
    // One float: divided as a float, then widened. (Not the round trip below: GCC 12's vectorizer
    // drops the double -> float -> double of the baseline loop's peeled last iteration, measured
    // as a wrong last bit of the norm.)
    const float f = kScale == GradScaleMode::divide ? *x / static_cast<float>(scale) : *x * static_cast<float>(inv_scale);
    return static_cast<double>(f);
  }
  typename D::R v;
  if constexpr (sizeof(T) == 4) {
    v = D::load_f32(x);
  } else {
    v = D::load(x);
  }
  if constexpr (kScale == GradScaleMode::none) return v;
  v = kScale == GradScaleMode::divide ? D::div(v, scale) : D::mul(v, inv_scale);
  // Computed in double then rounded to float: the correctly rounded float32 quotient (double has
  // more than 2 * 24 + 2 bits), the same bits as the update's float32 division.
  if constexpr (sizeof(T) == 4) v = D::round_to_f32(v);
  return v;
}

template <class D, class T>
inline __attribute__((always_inline)) typename D::R add_square(typename D::R acc, typename D::R v) {
  // For a widened float the square is exact, so fma and mul + add agree: mul + add on the
  // baseline ISA, whose fma is a library call; the one fma instruction elsewhere (~9% faster).
  if constexpr (sizeof(T) == 4 && D::W == 1) return D::add(acc, D::mul(v, v));
  return D::fmadd(v, v, acc);
}

template <class D, class T, GradScaleMode kScale>
double block_sum_squares(const T* __restrict x, std::size_t n, double scale, double inv_scale) {
  using S = ScalarVec<double>;
  alignas(64) double lanes[kNormLanes] = {};
  const std::size_t whole = n - n % kNormLanes;
  constexpr std::size_t kGroup = kNormRegs * D::W < kNormLanes ? kNormRegs * D::W : kNormLanes;
  static_assert(kNormLanes % kGroup == 0 && kGroup % D::W == 0);
  constexpr std::size_t kRegs = kGroup / D::W;
  const typename D::R vs = D::set1(scale), vi = D::set1(inv_scale);
  for (std::size_t g = 0; g < kNormLanes; g += kGroup) {
    typename D::R acc[kRegs];
    for (std::size_t r = 0; r < kRegs; ++r) acc[r] = D::set1(0.0);
    for (std::size_t i = 0; i < whole; i += kNormLanes) {
      for (std::size_t r = 0; r < kRegs; ++r) {
        acc[r] = add_square<D, T>(acc[r], norm_operand<D, T, kScale>(x + i + g + r * D::W, vs, vi));
      }
    }
    for (std::size_t r = 0; r < kRegs; ++r) D::store(lanes + g + r * D::W, acc[r]);
  }
  for (std::size_t i = whole; i < n; ++i) {
    double& lane = lanes[i - whole];
    lane = add_square<S, T>(lane, norm_operand<S, T, kScale>(x + i, scale, inv_scale));
  }
  // The halves added with whole registers while a half holds at least one, then lane by lane.
  std::size_t half = kNormLanes / 2;
  for (; half >= D::W && D::W > 1; half /= 2) {
    for (std::size_t l = 0; l < half; l += D::W) D::store(lanes + l, D::add(D::load(lanes + l), D::load(lanes + half + l)));
  }
  for (; half >= 1; half /= 2) {
    for (std::size_t l = 0; l < half; ++l) lanes[l] = lanes[l] + lanes[half + l];
  }
  return lanes[0];
}

// The largest |x| of n elements, NaN if one is NaN (the loss scale is divided out later, once:
// rounding is monotonic, so the largest unscaled element is the unscaled largest one).
template <class V>
double max_abs(const typename V::T* __restrict x, std::size_t n) {
  using T = typename V::T;
  using S = ScalarVec<T>;
  // max(|x|, acc) keeps acc when |x| is NaN; the x * 0 sums turn NaN at a NaN or an infinity, and
  // only then is the block read again to tell the two apart.
  T best = T(0), poison = T(0);
  std::size_t i = 0;
  if constexpr (V::W > 1) {
    // Four independent chains: the order of a max does not matter, and one chain would wait on
    // each max's latency.
    constexpr std::size_t kChains = 4;
    const typename V::R zero = V::set1(T(0));
    typename V::R acc[kChains], bad[kChains];
    for (std::size_t c = 0; c < kChains; ++c) acc[c] = bad[c] = zero;
    for (; i + kChains * V::W <= n; i += kChains * V::W) {
      for (std::size_t c = 0; c < kChains; ++c) {
        const typename V::R v = V::load(x + i + c * V::W);
        acc[c] = V::max(V::abs(v), acc[c]);
        bad[c] = V::add(bad[c], V::mul(v, zero));
      }
    }
    for (; i + V::W <= n; i += V::W) {
      const typename V::R v = V::load(x + i);
      acc[0] = V::max(V::abs(v), acc[0]);
      bad[0] = V::add(bad[0], V::mul(v, zero));
    }
    for (std::size_t c = 1; c < kChains; ++c) {
      acc[0] = V::max(acc[c], acc[0]);
      bad[0] = V::add(bad[0], bad[c]);
    }
    alignas(64) T a[V::W], b[V::W];
    V::store(a, acc[0]);
    V::store(b, bad[0]);
    for (std::size_t l = 0; l < V::W; ++l) {
      best = S::max(a[l], best);
      poison += b[l];
    }
  }
  for (; i < n; ++i) {
    best = S::max(S::abs(x[i]), best);
    poison += x[i] * T(0);
  }
  if (poison == poison) return static_cast<double>(best);
  for (std::size_t j = 0; j < n; ++j) {
    if (x[j] != x[j]) return static_cast<double>(x[j]);
  }
  return static_cast<double>(best);  // infinities only
}

// D: the ISA's double registers; V: its registers of the grads' dtype.
template <class D, class V>
constexpr NormKernels<typename V::T> norm_kernels() {
  using T = typename V::T;
  return {{&block_sum_squares<D, T, GradScaleMode::none>, &block_sum_squares<D, T, GradScaleMode::divide>,
           &block_sum_squares<D, T, GradScaleMode::multiply>},
          &max_abs<V>};
}

}  // namespace
}  // namespace adagrad
