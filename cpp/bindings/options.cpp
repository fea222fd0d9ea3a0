#include "options.hpp"

#include <array>
#include <limits>
#include <utility>

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

std::int64_t positive_int_option(py::handle obj, const std::string& where, const char* option) {
  if (is_bool(obj) || !PyIndex_Check(obj.ptr())) {
    throw py::type_error(where + option + " must be an int, got " + type_name(obj));
  }
  const auto as_int = py::reinterpret_steal<py::int_>(PyNumber_Index(obj.ptr()));
  int overflow = 0;
  const long long value = PyLong_AsLongLongAndOverflow(as_int.ptr(), &overflow);
  if (overflow != 0 || value < 1) {
    throw py::value_error(where + option + " must be an int >= 1, got " + std::string(py::str(obj)));
  }
  return value;
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

int rule_named(py::handle name) {
  int found = -1;
  if (PyUnicode_Check(name.ptr())) {
    for (int i = 0; i < kRuleCount; ++i) {
      Rules::visit(i, [&](auto rule) {
        using Rule = decltype(rule);
        if (rule_index<Rule> != rule_index<StreamRule> && PyUnicode_CompareWithASCIIString(name.ptr(), Rule::kName) == 0) {
          found = i;
        }
      });
    }
  }
  if (found < 0) {
    throw py::value_error("rule must be 'adagrad', 'proximal', 'dual_averaging' or 'adagrad_decay', got " +
                          std::string(py::repr(name)));
  }
  return found;
}

py::handle required_item(py::handle options, PyObject* key, const char* name, const std::string& where) {
  if (!PyDict_Check(options.ptr())) throw py::type_error(where + "the options must be a dict, got " + type_name(options));
  PyObject* value = PyDict_GetItemWithError(options.ptr(), key);
  if (value == nullptr) {
    if (PyErr_Occurred()) throw py::error_already_set();
    throw py::value_error(where + "the options have no '" + name + "'");
  }
  return value;
}

namespace {

// The record keys of a rule's options, made once (interned: a dict lookup compares pointers first).
template <class Rule>
const std::array<PyObject*, Rule::kOptions.size()>& option_keys() {
  static const auto keys = [] {
    std::array<PyObject*, Rule::kOptions.size()> out{};
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = PyUnicode_InternFromString(Rule::kOptions[i].name);
    return out;
  }();
  return keys;
}

template <class Rule>
typename Rule::Options options_of(py::handle options, const std::string& where) {
  typename Rule::Options o;
  const auto& keys = option_keys<Rule>();
  const auto prefix = [&] { return where; };
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const OptionField<typename Rule::Options>& f = Rule::kOptions[i];
    const py::handle value = required_item(options, keys[i], f.name, where);
    switch (f.check) {
      case Check::flag:
        o.*(f.flag) = flag_option(value, prefix, f.name);
        break;
      case Check::positive_int:
        o.*(f.integer) = positive_int_option(value, where, f.name);
        break;
      default: {
        const double x = real_option(value, prefix, f.name);
        try {
          check_real_option(x, f.check, f.name);
        } catch (const std::invalid_argument& e) {
          throw py::value_error(where + e.what());
        }
        o.*(f.real) = x;
      }
    }
  }
  return o;
}

}  // namespace

RuleOptions rule_options(int rule, py::handle options, const std::string& where) {
  RuleOptions out;
  Rules::visit(rule, [&](auto r) {
    using Rule = decltype(r);
    out.template emplace<rule_index<Rule>>(options_of<Rule>(options, where));
  });
  return out;
}

StepOptions group_options(int rule, py::handle options, const std::string& where) {
  static PyObject* const maximize = PyUnicode_InternFromString("maximize");
  static PyObject* const stochastic = PyUnicode_InternFromString("stochastic_rounding");
  static PyObject* const seed_key = PyUnicode_InternFromString("seed");
  StepOptions o{rule_options(rule, options, where), {}, 0};
  const auto prefix = [&] { return where; };
  o.transform.maximize = flag_option(required_item(options, maximize, "maximize", where), prefix, "maximize");
  o.transform.stochastic_rounding =
      flag_option(required_item(options, stochastic, "stochastic_rounding", where), prefix, "stochastic_rounding");
  const py::handle seed = required_item(options, seed_key, "seed", where);
  if (is_bool(seed) || !PyIndex_Check(seed.ptr())) throw py::type_error(where + "seed must be an int, got " + type_name(seed));
  const auto as_int = py::reinterpret_steal<py::int_>(PyNumber_Index(seed.ptr()));
  const unsigned long long value = PyLong_AsUnsignedLongLong(as_int.ptr());
  if (value == static_cast<unsigned long long>(-1) && PyErr_Occurred()) {
    PyErr_Clear();
    throw py::value_error(where + "seed must be an int from 0 to 2**64 - 1, got " + std::string(py::str(seed)));
  }
  o.transform.sr_seed = value;
  return o;
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

namespace {

NormType norm_type_of(py::handle obj) {
  const auto bad = [&]() -> NormType {
    throw py::value_error("norm_type must be 2 or inf (float('inf') or 'inf'), got " + std::string(py::repr(obj)));
  };
  if (PyUnicode_Check(obj.ptr())) return PyUnicode_CompareWithASCIIString(obj.ptr(), "inf") == 0 ? NormType::inf : bad();
  double value = 0.0;
  try {
    value = real_option(obj, nowhere, "norm_type");
  } catch (const py::value_error&) {
    return bad();
  }
  if (value == 2.0) return NormType::two;
  if (value == std::numeric_limits<double>::infinity()) return NormType::inf;
  return bad();
}

double clip_threshold(py::handle obj, const char* name) {
  double value = 0.0;
  try {
    value = real_option(obj, nowhere, name);
    validate_clip_threshold(value, name);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  } catch (const py::value_error&) {
    throw py::value_error(std::string(name) + " must be a finite number > 0, got an int too large for a float");
  }
  return value;
}

}  // namespace

ClipRequest checked_clip(py::handle max_grad_norm, py::handle norm_type, py::handle clip_norm_per_tensor,
                         py::handle clip_value) {
  ClipRequest r;
  r.norm = norm_type_of(norm_type);
  const std::pair<py::handle, std::pair<ClipRule, const char*>> options[] = {
      {max_grad_norm, {ClipRule::global_norm, "max_grad_norm"}},
      {clip_norm_per_tensor, {ClipRule::tensor_norm, "clip_norm_per_tensor"}},
      {clip_value, {ClipRule::value, "clip_value"}}};
  const char* chosen = nullptr;
  for (const auto& [obj, rule] : options) {
    if (obj.is_none()) continue;
    if (chosen != nullptr) {
      throw py::value_error(std::string("at most one of max_grad_norm, clip_norm_per_tensor and clip_value may be set, "
                                        "got ") + chosen + " and " + rule.second);
    }
    chosen = rule.second;
    r.rule = rule.first;
    r.threshold = clip_threshold(obj, rule.second);
  }
  return r;
}

}  // namespace adagrad::bindings
