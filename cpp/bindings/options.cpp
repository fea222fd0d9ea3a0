#include "options.hpp"

#include <limits>

namespace adagrad::bindings {

std::string type_name(py::handle obj) { return py::str(py::type::of(obj).attr("__name__")); }

bool is_bool(py::handle obj) {
  static const py::handle numpy_bool = py::object(py::module_::import("numpy").attr("bool_")).release();
  return PyBool_Check(obj.ptr()) || py::isinstance(obj, numpy_bool);
}

Duplicates duplicates_mode(py::handle obj) {
  if (py::isinstance<py::str>(obj)) {
    const std::string mode = py::str(obj);
    if (mode == "sum") return Duplicates::sum;
    if (mode == "sequential") return Duplicates::sequential;
  }
  throw py::value_error("duplicates must be 'sum' or 'sequential', got " + std::string(py::repr(obj)));
}

std::int64_t checked_step(py::handle step) {
  if (is_bool(step) || !PyIndex_Check(step.ptr())) throw py::type_error("step must be an int, got " + type_name(step));
  const auto as_int = py::reinterpret_steal<py::int_>(PyNumber_Index(step.ptr()));
  int overflow = 0;
  const long long t = PyLong_AsLongLongAndOverflow(as_int.ptr(), &overflow);
  if (overflow != 0 || t < 1 || t == std::numeric_limits<long long>::max()) {
    throw py::value_error("step must be >= 1 and < 2**63 - 1 (the 1-based number of this update), got " +
                          std::string(py::str(step)));
  }
  return t;
}

NonFinite nonfinite_mode(py::handle obj) {
  // The common case first: the default, a str constant Python interns, is this very object.
  static PyObject* const propagate = PyUnicode_InternFromString("propagate");
  if (obj.ptr() == propagate) return NonFinite::propagate;
  if (PyUnicode_Check(obj.ptr())) {
    if (PyUnicode_CompareWithASCIIString(obj.ptr(), "propagate") == 0) return NonFinite::propagate;
    if (PyUnicode_CompareWithASCIIString(obj.ptr(), "skip") == 0) return NonFinite::skip;
    if (PyUnicode_CompareWithASCIIString(obj.ptr(), "raise") == 0) return NonFinite::raise;
    throw py::value_error("nonfinite must be 'propagate', 'skip' or 'raise', got " + std::string(py::repr(obj)));
  }
  throw py::type_error("nonfinite must be 'propagate', 'skip' or 'raise', got " + type_name(obj));
}

std::optional<double> checked_grad_scale(py::handle obj) {
  if (obj.is_none()) return std::nullopt;
  double value = 0.0;
  try {
    value = real_option(obj, nowhere, "grad_scale");
    validate_grad_scale(value);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  } catch (const py::value_error&) {  // an int beyond the float range
    throw py::value_error("grad_scale must be a finite number > 0, got an int too large for a float");
  }
  return value;
}

}  // namespace adagrad::bindings
