// Turning the Python values of the hyper-parameters into checked C++ ones, with messages that
// say which option is wrong and where (`where()` builds the prefix, only when raising).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

#include "adagrad/grad_norm.hpp"
#include "adagrad/hyper.hpp"
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

// The options in their Python order: lr, lr_decay, weight_decay, eps, maximize,
// decoupled_weight_decay, eps_inside_sqrt. `where` prefixes every message.
template <class Where>
DenseOptions checked_options(const py::handle (&h)[7], const Where& where) {
  DenseOptions o{real_option(h[0], where, "lr"),
                 real_option(h[1], where, "lr_decay"),
                 real_option(h[2], where, "weight_decay"),
                 real_option(h[3], where, "eps"),
                 flag_option(h[4], where, "maximize"),
                 flag_option(h[5], where, "decoupled_weight_decay"),
                 flag_option(h[6], where, "eps_inside_sqrt")};
  try {
    validate(o);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(where() + e.what());
  }
  return o;
}

// For calls whose errors need no prefix.
inline std::string nowhere() { return {}; }

// "proximal", "dual_averaging" or "adagrad_decay": a rule by its name in the optimizers' group tuples.
Rule composite_rule(py::handle name);

// An int (not a bool) from 1 to 2**63 - 1; `option` names it in messages.
std::int64_t positive_int_option(py::handle obj, const std::string& where, const char* option);

// A composite rule's options: lr, l1, l2, each a finite real number >= 0.
template <class Where>
DenseOptions checked_rule_options(Rule rule, py::handle lr, py::handle l1, py::handle l2, const Where& where) {
  DenseOptions o;
  o.rule = rule;
  o.lr = real_option(lr, where, "lr");
  o.l1 = real_option(l1, where, "l1");
  o.l2 = real_option(l2, where, "l2");
  try {
    validate(o);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(where() + e.what());
  }
  return o;
}

// AdagradDecay's options: lr (finite, >= 0), accumulator_decay_step (an int >= 1),
// accumulator_decay_rate (in (0, 1)), initial_accumulator_value (finite, > 0: also the floor).
template <class Where>
DenseOptions checked_decay_options(py::handle lr, py::handle decay_step, py::handle decay_rate, py::handle initial,
                                   const Where& where) {
  DenseOptions o;
  o.rule = Rule::adagrad_decay;
  o.lr = real_option(lr, where, "lr");
  o.decay_step = positive_int_option(decay_step, where(), "accumulator_decay_step");
  o.decay_rate = real_option(decay_rate, where, "accumulator_decay_rate");
  o.decay_floor = real_option(initial, where, "initial_accumulator_value");
  try {
    validate(o);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(where() + e.what());
  }
  return o;
}

// "sum" or "sequential" (the sparse update's treatment of repeated indices).
Duplicates duplicates_mode(py::handle obj);

// The 1-based number of an update: an int (not a bool) from 1 to 2**63 - 2.
std::int64_t checked_step(py::handle step);

// Stochastic rounding's seed: None (round to nearest even) or an int (not a bool) from 0 to 2**64 - 1.
// Sets o.stochastic_rounding and o.sr_seed; `where` prefixes messages.
void set_stochastic_rounding(DenseOptions& o, py::handle seed, const std::string& where);

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
