// Turning the Python values of the hyper-parameters into checked C++ ones, with messages that
// say which option is wrong and where (`where()` builds the prefix, only when raising).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "adagrad/grad_norm.hpp"
#include "adagrad/options.hpp"
#include "adagrad/sparse.hpp"

namespace adagrad::bindings {

namespace py = pybind11;

std::string type_name(py::handle obj);

// Python's bool or numpy.bool_.
bool is_bool(py::handle obj);

template <class Where>
double real_option(py::handle obj, const Where& where, const char* option) {
  if (PyFloat_CheckExact(obj.ptr())) return PyFloat_AS_DOUBLE(obj.ptr());
  const auto name = [&] { return where() + option; };
  if (!is_bool(obj) && (PyFloat_Check(obj.ptr()) || PyLong_Check(obj.ptr()) || PyNumber_Check(obj.ptr()))) {
    const double value = PyFloat_AsDouble(obj.ptr());
    if (!(value == -1.0 && PyErr_Occurred())) return value;
    const bool too_big = PyErr_ExceptionMatches(PyExc_OverflowError);
    PyErr_Clear();
    if (too_big) throw py::value_error(name() + " must be a finite number >= 0, got an int too large for a float");
  }
  throw py::type_error(name() + " must be a real number, got " + type_name(obj));
}

template <class Where>
bool flag_option(py::handle obj, const Where& where, const char* option) {
  if (obj.ptr() == Py_True) return true;
  if (obj.ptr() == Py_False) return false;
  if (!is_bool(obj)) throw py::type_error(where() + option + " must be a bool, got " + type_name(obj));
  return PyObject_IsTrue(obj.ptr()) == 1;
}

// For calls whose errors need no prefix.
inline std::string nowhere() { return {}; }

// An int (not a bool) from 1 to 2**63 - 1; `option` names it in messages.
std::int64_t positive_int_option(py::handle obj, const std::string& where, const char* option);

// The registry index (rules/registry.hpp) of the rule a record names: "adagrad", "proximal",
// "dual_averaging", "adagrad_decay" (a ValueError otherwise; the benchmarks' "stream" is not one).
int rule_named(py::handle name);

// options[key]: a borrowed reference; a TypeError if options is not a dict, a ValueError naming the
// key if it lacks it.
py::handle required_item(py::handle options, PyObject* key, const char* name, const std::string& where);

// The rule's options, read from a param group (a dict holding at least the rule's options by name:
// rules/*.hpp, kOptions), each checked; `where` prefixes every message.
RuleOptions rule_options(int rule, py::handle options, const std::string& where);

// The options of one update of the rule read from a param group: the rule's, then the per-group
// transforms every rule takes: maximize (a bool), stochastic_rounding (a bool) and seed (an int from
// 0 to 2**64 - 1). The batch's loss scale and clip are added by StepBatch.
StepOptions group_options(int rule, py::handle options, const std::string& where);

// "sum" or "sequential" (the sparse update's treatment of repeated indices).
Duplicates duplicates_mode(py::handle obj);

// The 1-based number of an update: an int (not a bool) from 1 to 2**63 - 2.
std::int64_t checked_step(py::handle step);

// What a step does when a gradient holds a NaN or an infinity.
enum class NonFinite {
  propagate,  // nothing checked: the update computes with it (torch's default)
  skip,       // nothing written, step counts unchanged; the step reports it was skipped
  raise,      // nothing written; NonFiniteGradError names the gradient
};

// "propagate", "skip" or "raise"; anything else is a ValueError (TypeError if not a str).
NonFinite nonfinite_mode(py::handle obj);

// None (no loss scaling), or a real number (not a bool) that is finite and > 0 as a float32.
std::optional<double> checked_grad_scale(py::handle obj);

// Gradient clipping as asked for by the Python options max_grad_norm (global norm, torch's
// clip_grad_norm_), clip_norm_per_tensor (each grad by its own norm, Keras clipnorm), clip_value
// (Keras clipvalue) and norm_type (2 or inf): at most one of the three set, each None or a finite
// number > 0; norm_type 2, inf or 'inf'.
struct ClipRequest {
  ClipRule rule = ClipRule::none;
  double threshold = 0.0;
  NormType norm = NormType::two;
  bool measures_norm() const { return rule == ClipRule::global_norm || rule == ClipRule::tensor_norm; }
};
ClipRequest checked_clip(py::handle max_grad_norm, py::handle norm_type, py::handle clip_norm_per_tensor,
                         py::handle clip_value);


}  // namespace adagrad::bindings
