// Python entry points of the dense update. Everything is validated with the GIL held and before
// any byte is written; then the GIL is released for the arithmetic.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "adagrad/dense.hpp"
#include "adagrad/dispatch.hpp"
#include "adagrad/grad_norm.hpp"
#include "array_checks.hpp"
#include "batch.hpp"
#include "options.hpp"

namespace adagrad::bindings {

namespace {

bool update(py::handle param, py::handle grad, py::handle state_sum, py::handle step, py::handle lr,
            py::handle lr_decay, py::handle weight_decay, py::handle eps, py::handle maximize,
            py::handle decoupled_weight_decay, py::handle eps_inside_sqrt, py::handle nonfinite,
            py::handle grad_scale, py::handle max_grad_norm, py::handle norm_type, py::handle clip_norm_per_tensor,
            py::handle clip_value, py::handle sr_seed) {
  const std::int64_t t = checked_step(step);
  DenseOptions o =
      checked_options({lr, lr_decay, weight_decay, eps, maximize, decoupled_weight_decay, eps_inside_sqrt}, nowhere);
  set_stochastic_rounding(o, sr_seed, "");
  StepBatch batch(nonfinite_mode(nonfinite), checked_grad_scale(grad_scale),
                  checked_clip(max_grad_norm, norm_type, clip_norm_per_tensor, clip_value));
  batch.add_dense(param, grad, state_sum, TensorName{py::none()}, o, t);
  return batch.run();
}

// One dense Proximal Adagrad update (no step count: the rule has none).
bool proximal_update(py::handle param, py::handle grad, py::handle state_sum, py::handle lr, py::handle l1,
                     py::handle l2, py::handle nonfinite) {
  const DenseOptions o = checked_rule_options(Rule::proximal, lr, l1, l2, nowhere);
  StepBatch batch(nonfinite_mode(nonfinite));
  batch.add_dense(param, grad, state_sum, TensorName{py::none()}, o, 1);
  return batch.run();
}

// One dense Adagrad-DA update; step: the 1-based number of this update (TensorFlow's global step + 1).
bool da_update(py::handle param, py::handle grad, py::handle grad_sum, py::handle state_sum, py::handle step,
               py::handle lr, py::handle l1, py::handle l2, py::handle nonfinite) {
  const std::int64_t t = checked_step(step);
  const DenseOptions o = checked_rule_options(Rule::dual_averaging, lr, l1, l2, nowhere);
  StepBatch batch(nonfinite_mode(nonfinite));
  batch.add_dense(param, grad, state_sum, TensorName{py::none()}, o, t, -1, grad_sum);
  return batch.run();
}

// One dense AdagradDecay update; decay_counts: int64, (1,) or (rows,) of a 2-D table.
bool decay_update(py::handle param, py::handle grad, py::handle state_sum, py::handle decay_counts, py::handle step,
                  py::handle lr, py::handle decay_step, py::handle decay_rate, py::handle initial,
                  py::handle nonfinite) {
  const std::int64_t t = checked_step(step);
  const DenseOptions o = checked_decay_options(lr, decay_step, decay_rate, initial, nowhere);
  StepBatch batch(nonfinite_mode(nonfinite));
  batch.add_dense(param, grad, state_sum, TensorName{py::none()}, o, t, -1, {}, decay_counts);
  return batch.run();
}

// The items of a list or tuple, borrowed (valid while the GIL is held and the sequence lives).
struct Items {
  PyObject** items;
  std::size_t size;
  py::handle operator[](std::size_t i) const { return items[i]; }
};

template <class Where>
Items items_of(py::handle obj, const Where& where, const char* what) {
  if (!PyList_Check(obj.ptr()) && !PyTuple_Check(obj.ptr())) {
    throw py::type_error(where() + what + " must be a list or tuple, got " + type_name(obj));
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
  const bool ok = int64 && a->nd == 1 &&
                  static_cast<std::size_t>(a->dimensions[0]) == n &&
                  (a->flags & npy::NPY_ARRAY_C_CONTIGUOUS_) != 0 && (a->flags & npy::NPY_ARRAY_WRITEABLE_) != 0 &&
                  (a->flags & npy::NPY_ARRAY_ALIGNED_) != 0;
  return ok ? reinterpret_cast<std::int64_t*>(a->data) : nullptr;
}

// One param group of a step, read from its tuple: Adagrad's 13-tuple (params, grads, sums, steps,
// labels, lr, lr_decay, weight_decay, eps, maximize, decoupled_weight_decay, eps_inside_sqrt,
// duplicates), or its 14-tuple from the torch adapter, whose last item is torch's vector width for
// 16-bit params (DenseOptions::narrowed_constants_width: torch's fused kernel's constants), or its
// 16-tuple: the width, then stochastic rounding's seed (None: off) and the ordinal of the group's first
// param (param i draws the stream first + i); another rule's (rule, params, grads, sums, extras, steps, labels, <options>,
// duplicates): "proximal" and "dual_averaging" with options lr, l1, l2 (11 items), "adagrad_decay"
// with lr, accumulator_decay_step, accumulator_decay_rate, initial_accumulator_value (12 items).
// extras: None, or per param Adagrad-DA's grad sum, AdagradDecay's decay counts. steps is an int64
// array of the updates done so far per tensor.
struct GroupTuple {
  Items params, grads, sums, labels;
  std::optional<Items> extras;
  std::int64_t* steps;
  DenseOptions options;
  Duplicates duplicates;
  std::uint64_t first_stream = 0;  // stochastic rounding: param i's stream is first_stream + i
};

template <class Where>
std::size_t narrowed_width(py::handle width, const Where& where) {
  if (!PyLong_Check(width.ptr())) throw py::type_error(where() + "the vector width must be an int");
  const long long w = PyLong_AsLongLong(width.ptr());
  if (w < 0 || w > 1024) throw py::value_error(where() + "the vector width must be from 0 (none) to 1024");
  return static_cast<std::size_t>(w);
}

template <class Where>
GroupTuple group_tuple(py::handle group_obj, const Where& where) {
  const bool tuple = PyTuple_Check(group_obj.ptr());
  const py::ssize_t size = tuple ? PyTuple_GET_SIZE(group_obj.ptr()) : 0;
  if (size < 11 || size > 16 || size == 15) throw py::type_error(where() + "malformed group tuple");
  const Items g = items_of(group_obj, where, "group");
  const bool adagrad = size >= 13;
  const std::size_t at = adagrad ? 0 : 1;  // where params are
  GroupTuple out{items_of(g[at], where, "params"),
                 items_of(g[at + 1], where, "grads"),
                 items_of(g[at + 2], where, "state sums"),
                 items_of(g[adagrad ? 4 : 6], where, "labels"),
                 std::nullopt,
                 nullptr,
                 {},
                 Duplicates::sum};
  const std::size_t n = out.params.size;
  if (out.grads.size != n) {
    throw py::value_error(where() + "expected " + std::to_string(n) +
                          " gradients (one per param, None to skip), got " + std::to_string(out.grads.size));
  }
  out.steps = step_counts(g[adagrad ? 3 : 5], n);
  bool matches = out.sums.size == n && out.labels.size == n && out.steps != nullptr;
  if (adagrad) {
    out.options = checked_options({g[5], g[6], g[7], g[8], g[9], g[10], g[11]}, where);
    out.duplicates = duplicates_mode(g[12]);
    if (size >= 14) out.options.narrowed_constants_width = narrowed_width(g[13], where);
    if (size == 16) {
      set_stochastic_rounding(out.options, g[14], where());
      if (!PyLong_Check(g[15].ptr())) throw py::type_error(where() + "the first param's ordinal must be an int");
      out.first_stream = PyLong_AsUnsignedLongLong(g[15].ptr());
      if (PyErr_Occurred()) {
        PyErr_Clear();
        throw py::value_error(where() + "the first param's ordinal must be an int >= 0");
      }
    }
  } else {
    const Rule rule = composite_rule(g[0]);
    if ((rule == Rule::adagrad_decay) != (size == 12)) throw py::type_error(where() + "malformed group tuple");
    out.options = rule == Rule::adagrad_decay ? checked_decay_options(g[7], g[8], g[9], g[10], where)
                                              : checked_rule_options(rule, g[7], g[8], g[9], where);
    out.duplicates = duplicates_mode(g[static_cast<std::size_t>(size) - 1]);
    if (rule == Rule::dual_averaging || rule == Rule::adagrad_decay) {
      out.extras = items_of(g[4], where, rule == Rule::adagrad_decay ? "decay counts" : "grad sums");
      matches = matches && out.extras->size == n;
    }
  }
  if (!matches) throw py::value_error(where() + "optimizer state does not match its params");
  return out;
}

// groups: a list of group tuples (GroupTuple). Every tensor whose grad is not None is updated and
// its step count incremented. A grad that is a 2-tuple (indices, values) is a sparse gradient of a
// 2-D param. nonfinite, grad_scale and the clip options: see StepBatch (the last two: Adagrad
// groups only). Returns true if the update was applied, false if it was skipped
// (nonfinite="skip" and a grad holds a NaN or an infinity: step counts unchanged too); with a norm
// clip (max_grad_norm, clip_norm_per_tensor), the pair (applied, norm of all grads).
py::object step(const py::list& groups, py::handle nonfinite, py::handle grad_scale, py::handle max_grad_norm,
                py::handle norm_type, py::handle clip_norm_per_tensor, py::handle clip_value) {
  static_assert(sizeof(long long) == sizeof(std::int64_t));
  struct Slot {
    std::int64_t* step;
    std::int64_t value;
  };
  const ClipRequest clip = checked_clip(max_grad_norm, norm_type, clip_norm_per_tensor, clip_value);
  StepBatch batch(nonfinite_mode(nonfinite), checked_grad_scale(grad_scale), clip);
  std::vector<Slot> slots;
  std::size_t tensors = 0;  // an upper bound, for one allocation per vector (malformed groups: checked below)
  for (const py::handle group : groups) {
    if (PyTuple_Check(group.ptr()) && PyTuple_GET_SIZE(group.ptr()) >= 2) {
      const py::handle params = PyTuple_GET_ITEM(group.ptr(), PyTuple_GET_SIZE(group.ptr()) >= 13 ? 0 : 1);
      if (PyList_Check(params.ptr()) || PyTuple_Check(params.ptr())) {
        tensors += static_cast<std::size_t>(PySequence_Fast_GET_SIZE(params.ptr()));
      }
    }
  }
  batch.reserve(tensors);
  slots.reserve(tensors);
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const auto where = [gi] { return "param group " + std::to_string(gi) + ": "; };  // for errors only
    const GroupTuple group = group_tuple(PyList_GET_ITEM(groups.ptr(), static_cast<py::ssize_t>(gi)), where);
    for (std::size_t i = 0; i < group.params.size; ++i) {
      const py::handle grad = group.grads[i];
      if (grad.is_none()) continue;
      const TensorName name{group.labels[i]};
      if (group.steps[i] < 0 || group.steps[i] >= std::numeric_limits<std::int64_t>::max() - 1) {
        throw py::value_error(where() + "step count of " + name(Role::param) + " is out of range");
      }
      const std::int64_t t = group.steps[i] + 1;
      const py::handle extra = group.extras ? (*group.extras)[i] : py::handle();
      const bool decay = group.options.rule == Rule::adagrad_decay;
      const py::handle grad_sum = decay ? py::handle() : extra, counts = decay ? extra : py::handle();
      DenseOptions stream_options;  // stochastic rounding only: the group's options with this param's stream
      const DenseOptions* options = &group.options;
      if (group.options.stochastic_rounding) {
        stream_options = group.options;
        stream_options.sr_stream = group.first_stream + i;
        options = &stream_options;
      }
      if (PyTuple_Check(grad.ptr())) {
        if (PyTuple_GET_SIZE(grad.ptr()) != 2) {
          throw py::value_error(name(Role::grad) + " must be an array, or (indices, values) for a sparse gradient");
        }
        batch.add_sparse(group.params[i], PyTuple_GET_ITEM(grad.ptr(), 0), PyTuple_GET_ITEM(grad.ptr(), 1),
                         group.sums[i], name, *options, group.duplicates, t, -1, grad_sum, counts);
      } else {
        batch.add_dense(group.params[i], grad, group.sums[i], name, *options, t, -1, grad_sum, counts);
      }
      slots.push_back({group.steps + i, t});
    }
  }
  const bool applied = batch.run();
  if (applied) {
    for (const Slot& slot : slots) *slot.step = slot.value;
  }
  const py::bool_ result(applied);
  if (!clip.measures_norm()) return result;
  return py::make_tuple(result, batch.grad_norm());
}

// The memory ceiling for benchmarks: the update's traffic over the same arrays (their values change).
void stream_ceiling(const py::sequence& params, const py::sequence& grads, const py::sequence& sums) {
  if (grads.size() != params.size() || sums.size() != params.size()) {
    throw py::value_error("params, grads and sums must have the same length");
  }
  py::list labels;  // owned for the whole call: TensorName only borrows its label
  for (std::size_t i = 0; i < params.size(); ++i) labels.append(py::str("[" + std::to_string(i) + "]"));
  StepBatch batch;
  for (std::size_t i = 0; i < params.size(); ++i) {
    batch.add_dense(params[i], grads[i], sums[i], TensorName{labels[i]}, DenseOptions{}, 1, kStreamVariant);
  }
  batch.run();
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

// Test hook: how run_dense and the non-finite check would cut arrays of these sizes into tasks,
// without any array (so that sizes beyond 2**32 elements can be checked without the memory).
py::tuple plan_tasks_for(const py::sequence& sizes) {
  std::vector<std::size_t> n;
  for (const py::handle size : sizes) n.push_back(py::cast<std::size_t>(size));
  const TaskPlan plan = plan_tasks(n);
  py::array_t<std::uint64_t> segments({static_cast<py::ssize_t>(plan.segments.size()), py::ssize_t{3}});
  auto out = segments.mutable_unchecked<2>();
  for (std::size_t i = 0; i < plan.segments.size(); ++i) {
    const auto row = static_cast<py::ssize_t>(i);
    out(row, 0) = plan.segments[i].tensor;
    out(row, 1) = plan.segments[i].begin;
    out(row, 2) = plan.segments[i].end;
  }
  py::array_t<std::uint64_t> starts(static_cast<py::ssize_t>(plan.task_starts.size()));
  std::copy(plan.task_starts.begin(), plan.task_starts.end(), starts.mutable_data());
  return py::make_tuple(segments, starts, chunk_elements());
}

// The norms of grads as the clip measures them (grad_norm.hpp), without an update: (each grad's
// norm, the norm of all). For tests and benchmarks.
py::tuple grad_norms_of(const py::sequence& grads, py::handle norm_type, py::handle grad_scale) {
  const NormType type = checked_clip(py::none(), norm_type, py::none(), py::none()).norm;
  DenseOptions scale;
  if (const std::optional<double> s = checked_grad_scale(grad_scale)) {
    scale.scale_grads = true;
    scale.grad_scale = *s;
  }
  py::list labels;
  std::vector<FloatArray> arrays;
  std::vector<GradSpan> spans;
  for (std::size_t i = 0; i < grads.size(); ++i) {
    labels.append(py::str("[" + std::to_string(i) + "]"));
    arrays.push_back(float_array(grads[i], TensorName{labels[i]}, Role::grad));
    spans.push_back({arrays.back().dtype, arrays.back().data, arrays.back().size});
  }
  const KernelTable& kernels = active_kernels();
  std::vector<double> norms;
  double total = 0.0;
  {
    py::gil_scoped_release release;
    total = grad_norms(kernels, spans, type, scale, norms);
  }
  py::list each;
  for (const double n : norms) each.append(n);
  return py::make_tuple(each, total);
}

// Test and benchmark hook: x (float32) stochastically rounded into out (float16 or bfloat16, the same
// size), element i drawing the random bits of element index0 + i of (seed, stream, step), by the
// active ISA's kernel.
void stochastic_round(py::handle x, py::handle out, std::uint64_t index0, std::uint64_t seed, std::uint64_t stream,
                      std::int64_t step) {
  py::list labels;
  labels.append(py::str("x"));
  labels.append(py::str("out"));
  const FloatArray in = float_array(x, TensorName{labels[0]}, Role::grad);
  const FloatArray to = float_array(out, TensorName{labels[1]}, Role::param);
  if (in.dtype != Dtype::f32 || !is_16bit(to.dtype) || in.size != to.size) {
    throw py::type_error("x must be float32 and out float16 or bfloat16, of the same size");
  }
  const KernelTable& kernels = active_kernels();
  const SrKey key = sr_key(seed, stream, step);
  py::gil_scoped_release release;
  const auto* source = static_cast<const float*>(in.data);
  if (to.dtype == Dtype::f16) {
    kernels.round_f16(source, static_cast<float16*>(to.data), in.size, index0, key);
  } else {
    kernels.round_bf16(source, static_cast<bfloat16*>(to.data), in.size, index0, key);
  }
}

}  // namespace

void check_options(py::handle lr, py::handle lr_decay, py::handle weight_decay, py::handle eps, py::handle maximize,
                   py::handle decoupled_weight_decay, py::handle eps_inside_sqrt) {
  checked_options({lr, lr_decay, weight_decay, eps, maximize, decoupled_weight_decay, eps_inside_sqrt}, nowhere);
}

void check_rule_options(py::handle rule, py::handle lr, py::handle l1, py::handle l2) {
  checked_rule_options(composite_rule(rule), lr, l1, l2, nowhere);
}

void check_decay_options(py::handle lr, py::handle decay_step, py::handle decay_rate, py::handle initial) {
  checked_decay_options(lr, decay_step, decay_rate, initial, nowhere);
}

void check_step_options(py::handle nonfinite, py::handle grad_scale) {
  nonfinite_mode(nonfinite);
  checked_grad_scale(grad_scale);
}

void check_clip_options(py::handle max_grad_norm, py::handle norm_type, py::handle clip_norm_per_tensor,
                        py::handle clip_value) {
  checked_clip(max_grad_norm, norm_type, clip_norm_per_tensor, clip_value);
}

void register_dense(py::module_& m) {
  using namespace pybind11::literals;
  m.def("update", &update, "param"_a, "grad"_a, "state_sum"_a, "step"_a, "lr"_a, "lr_decay"_a, "weight_decay"_a,
        "eps"_a, "maximize"_a, "decoupled_weight_decay"_a, "eps_inside_sqrt"_a, "nonfinite"_a = "propagate",
        "grad_scale"_a = py::none(), "max_grad_norm"_a = py::none(), "norm_type"_a = 2.0,
        "clip_norm_per_tensor"_a = py::none(), "clip_value"_a = py::none(), "sr_seed"_a = py::none(),
        "One dense Adagrad update of one tensor, in place (sr_seed: stochastic rounding of a 16-bit param's "
        "write, stream 0; None: to nearest even). Validated by adagrad.update. "
        "Returns False if skipped (nonfinite='skip' and the grad is not finite).");
  m.def("step", &step, "groups"_a, "nonfinite"_a = "propagate", "grad_scale"_a = py::none(),
        "max_grad_norm"_a = py::none(), "norm_type"_a = 2.0, "clip_norm_per_tensor"_a = py::none(),
        "clip_value"_a = py::none(),
        "One step over all param groups (Adagrad's 13-tuples, the composite rules' 11-tuples), in place, in one call. nonfinite: 'propagate', "
        "'skip' or 'raise'; grad_scale: None or a float > 0 that every grad is divided by first; then the "
        "clip (at most one of max_grad_norm, clip_norm_per_tensor, clip_value). Returns True if the update was "
        "applied, False if it was skipped; with a norm clip, (applied, norm of all grads).");
  m.def("proximal_update", &proximal_update, "param"_a, "grad"_a, "state_sum"_a, "lr"_a, "l1"_a, "l2"_a,
        "nonfinite"_a = "propagate",
        "One dense Proximal Adagrad update of one tensor, in place. Validated by adagrad.proximal_update. "
        "Returns False if skipped (nonfinite='skip' and the grad is not finite).");
  m.def("da_update", &da_update, "param"_a, "grad"_a, "grad_sum"_a, "state_sum"_a, "step"_a, "lr"_a, "l1"_a, "l2"_a,
        "nonfinite"_a = "propagate",
        "One dense Adagrad-DA update of one tensor, in place. Validated by adagrad.da_update. "
        "Returns False if skipped (nonfinite='skip' and the grad is not finite).");
  m.def("decay_update", &decay_update, "param"_a, "grad"_a, "state_sum"_a, "decay_counts"_a, "step"_a, "lr"_a,
        "accumulator_decay_step"_a, "accumulator_decay_rate"_a, "initial_accumulator_value"_a,
        "nonfinite"_a = "propagate",
        "One dense AdagradDecay update of one tensor, in place. Validated by adagrad.decay_update. "
        "Returns False if skipped (nonfinite='skip' and the grad is not finite).");
  m.def("check_decay_options", &check_decay_options, "lr"_a, "accumulator_decay_step"_a, "accumulator_decay_rate"_a,
        "initial_accumulator_value"_a,
        "Raises TypeError/ValueError unless lr is finite >= 0, the decay step an int >= 1, the rate in (0, 1) and "
        "the initial accumulator value finite > 0.");
  m.def("check_rule_options", &check_rule_options, "rule"_a, "lr"_a, "l1"_a, "l2"_a,
        "Raises TypeError/ValueError unless rule is 'proximal' or 'dual_averaging' and lr, l1, l2 are finite "
        "numbers >= 0.");
  m.def("check_options", &check_options, "lr"_a, "lr_decay"_a, "weight_decay"_a, "eps"_a, "maximize"_a,
        "decoupled_weight_decay"_a, "eps_inside_sqrt"_a,
        "Raises TypeError/ValueError unless the options are valid (finite, >= 0, flags bool).");
  m.def("stream_ceiling", &stream_ceiling, "params"_a, "grads"_a, "sums"_a,
        "Benchmark ceiling: reads params, grads, sums and writes params, sums (sum += grad, param += grad), "
        "with the same validation, threads and chunking as step.");
  m.def("check_step_options", &check_step_options, "nonfinite"_a, "grad_scale"_a,
        "Raises TypeError/ValueError unless nonfinite is 'propagate', 'skip' or 'raise' and grad_scale is None "
        "or a number > 0 that is finite in float32.");
  m.def("check_clip_options", &check_clip_options, "max_grad_norm"_a, "norm_type"_a, "clip_norm_per_tensor"_a,
        "clip_value"_a,
        "Raises TypeError/ValueError unless at most one of max_grad_norm, clip_norm_per_tensor and clip_value is "
        "set, it is a finite number > 0, and norm_type is 2 or inf.");
  m.def("_grad_norms", &grad_norms_of, "grads"_a, "norm_type"_a = 2.0, "grad_scale"_a = py::none(),
        "Test and benchmark hook: (each grad's norm, the norm of all) as the clip measures them, nothing updated.");
  m.def("_stochastic_round", &stochastic_round, "x"_a, "out"_a, "index0"_a, "seed"_a, "stream"_a, "step"_a,
        "Test hook: out[i] = x[i] (float32) stochastically rounded to out's dtype (float16 / bfloat16) with the "
        "random bits of element index0 + i under (seed, stream, step), by the active kernels.");
  m.def("_plan_tasks", &plan_tasks_for, "sizes"_a,
        "Test hook: (segments (n, 3) uint64 of [array, begin, end), task_starts, chunk) for arrays of these sizes.");
  m.def("check_params", &check_params, "params"_a, "labels"_a,
        "Raises TypeError/ValueError unless every param is a writeable float array of its own memory.");
}

}  // namespace adagrad::bindings
