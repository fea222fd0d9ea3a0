// The one entry point of every update: _core.step(records, step_options). A record is a dict with
// fixed keys, one per param group (the optimizers) or per call (the single-call functions):
//   "rule"      the rule's name (rules/*.hpp, kName)
//   "options"   a dict holding the rule's options by name, and maximize, duplicates,
//               stochastic_rounding and seed (a param group itself)
//   "params"    a list or tuple of arrays
//   "grads"     a list or tuple, one per param: None (skipped), an array, (indices, values), or a
//               bag's backward {"indices", "pooled", "bags", "scales"} (batch.hpp, add_sparse)
//   "states"    a dict: each of the rule's states by name (kStates; AdagradDecay's "decay_count"
//               too), a list or tuple with one array per param
//   "steps"     an int64 array of the updates done per param, incremented where one is applied;
//               or "step": the 1-based number of this update (the functions)
//   "labels"    a list of str naming each param in messages ("params[3]", "'fc.weight'"), or None
//               (the functions: their argument names)
//   "first_stream"        optional: stochastic rounding's stream of the first param (param i's is
//                         first_stream + i; default 0)
//   "torch_vector_width"  optional: StepOptions::narrowed_constants_width (the torch adapter)
// step_options: a dict of nonfinite, grad_scale, max_grad_norm, norm_type, clip_norm_per_tensor,
// clip_value (each optional; the defaults: "propagate", none, 2). Everything is read and checked
// before any byte is written.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "adagrad/dense.hpp"
#include "adagrad/fp_environment.hpp"
#include "adagrad/rules/registry.hpp"
#include "array_checks.hpp"
#include "batch.hpp"
#include "options.hpp"

