// The arrays of one call, dense and sparse: each validated as it is added (raising a clear
// TypeError / ValueError), nothing written before run(), which then releases the GIL.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <vector>

#include "adagrad/dense.hpp"
#include "adagrad/sparse.hpp"
#include "array_checks.hpp"
#include "options.hpp"

namespace adagrad::bindings {

// A gradient held a NaN or an infinity under nonfinite="raise": adagrad.NonFiniteGradError,
// a subclass of ValueError (module.cpp).
class NonFiniteGrad : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class StepBatch {
 public:
  // nonfinite: what run() does if a grad holds a NaN or an infinity. grad_scale: every grad of
  // the batch is divided by it first (loss scaling), or not at all when empty.
  explicit StepBatch(NonFinite nonfinite = NonFinite::propagate, std::optional<double> grad_scale = std::nullopt)
      : nonfinite_(nonfinite), grad_scale_(grad_scale) {}

  // Room for this many tensors: no reallocation while they are added.
  void reserve(std::size_t tensors);

  // One dense update of param with grad and its state sum (same dtype, shape, order).
  void add_dense(py::handle param, py::handle grad, py::handle sum, const TensorName& name, const DenseOptions& o,
                 std::int64_t step, int variant_override = -1);

  // One sparse update of the rows `indices` of a 2-D param with `values`; the state's shape
  // (rows, dim) or (rows,) picks element-wise or row-wise Adagrad. Checks every index.
  void add_sparse(py::handle table, py::handle indices, py::handle values, py::handle state, const TensorName& name,
                  const DenseOptions& o, Duplicates duplicates, std::int64_t step, int variant_override = -1);

  // The overlap check across everything added, then, with the GIL released, the check of every
  // grad for NaN and infinity (unless nonfinite is propagate) and the arithmetic. Returns true
  // when the update was applied; false when nonfinite is skip and a grad is not finite (nothing
  // written). Throws NonFiniteGrad, nothing written, when nonfinite is raise and one is not.
  bool run();

 private:
  DenseOptions with_grad_scale(const DenseOptions& o) const;
  void check_later(const FloatArray& grad, const TensorName& name);
  [[noreturn]] void report_nonfinite(std::size_t index) const;

  NonFinite nonfinite_;
  std::optional<double> grad_scale_;
  std::vector<py::object> owners_;  // keep every buffer alive while the GIL is released
  std::vector<DenseTensor> dense_;
  std::vector<SparseProblem> sparse_;
  OverlapChecker overlap_;
  // nonfinite skip / raise: every grad (dense arrays, sparse values), in the order added.
  std::vector<GradSpan> checked_;
  struct CheckedName {
    py::handle array;  // borrowed: owners_ holds it
    TensorName name;
  };
  std::vector<CheckedName> checked_names_;  // raise only: for the message
};

}  // namespace adagrad::bindings
