// The arrays of one call, dense and sparse: each validated as it is added (raising a clear
// TypeError / ValueError), nothing written before run(), which then releases the GIL.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "adagrad/dense.hpp"
#include "adagrad/sparse.hpp"
#include "array_checks.hpp"

namespace adagrad::bindings {

class StepBatch {
 public:
  // One dense update of param with grad and its state sum (same dtype, shape, order).
  void add_dense(py::handle param, py::handle grad, py::handle sum, const TensorName& name, const DenseOptions& o,
                 std::int64_t step, int variant_override = -1);

  // One sparse update of the rows `indices` of a 2-D param with `values`; the state's shape
  // (rows, dim) or (rows,) picks element-wise or row-wise Adagrad. Checks every index.
  void add_sparse(py::handle table, py::handle indices, py::handle values, py::handle state, const TensorName& name,
                  const DenseOptions& o, Duplicates duplicates, std::int64_t step, int variant_override = -1);

  // The overlap check across everything added, then the arithmetic with the GIL released.
  void run();

 private:
  std::vector<py::object> owners_;  // keep every buffer alive while the GIL is released
  std::vector<DenseTensor> dense_;
  std::vector<SparseProblem> sparse_;
  OverlapChecker overlap_;
};

}  // namespace adagrad::bindings