namespace adagrad::bindings {

namespace {

// The record key of a name with static storage (a literal, a rule's option or state name), made once
// and interned: a dict lookup then compares pointers first. Steps run in several threads at once
// (free-threaded Python; and without it a thread may look a key up while another, the GIL released,
// is still parsing): readers scan the published prefix without a lock, a new name is appended under
// a mutex into fixed storage (nothing moves) and then published.
PyObject* key(const char* name) {
  constexpr std::size_t kCapacity = 256;  // the literals and every rule's option and state names
  static std::array<std::pair<const char*, PyObject*>, kCapacity> made;
  static std::atomic<std::size_t> published{0};
  static std::mutex append;
  const auto scan = [&](std::size_t from, std::size_t to) -> PyObject* {
    for (std::size_t i = from; i < to; ++i) {
      if (made[i].first == name) return made[i].second;
    }
    return nullptr;
  };
  const std::size_t seen = published.load(std::memory_order_acquire);
  if (PyObject* k = scan(0, seen)) return k;
  const std::lock_guard<std::mutex> lock(append);
  const std::size_t n = published.load(std::memory_order_relaxed);
  if (PyObject* k = scan(seen, n)) return k;  // another thread added it meanwhile
  if (n == kCapacity) throw std::logic_error("adagrad: more record keys than register_step.cpp has room for");
  PyObject* k = PyUnicode_InternFromString(name);
  if (k == nullptr) throw py::error_already_set();
  made[n] = {name, k};
  published.store(n + 1, std::memory_order_release);
  return k;
}

// A record's value under a key: borrowed; null if absent (optional keys).
py::handle item(py::handle dict, PyObject* k) {
  PyObject* value = PyDict_GetItemWithError(dict.ptr(), k);
  if (value == nullptr && PyErr_Occurred()) throw py::error_already_set();
  return value;
}

// The items of a list or tuple, borrowed (valid while the GIL is held and the sequence lives).
struct Items {
  PyObject** items = nullptr;
  std::size_t size = 0;
  py::handle operator[](std::size_t i) const { return items[i]; }
};

Items items_of(py::handle obj, const std::string& where, const char* what) {
  if (!PyList_Check(obj.ptr()) && !PyTuple_Check(obj.ptr())) {
    throw py::type_error(where + what + " must be a list or tuple, got " + type_name(obj));
  }
  return {PySequence_Fast_ITEMS(obj.ptr()), static_cast<std::size_t>(PySequence_Fast_GET_SIZE(obj.ptr()))};
}

// The optimizer's per-tensor step counts: a writeable, contiguous int64 array of n elements.
std::int64_t* step_counts(py::handle obj, std::size_t n) {
  using npy = py::detail::npy_api;
  if (!npy::get().PyArray_Check_(obj.ptr())) return nullptr;
  const auto* a = py::detail::array_proxy(obj.ptr());
  const auto* d = py::detail::array_descriptor_proxy(a->descr);
  // np.int64 is NPY_LONG where long has 64 bits (Linux, macOS), NPY_LONGLONG elsewhere.
  const bool int64 = d->type_num == npy::NPY_LONGLONG_ || (sizeof(long) == 8 && d->type_num == npy::NPY_LONG_);
  const bool ok = int64 && a->nd == 1 && static_cast<std::size_t>(a->dimensions[0]) == n &&
                  (a->flags & npy::NPY_ARRAY_C_CONTIGUOUS_) != 0 && (a->flags & npy::NPY_ARRAY_WRITEABLE_) != 0 &&
                  (a->flags & npy::NPY_ARRAY_ALIGNED_) != 0;
  return ok ? reinterpret_cast<std::int64_t*>(a->data) : nullptr;
}

// A non-negative int of a record (first_stream, torch_vector_width) up to `most`.
std::uint64_t record_int(py::handle value, const std::string& where, const char* what, std::uint64_t most) {
  if (!PyLong_Check(value.ptr())) throw py::type_error(where + what + " must be an int");
  const unsigned long long v = PyLong_AsUnsignedLongLong(value.ptr());
  if ((v == static_cast<unsigned long long>(-1) && PyErr_Occurred()) || v > most) {
    PyErr_Clear();
    throw py::value_error(where + what + " must be an int from 0 to " + std::to_string(most));
  }
  return v;
}

// One record, read and checked (but its arrays, which the batch checks as it adds them).
struct Record {
  int rule;
  const StateSpec* specs;
  std::size_t state_count;
  bool decay_counts;
  Items params, grads;
  std::array<Items, kMaxStates> states;
  Items counts;  // AdagradDecay's decay counts
  std::optional<Items> labels;
  std::int64_t* steps;  // or null: `step` is the one update's number
  std::int64_t step;
  StepOptions options;
  Duplicates duplicates;
  std::uint64_t first_stream;
  std::string where;  // the prefix of messages: "param group 2: ", or none for the functions
};

Record record_of(py::handle record, std::size_t index) {
  static PyObject* const k_rule = key("rule");
  static PyObject* const k_options = key("options");
  static PyObject* const k_params = key("params");
  static PyObject* const k_grads = key("grads");
  static PyObject* const k_states = key("states");
  static PyObject* const k_steps = key("steps");
  static PyObject* const k_step = key("step");
  static PyObject* const k_labels = key("labels");
  static PyObject* const k_first = key("first_stream");
  static PyObject* const k_width = key("torch_vector_width");
  static PyObject* const k_duplicates = key("duplicates");
  static PyObject* const k_decay_count = key(kDecayCounts.name);
  if (!PyDict_Check(record.ptr())) throw py::type_error("a step record must be a dict, got " + type_name(record));
  const auto required = [&](PyObject* k, const char* name) {
    const py::handle v = item(record, k);
    if (!v) throw py::value_error("a step record has no '" + std::string(name) + "'");
    return v;
  };
  Record r{};
  const py::handle labels = required(k_labels, "labels");
  r.where = labels.is_none() ? std::string() : "param group " + std::to_string(index) + ": ";
  r.rule = rule_named(required(k_rule, "rule"));
  Rules::visit(r.rule, [&](auto rule) {
    using Rule = decltype(rule);
    r.specs = Rule::kStates.data();
    r.state_count = Rule::kStates.size();
    r.decay_counts = Rule::kDecayCounts;
  });
  const py::handle options = required(k_options, "options");
  r.options = group_options(r.rule, options, r.where);
  r.duplicates = duplicates_mode(required_item(options, k_duplicates, "duplicates", r.where));
  r.params = items_of(required(k_params, "params"), r.where, "params");
  r.grads = items_of(required(k_grads, "grads"), r.where, "grads");
  const std::size_t n = r.params.size;
  if (r.grads.size != n) {
    throw py::value_error(r.where + "expected " + std::to_string(n) + " gradients (one per param, None to skip), got " +
                          std::to_string(r.grads.size));
  }
  const py::handle states = required(k_states, "states");
  if (!PyDict_Check(states.ptr())) throw py::type_error(r.where + "the states must be a dict, got " + type_name(states));
  bool matches = true;
  for (std::size_t j = 0; j < r.state_count; ++j) {
    const py::handle list = item(states, key(r.specs[j].name));
    if (!list) throw py::value_error(r.where + "the states have no '" + r.specs[j].name + "'");
    r.states[j] = items_of(list, r.where, r.specs[j].name);
    matches = matches && r.states[j].size == n;
  }
  if (r.decay_counts) {
    const py::handle list = item(states, k_decay_count);
    if (!list) throw py::value_error(r.where + "the states have no 'decay_count'");
    r.counts = items_of(list, r.where, "decay counts");
    matches = matches && r.counts.size == n;
  }
  if (!labels.is_none()) {
    r.labels = items_of(labels, r.where, "labels");
    matches = matches && r.labels->size == n;
  }
  if (const py::handle steps = item(record, k_steps)) {
    r.steps = step_counts(steps, n);
    matches = matches && r.steps != nullptr;
  } else {
    r.step = checked_step(required(k_step, "step"));
  }
  if (!matches) throw py::value_error(r.where + "optimizer state does not match its params");
  if (const py::handle first = item(record, k_first)) {
    r.first_stream = record_int(first, r.where, "first_stream", std::numeric_limits<std::uint64_t>::max());
  }
  if (const py::handle width = item(record, k_width)) {
    r.options.narrowed_constants_width = record_int(width, r.where, "the torch vector width", 1024);
  }
  return r;
}

// The batch-wide options of a step: (nonfinite, grad_scale, clip) from the step options dict.
struct BatchOptions {
  NonFinite nonfinite;
  std::optional<double> grad_scale;
  ClipRequest clip;
  bool openmp_team;  // adagrad.torch's steps: torch's OpenMP team, where it is shared
};

BatchOptions batch_options(py::handle step_options) {
  static PyObject* const k_nonfinite = key("nonfinite");
  static PyObject* const k_scale = key("grad_scale");
  static PyObject* const k_max_norm = key("max_grad_norm");
  static PyObject* const k_norm_type = key("norm_type");
  static PyObject* const k_per_tensor = key("clip_norm_per_tensor");
  static PyObject* const k_value = key("clip_value");
  static PyObject* const k_team = key("openmp_team");
  if (step_options.is_none()) return {NonFinite::propagate, std::nullopt, {}, false};
  if (!PyDict_Check(step_options.ptr())) {
    throw py::type_error("the step options must be a dict, got " + type_name(step_options));
  }
  const auto get = [&](PyObject* k) -> py::handle {
    const py::handle v = item(step_options, k);
    return v ? v : py::handle(Py_None);
  };
  const py::handle nonfinite = item(step_options, k_nonfinite);
  const py::handle norm_type = item(step_options, k_norm_type);
  static PyObject* const two = PyFloat_FromDouble(2.0);  // never freed: no decref after the interpreter ends
  return {nonfinite ? nonfinite_mode(nonfinite) : NonFinite::propagate, checked_grad_scale(get(k_scale)),
          checked_clip(get(k_max_norm), norm_type ? norm_type : py::handle(two), get(k_per_tensor), get(k_value)),
          get(k_team).ptr() == Py_True};
}

// One step over every record. Every tensor whose grad is not None is updated and, for records with
// step counts, its count incremented. Returns True if the update was applied, False if it was
// skipped (nonfinite="skip" and a grad holds a NaN or an infinity: step counts unchanged too); with
// a norm clip, (applied, norm of all grads).
py::object step(const py::list& records, py::handle step_options) {
  // The coefficients (lr / (1 + ...), eps narrowed to float) are worked out while the records are
  // read: in the kernels' floating-point environment too, whatever the caller's.
  const KernelFpEnvironment fp_environment;
  const BatchOptions batch_options_ = batch_options(step_options);
  StepBatch batch(batch_options_.nonfinite, batch_options_.grad_scale, batch_options_.clip, batch_options_.openmp_team);
  std::vector<Record> parsed;
  parsed.reserve(records.size());
  std::size_t tensors = 0;
  for (std::size_t i = 0; i < records.size(); ++i) {
    parsed.push_back(record_of(PyList_GET_ITEM(records.ptr(), static_cast<py::ssize_t>(i)), i));
    tensors += parsed.back().params.size;
  }
  batch.reserve(tensors);
  for (const Record& r : parsed) {
    for (std::size_t i = 0; i < r.params.size; ++i) {
      const py::handle grad = r.grads[i];
      if (grad.is_none() && r.labels) continue;  // an optimizer's param without a grad; a function's grad is required
      const TensorName name{r.labels ? (*r.labels)[i] : py::handle(Py_None), PyTuple_Check(grad.ptr()) != 0 || PyDict_Check(grad.ptr()) != 0};
      std::int64_t t = r.step;
      if (r.steps != nullptr) {
        if (r.steps[i] < 0 || r.steps[i] >= std::numeric_limits<std::int64_t>::max() - 1) {
          throw py::value_error(r.where + "step count of " + name(Role::param) + " is out of range");
        }
        t = r.steps[i] + 1;
      }
      std::array<py::handle, kMaxStates> arrays{};
      for (std::size_t j = 0; j < r.state_count; ++j) arrays[j] = r.states[j][i];
      const TensorStates states{arrays.data(), r.specs, r.state_count, r.decay_counts ? r.counts[i] : py::handle()};
      StepOptions stream_options;  // stochastic rounding only: the group's options with this param's stream
      const StepOptions* options = &r.options;
      if (r.options.transform.stochastic_rounding) {
        stream_options = r.options;
        stream_options.transform.sr_stream = r.first_stream + i;
        options = &stream_options;
      }
      if (PyDict_Check(grad.ptr())) {  // a bag's backward: {"indices", "pooled", "bags", "scales"}
        static PyObject* const k_indices = key("indices");
        static PyObject* const k_pooled = key("pooled");
        static PyObject* const k_bags = key("bags");
        static PyObject* const k_scales = key("scales");
        const StepBatch::BagRows bag{required_item(grad, k_bags, "bags", r.where),
                                     required_item(grad, k_scales, "scales", r.where)};
        batch.add_sparse(r.params[i], required_item(grad, k_indices, "indices", r.where),
                         required_item(grad, k_pooled, "pooled", r.where), states, name, *options, r.duplicates, t,
                         SparseProblem::Floor::none, &bag);
      } else if (PyTuple_Check(grad.ptr())) {
        if (PyTuple_GET_SIZE(grad.ptr()) != 2) {
          throw py::value_error(name(Role::grad) + " must be an array, or (indices, values) for a sparse gradient");
        }
        batch.add_sparse(r.params[i], PyTuple_GET_ITEM(grad.ptr(), 0), PyTuple_GET_ITEM(grad.ptr(), 1), states, name,
                         *options, r.duplicates, t);
      } else {
        batch.add_dense(r.params[i], grad, states, name, *options, t);
      }
      if (r.steps != nullptr) batch.count_on_success(r.steps + i, t);
    }
  }
  const bool applied = batch.run();
  const py::bool_ result(applied);
  if (!batch_options_.clip.measures_norm()) return result;
  return py::make_tuple(result, batch.grad_norm());
}

// The rule's options and the per-group transforms of a param group (a dict), checked: a
// TypeError / ValueError naming the first bad one.
void check_options(py::handle rule, py::handle options) {
  static PyObject* const k_duplicates = key("duplicates");
  const int index = rule_named(rule);
  group_options(index, options, nowhere());
  duplicates_mode(required_item(options, k_duplicates, "duplicates", nowhere()));
}

// The step options (a dict, as step takes them), checked.
void check_step_options(py::handle step_options) { batch_options(step_options); }

// Construction-time check of an optimizer's params: each a writeable float array, none sharing memory.
void check_params(const py::sequence& params, const py::sequence& labels) {
  OverlapChecker overlap;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const TensorName name{labels[i]};
    overlap.add(float_array(params[i], name, Role::param), name, Role::param);
  }
  overlap.check();
}

const char* check_name(Check check) {
  switch (check) {
    case Check::non_negative:
      return "non_negative";
    case Check::non_positive:
      return "non_positive";
    case Check::positive:
      return "positive";
    case Check::open_unit:
      return "open_unit";
    case Check::positive_int:
      return "positive_int";
    case Check::flag:
      return "flag";
  }
  return "";
}

// What the kernels know of each rule: {name: {"options": [(name, check)], "states": [...],
// "rowwise": bool}}, for tests/test_rules.py to hold the Python declarations to.
py::dict rules() {
  py::dict out;
  for (int i = 0; i < kRuleCount; ++i) {
    Rules::visit(i, [&](auto rule) {
      using Rule = decltype(rule);
      if (rule_index<Rule> == rule_index<StreamRule>) return;
      py::list options, states;
      for (const auto& f : Rule::kOptions) options.append(py::make_tuple(f.name, check_name(f.check)));
      for (const auto& s : Rule::kStates) states.append(s.name);
      if (Rule::kDecayCounts) states.append(kDecayCounts.name);
      py::dict entry;
      entry["options"] = options;
      entry["states"] = states;
      entry["rowwise"] = Rule::kRowwise;
      out[Rule::kName] = entry;
    });
  }
  return out;
}

}  // namespace

void register_step(py::module_& m) {
  using namespace pybind11::literals;
  m.def("step", &step, "records"_a, "step_options"_a = py::none(),
        "One update of every record's params (see cpp/bindings/register_step.cpp for a record's keys), in place, "
        "in one call; step_options: a dict of nonfinite, grad_scale and the clip options. Returns True if the "
        "update was applied, False if it was skipped; with a norm clip, (applied, norm of all grads).");
  m.def("check_options", &check_options, "rule"_a, "options"_a,
        "Raises TypeError/ValueError unless the param group (a dict) holds valid options of the rule and the "
        "per-group transforms (maximize, duplicates, stochastic_rounding, seed).");
  m.def("check_step_options", &check_step_options, "step_options"_a,
        "Raises TypeError/ValueError unless the step options (a dict of nonfinite, grad_scale, max_grad_norm, "
        "norm_type, clip_norm_per_tensor, clip_value) are valid.");
  m.def("check_params", &check_params, "params"_a, "labels"_a,
        "Raises unless every param is a writeable float array and none shares memory with another.");
  m.def("rules", &rules, "The rules the kernels know: their options (name, check), states and row-wise state.");
}

}  // namespace adagrad::bindings
