// Python entry points of the dense update. Everything is validated with the GIL held and before
// any byte is written; then the GIL is released for the arithmetic.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "adagrad/dense.hpp"
#include "adagrad/dispatch.hpp"
#include "array_checks.hpp"

namespace adagrad::bindings {

namespace {

std::string type_name(py::handle obj) { return py::str(py::type::of(obj).attr("__name__")); }

bool is_bool(py::handle obj) {
  static const py::handle numpy_bool = py::object(py::module_::import("numpy").attr("bool_")).release();
  return PyBool_Check(obj.ptr()) || py::isinstance(obj, numpy_bool);
}

double real_option(py::handle obj, const std::string& name) {
  if (!is_bool(obj) && (PyFloat_Check(obj.ptr()) || PyLong_Check(obj.ptr()) || PyNumber_Check(obj.ptr()))) {
    const double value = PyFloat_AsDouble(obj.ptr());
    if (!(value == -1.0 && PyErr_Occurred())) return value;
    const bool too_big = PyErr_ExceptionMatches(PyExc_OverflowError);
    PyErr_Clear();
    if (too_big) throw py::value_error(name + " must be a finite number >= 0, got an int too large for a float");
  }
  throw py::type_error(name + " must be a real number, got " + type_name(obj));
}

bool flag_option(py::handle obj, const std::string& name) {
  if (!is_bool(obj)) throw py::type_error(name + " must be a bool, got " + type_name(obj));
  return PyObject_IsTrue(obj.ptr()) == 1;
}

// The options in their Python order: lr, lr_decay, weight_decay, eps, maximize,
// decoupled_weight_decay, eps_inside_sqrt. `where` prefixes every message.
DenseOptions checked_options(const py::handle (&h)[7], const std::string& where) {
  DenseOptions o{real_option(h[0], where + "lr"),
                 real_option(h[1], where + "lr_decay"),
                 real_option(h[2], where + "weight_decay"),
                 real_option(h[3], where + "eps"),
                 flag_option(h[4], where + "maximize"),
                 flag_option(h[5], where + "decoupled_weight_decay"),
                 flag_option(h[6], where + "eps_inside_sqrt")};
  try {
    validate(o);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(where + e.what());
  }
  return o;
}

void run(const std::vector<DenseTensor>& tensors) {
  const KernelTable& kernels = active_kernels();  // may raise for a bad ADAGRAD_ISA: before any write
  py::gil_scoped_release release;
  run_dense(kernels, tensors);
}

void update(py::handle param, py::handle grad, py::handle state_sum, py::handle step, py::handle lr,
            py::handle lr_decay, py::handle weight_decay, py::handle eps, py::handle maximize,
            py::handle decoupled_weight_decay, py::handle eps_inside_sqrt) {
  if (is_bool(step) || !PyIndex_Check(step.ptr())) throw py::type_error("step must be an int, got " + type_name(step));
  const py::int_ as_int = py::reinterpret_steal<py::int_>(PyNumber_Index(step.ptr()));
  int overflow = 0;
  const long long t = PyLong_AsLongLongAndOverflow(as_int.ptr(), &overflow);
  if (overflow != 0 || t < 1 || t == std::numeric_limits<long long>::max()) {
    throw py::value_error("step must be >= 1 and < 2**63 - 1 (the 1-based number of this update), got " +
                          std::string(py::str(step)));
  }
  const DenseOptions o =
      checked_options({lr, lr_decay, weight_decay, eps, maximize, decoupled_weight_decay, eps_inside_sqrt}, "");
  const TensorName name{py::none()};
  const FloatArray p = float_array(param, name, Role::param);
  const FloatArray g = float_array(grad, name, Role::grad);
  const FloatArray s = float_array(state_sum, name, Role::sum);
  require_same_layout(p, g, name, Role::grad);
  require_same_layout(p, s, name, Role::sum);
  OverlapChecker overlap;
  overlap.add(p, name, Role::param);
  overlap.add(g, name, Role::grad);
  overlap.add(s, name, Role::sum);
  overlap.check();
  run({make_dense_tensor(p.dtype, p.data, g.data, s.data, p.size, o, t)});
}

py::sequence as_sequence(py::handle obj, const std::string& what) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj)) {
    throw py::type_error(what + " must be a list or tuple, got " + type_name(obj));
  }
  return py::reinterpret_borrow<py::sequence>(obj);
}

