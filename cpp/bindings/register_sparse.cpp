// Python entry point of the sparse (row-indexed) update. Everything, every index included, is
// checked with the GIL held before any byte is written; then the GIL is released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "adagrad/dispatch.hpp"
#include "adagrad/sparse.hpp"
#include "array_checks.hpp"
#include "options.hpp"

namespace adagrad::bindings {

namespace {

using npy = py::detail::npy_api;

struct Indices {
  const void* data;
  std::size_t size;
  bool int64;
};

Indices index_array(py::handle obj) {
  if (!npy::get().PyArray_Check_(obj.ptr())) {
    throw py::type_error("indices must be a 1-D numpy.ndarray of int32 or int64, got " + type_name(obj));
  }
  const auto* a = py::detail::array_proxy(obj.ptr());
  const int type = py::detail::array_descriptor_proxy(a->descr)->type_num;
  const bool i32 = type == npy::NPY_INT_;
  const bool i64 = type == npy::NPY_LONGLONG_ || (sizeof(long) == 8 && type == npy::NPY_LONG_);
  if (!i32 && !i64) {
    throw py::type_error("indices must have dtype int32 or int64, got " + std::string(py::str(py::handle(a->descr))));
  }
  if (a->nd != 1) throw py::value_error("indices must be 1-D, got " + std::to_string(a->nd) + " dimensions");
  const int need = npy::NPY_ARRAY_C_CONTIGUOUS_ | npy::NPY_ARRAY_ALIGNED_;
  if ((a->flags & need) != need) throw py::value_error("indices must be contiguous and aligned");
  if (py::detail::array_descriptor_proxy(a->descr)->byteorder == '>') {
    throw py::type_error("indices must be in native byte order");
  }
  return {a->data, static_cast<std::size_t>(a->dimensions[0]), i64};
}

Duplicates duplicates_mode(py::handle obj) {
  if (py::isinstance<py::str>(obj)) {
    const std::string mode = py::str(obj);
    if (mode == "sum") return Duplicates::sum;
    if (mode == "sequential") return Duplicates::sequential;
  }
  throw py::value_error("duplicates must be 'sum' or 'sequential', got " + std::string(py::repr(obj)));
}

std::string shape_of(const FloatArray& a) {
  std::string out = "(";
  for (int i = 0; i < a.ndim; ++i) out += std::to_string(a.shape[i]) + (i + 1 < a.ndim ? ", " : (a.ndim == 1 ? "," : ""));
  return out + ")";
}

void sparse_update(py::handle table, py::handle indices, py::handle values, py::handle state, py::handle step,
                   py::handle lr, py::handle lr_decay, py::handle eps, py::handle weight_decay, py::handle maximize,
                   py::handle eps_inside_sqrt, py::handle duplicates) {
  const std::int64_t t = checked_step(step);
  const DenseOptions o = checked_options({lr, lr_decay, weight_decay, eps, maximize, py::bool_(false), eps_inside_sqrt},
                                         nowhere);
  const Duplicates mode = duplicates_mode(duplicates);
  const TensorName name{py::none(), TensorName::kSparseArguments};
  const FloatArray tab = float_array(table, name, Role::param);
  if (tab.ndim != 2 || !tab.c_order) {
    throw py::value_error("table must be a 2-D C-contiguous array (rows, dim), got shape " + shape_of(tab) +
                          (tab.c_order ? "" : " in Fortran order"));
  }
  const std::size_t rows = static_cast<std::size_t>(tab.shape[0]), dim = static_cast<std::size_t>(tab.shape[1]);
  const Indices idx = index_array(indices);
  const FloatArray val = float_array(values, name, Role::grad);
  const FloatArray st = float_array(state, name, Role::sum);
  for (const auto& [arr, role] : {std::pair{&val, Role::grad}, std::pair{&st, Role::sum}}) {
    if (arr->dtype != tab.dtype) {
      throw py::type_error(name(role) + " must have the table's dtype");
    }
  }
  if (val.ndim != 2 || static_cast<std::size_t>(val.shape[0]) != idx.size ||
      static_cast<std::size_t>(val.shape[1]) != dim || !val.c_order) {
    throw py::value_error("values must be C-contiguous of shape (len(indices), dim) = (" + std::to_string(idx.size) +
                          ", " + std::to_string(dim) + "), got " + shape_of(val));
  }
  const bool elementwise = st.ndim == 2 && static_cast<std::size_t>(st.shape[0]) == rows &&
                           static_cast<std::size_t>(st.shape[1]) == dim && st.c_order;
  const bool rowwise = st.ndim == 1 && static_cast<std::size_t>(st.shape[0]) == rows;
  if (!elementwise && !rowwise) {
    throw py::value_error("state must have shape (rows, dim) = (" + std::to_string(rows) + ", " + std::to_string(dim) +
                          ") for element-wise Adagrad or (rows,) = (" + std::to_string(rows) +
                          ",) for row-wise Adagrad, got " + shape_of(st));
  }
  if (rowwise && dim == 0) throw py::value_error("row-wise Adagrad needs dim >= 1");
  OverlapChecker overlap;
  overlap.add(tab, name, Role::param);
  overlap.add(st, name, Role::sum);
  overlap.add(val, name, Role::grad);
  overlap.add_read(idx.data, idx.size * (idx.int64 ? 8 : 4), TensorName{py::str("indices")}, Role::param);
  overlap.check();

  const SparseProblem problem{tab.dtype, tab.data, rows,  dim,          idx.data, idx.int64, idx.size,
                              val.data,  st.data,  rowwise, mode, o,        t};
  if (const std::size_t bad = first_bad_index(problem); bad != idx.size) {
    const std::int64_t value = idx.int64 ? static_cast<const std::int64_t*>(idx.data)[bad]
                                         : static_cast<const std::int32_t*>(idx.data)[bad];
    throw py::value_error("indices[" + std::to_string(bad) + "] = " + std::to_string(value) +
                          " is out of range for a table of " + std::to_string(rows) + " rows");
  }
  const KernelTable& kernels = active_kernels();
  py::gil_scoped_release release;
  run_sparse(kernels, problem);
}

}  // namespace

void register_sparse(py::module_& m) {
  using namespace pybind11::literals;
  m.def("sparse_update", &sparse_update, "table"_a, "indices"_a, "values"_a, "state"_a, "step"_a, "lr"_a,
        "lr_decay"_a, "eps"_a, "weight_decay"_a, "maximize"_a, "eps_inside_sqrt"_a, "duplicates"_a,
        "Sparse Adagrad update of the indexed rows of a table, in place. Validated by adagrad.sparse_update.");
}

}  // namespace adagrad::bindings
