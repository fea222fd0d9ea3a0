// Compiled with -mavx2 -mfma (CMakeLists.txt); runs only after dispatch saw both on the CPU.
#include "simd/avx2.hpp"
#include "dense_kernel.inl"
#include "sparse_kernel.inl"
#include "norm_kernel.inl"
#include "pool_kernel.inl"
#include "kernel_table.inl"

namespace adagrad {
constinit const KernelTable kAvx2Kernels = make_kernel_table<Avx2F32, Avx2F64>("avx2");
}
