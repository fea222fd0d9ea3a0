// The portable kernel: scalar code for the architecture's baseline (x86-64: SSE2, fma from libm).
#include "dense_kernel.inl"
#include "sparse_kernel.inl"
#include "norm_kernel.inl"
#include "pool_kernel.inl"
#include "kernel_table.inl"

namespace adagrad {
constinit const KernelTable kBaselineKernels =
    make_kernel_table<ScalarVec<float>, ScalarVec<double>>("baseline");
}
