// The norm of a step's gradients, for clipping (transforms.hpp, ClipRule): deterministic, so that every
// thread count, every ISA and the reference give the same bits.
//
// 2-norm: each grad is cut into blocks of kNormBlock elements (kernels.hpp); a block's sum of
// squares is computed in double in one fixed order (norm_kernel.inl); a grad's sum of squares is
// the pairwise sum of its blocks' (pairwise_sum), the step's the pairwise sum of its grads', in
// the order given. Norms are the square roots. inf-norm: the largest |g|, NaN if any g is NaN.
// Either is of the grads as the update sees them: the loss scale divided out first.
#pragma once

#include <cstddef>
#include <vector>

#include "adagrad/dense.hpp"
#include "adagrad/kernels.hpp"
#include "adagrad/transforms.hpp"

namespace adagrad {

enum class NormType { two, inf };

// v[0] + v[1] + ... + v[n-1] added in pairs, level by level: (v0 + v1), (v2 + v3), ..., an odd
// last one carried up unchanged; +0 when n = 0. Overwrites v.
double pairwise_sum(double* v, std::size_t n);

// norms[i] = the norm of spans[i]; returns the norm of all of them together. `scale` holds the
// loss scale (TransformOptions::scale_grads, grad_scale). A 16-bit grad is widened to float32 (its
// compute type) first: its norm is the norm of the float32 values. Reads only; big calls are split
// over the thread pool in blocks, whose results are combined in a fixed order.
double grad_norms(const KernelTable& kernels, const std::vector<GradSpan>& spans, NormType type,
                  const TransformOptions& scale, std::vector<double>& norms);

}  // namespace adagrad
