// AArch64: NEON is part of the baseline, so no extra flags are needed.
#include "simd/neon.hpp"
#include "dense_kernel.inl"
#include "sparse_kernel.inl"
#include "norm_kernel.inl"
#include "pool_kernel.inl"
#include "kernel_table.inl"

namespace adagrad {
constinit const KernelTable kNeonKernels = make_kernel_table<NeonF32, NeonF64>("neon");
}