// groups: a list of tuples (params, grads, sums, steps, labels, lr, lr_decay, weight_decay, eps,
// maximize, decoupled_weight_decay, eps_inside_sqrt). steps is an int64 array of the updates done
// so far per tensor; it is incremented for every tensor whose grad is not None.
void step(const py::list& groups) {
  struct Slot {
    std::int64_t* step;
    std::int64_t value;
  };
  std::vector<FloatArray> keep_alive;
  std::vector<DenseTensor> tensors;
  std::vector<Slot> slots;
  OverlapChecker overlap;
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const std::string where = "param group " + std::to_string(gi) + ": ";
    const py::object group_obj = groups[gi];
    if (!py::isinstance<py::tuple>(group_obj)) throw py::type_error(where + "malformed group tuple");
    const auto group = py::reinterpret_borrow<py::tuple>(group_obj);
    if (group.size() != 12) throw py::value_error(where + "malformed group tuple");
    const py::sequence params = as_sequence(group[0], where + "params");
    const py::sequence grads = as_sequence(group[1], where + "grads");
    const py::sequence sums = as_sequence(group[2], where + "state sums");
    auto steps = py::array_t<std::int64_t, py::array::c_style>::ensure(group[3]);
    const py::sequence labels = as_sequence(group[4], where + "labels");
    const DenseOptions o =
        checked_options({group[5], group[6], group[7], group[8], group[9], group[10], group[11]}, where);
    const std::size_t n = params.size();
    if (grads.size() != n) {
      throw py::value_error(where + "expected " + std::to_string(n) + " gradients (one per param, None to skip), got " +
                            std::to_string(grads.size()));
    }
    if (sums.size() != n || labels.size() != n || !steps || static_cast<std::size_t>(steps.size()) != n ||
        !steps.writeable()) {
      throw py::value_error(where + "optimizer state does not match its params");
    }
    std::int64_t* step_data = steps.mutable_data();
    for (std::size_t i = 0; i < n; ++i) {
      const py::handle grad_obj = grads[i];
      if (grad_obj.is_none()) continue;
      const TensorName name{labels[i]};
      FloatArray p = float_array(params[i], name, Role::param);
      FloatArray g = float_array(grad_obj, name, Role::grad);
      FloatArray s = float_array(sums[i], name, Role::sum);
      require_same_layout(p, g, name, Role::grad);
      require_same_layout(p, s, name, Role::sum);
      overlap.add(p, name, Role::param);
      overlap.add(g, name, Role::grad);
      overlap.add(s, name, Role::sum);
      if (step_data[i] < 0 || step_data[i] == std::numeric_limits<std::int64_t>::max()) {
        throw py::value_error(where + "step count of " + name(Role::param) + " is out of range");
      }
      const std::int64_t t = step_data[i] + 1;
      tensors.push_back(make_dense_tensor(p.dtype, p.data, g.data, s.data, p.size, o, t));
      slots.push_back({step_data + i, t});
      keep_alive.push_back(std::move(p));
      keep_alive.push_back(std::move(g));
      keep_alive.push_back(std::move(s));
    }
  }
  overlap.check();
  run(tensors);
  for (const Slot& slot : slots) *slot.step = slot.value;
}

// Construction-time check of an optimizer's params: each a writeable float array, none sharing memory.
void check_params(const py::sequence& params, const py::sequence& labels) {
  OverlapChecker overlap;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const TensorName name{labels[i]};
    overlap.add(float_array(params[i], name, Role::param), name, Role::param);
  }
  overlap.check();
}

}  // namespace

void check_options(py::handle lr, py::handle lr_decay, py::handle weight_decay, py::handle eps, py::handle maximize,
                   py::handle decoupled_weight_decay, py::handle eps_inside_sqrt) {
  checked_options({lr, lr_decay, weight_decay, eps, maximize, decoupled_weight_decay, eps_inside_sqrt}, "");
}

void register_dense(py::module_& m) {
  using namespace pybind11::literals;
  m.def("update", &update, "param"_a, "grad"_a, "state_sum"_a, "step"_a, "lr"_a, "lr_decay"_a, "weight_decay"_a,
        "eps"_a, "maximize"_a, "decoupled_weight_decay"_a, "eps_inside_sqrt"_a,
        "One dense Adagrad update of one tensor, in place. Validated by adagrad.update.");
  m.def("step", &step, "groups"_a, "One dense Adagrad step over all param groups, in place, in one call.");
  m.def("check_options", &check_options, "lr"_a, "lr_decay"_a, "weight_decay"_a, "eps"_a, "maximize"_a,
        "decoupled_weight_decay"_a, "eps_inside_sqrt"_a,
        "Raises TypeError/ValueError unless the options are valid (finite, >= 0, flags bool).");
  m.def("check_params", &check_params, "params"_a, "labels"_a,
        "Raises TypeError/ValueError unless every param is a writeable float array of its own memory.");
}

}  // namespace adagrad::bindings
