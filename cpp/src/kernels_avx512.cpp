// Compiled with -mavx512f (CMakeLists.txt); runs only after dispatch saw AVX-512F on the CPU.
#include "simd/avx512.hpp"
#include "dense_kernel.inl"
#include "sparse_kernel.inl"
#include "norm_kernel.inl"
#include "pool_kernel.inl"
#include "kernel_table.inl"

namespace adagrad {
constinit const KernelTable kAvx512Kernels = make_kernel_table<Avx512F32, Avx512F64>("avx512");
}
