// Benchmark peer only: a C entry point to FBGEMM's JIT sparse Adagrad kernels, compiled by
// benchmarks/fbgemm.py against the fbgemm.so of an installed fbgemm-gpu-cpu. FBGEMM ships no
// headers in that wheel, so the one declaration needed is written here from its public API
// (FbgemmEmbedding.h: GenerateSparseAdaGrad and the signature of the kernel it returns).
#include <cstdint>
#include <functional>

namespace fbgemm {
template <typename IndexType>
class SparseAdaGradSignature {
 public:
  using Type = std::function<int(int num_rows, std::uint64_t param_size, float* w, const float* g, float* h,
                                 const IndexType* indices, float epsilon, float lr, float weight_decay,
                                 const double* counter, std::int64_t counter_halflife)>;
};
template <typename IndexType>
typename SparseAdaGradSignature<IndexType>::Type GenerateSparseAdaGrad(int block_size, bool rowwise, int prefetch,
                                                                       bool use_weight_decay);
}  // namespace fbgemm

namespace {
using Kernel = fbgemm::SparseAdaGradSignature<std::int64_t>::Type;
}

extern "C" {

// A kernel for rows of `dim` floats (rowwise: one accumulator per row), FBGEMM's default prefetch
// distance of 16 rows; freed by adagrad_fbgemm_free.
void* adagrad_fbgemm_kernel(int dim, int rowwise) {
  return new Kernel(fbgemm::GenerateSparseAdaGrad<std::int64_t>(dim, rowwise != 0, 16, false));
}

void adagrad_fbgemm_free(void* kernel) { delete static_cast<Kernel*>(kernel); }

// Every one of the `rows` occurrences in order: h[i] += g^2 (rowwise: the row's mean), then
// w += lr * g / (sqrt(h) + eps). FBGEMM's lr is added, so pass -lr. Returns the rows processed.
int adagrad_fbgemm_run(void* kernel, int rows, std::uint64_t table_size, float* table, const float* values,
                       float* state, const std::int64_t* indices, float eps, float lr) {
  return (*static_cast<Kernel*>(kernel))(rows, table_size, table, values, state, indices, eps, lr, 0.0f, nullptr, 0);
}
}
