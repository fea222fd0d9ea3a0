// The element types the kernels take: float32 and float64, and the 16-bit storage formats float16
// and bfloat16, computed in float32 (half.hpp).
#pragma once

#include <cstddef>

namespace adagrad {

enum class Dtype { f32, f64, f16, bf16 };
std::size_t dtype_size(Dtype dtype);
const char* dtype_name(Dtype dtype);
inline bool is_16bit(Dtype dtype) { return dtype == Dtype::f16 || dtype == Dtype::bf16; }

}  // namespace adagrad
