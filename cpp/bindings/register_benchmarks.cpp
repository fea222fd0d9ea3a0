// Hooks for the benchmarks and tests: the memory ceiling and floors of an update, the gradient norms
// and the stochastic rounding alone, and how a call is cut into tasks. Validated like an update.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "adagrad/dense.hpp"
#include "adagrad/dispatch.hpp"
#include "adagrad/grad_norm.hpp"
#include "array_checks.hpp"
#include "batch.hpp"
#include "options.hpp"

namespace adagrad::bindings {

namespace {

// The ceiling's options: StreamRule (rules/stream.hpp), nothing else.
StepOptions stream_options() { return {RuleOptions(std::in_place_index<rule_index<StreamRule>>), {}, 0}; }

TensorStates one_state(const py::handle* sum) { return {sum, StreamRule::kStates.data(), 1, py::handle()}; }

// The memory ceiling of a dense step: the update's traffic over the same arrays (their values change).
void stream_ceiling(const py::sequence& params, const py::sequence& grads, const py::sequence& sums) {
  if (grads.size() != params.size() || sums.size() != params.size()) {
    throw py::value_error("params, grads and sums must have the same length");
  }
  py::list labels;  // owned for the whole call: TensorName only borrows its label
  for (std::size_t i = 0; i < params.size(); ++i) labels.append(py::str("[" + std::to_string(i) + "]"));
  StepBatch batch;
  std::vector<py::object> held;
  for (std::size_t i = 0; i < params.size(); ++i) {
    held.push_back(sums[i]);
    const py::handle sum = held.back();
    batch.add_dense(params[i], grads[i], one_state(&sum), TensorName{labels[i]}, stream_options(), 1);
  }
  batch.run();
}

// The memory ceiling of sparse_update: the same validation, grouping of repeated rows, prefetch and
// threads, with the row update reduced to state += g, row += g.
void sparse_stream_ceiling(py::handle table, py::handle indices, py::handle values, py::handle state) {
  StepBatch batch;
  batch.add_sparse(table, indices, values, one_state(&state), TensorName{py::none(), true}, stream_options(),
                   Duplicates::sum, 1);
  batch.run();
}

// The floors: each row of `rows` (distinct) has its table and state rows read and written once,
// prefetched, with no grouping and no arithmetic; with read_values, every row of `values` (any
// number of rows: a whole batch's) is also read once.
void sparse_floor(py::handle table, py::handle rows, py::handle values, py::handle state, bool read_values) {
  StepBatch batch;
  batch.add_sparse(table, rows, values, one_state(&state), TensorName{py::none(), true}, stream_options(),
                   Duplicates::sum, 1,
                   read_values ? SparseProblem::Floor::with_values : SparseProblem::Floor::without_values);
  batch.run();
}

// How run_dense and the non-finite check would cut arrays of these sizes into tasks, without any
// array (so that sizes beyond 2**32 elements can be checked without the memory).
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
// norm, the norm of all).
py::tuple grad_norms_of(const py::sequence& grads, py::handle norm_type, py::handle grad_scale) {
  const NormType type = checked_clip(py::none(), norm_type, py::none(), py::none()).norm;
  TransformOptions scale;
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

// x (float32) stochastically rounded into out (float16 or bfloat16, the same size), element i
// drawing the random bits of element index0 + i of (seed, stream, step), by the active ISA's kernel.
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

void register_benchmarks(py::module_& m) {
  using namespace pybind11::literals;
  m.def("stream_ceiling", &stream_ceiling, "params"_a, "grads"_a, "sums"_a,
        "Benchmark ceiling: reads params, grads, sums and writes params, sums (sum += grad, param += grad), "
        "with the same validation, threads and chunking as step.");
  m.def("sparse_stream_ceiling", &sparse_stream_ceiling, "table"_a, "indices"_a, "values"_a, "state"_a,
        "Benchmark ceiling of a sparse update (element-wise state): the same traffic and schedule, one add per "
        "element instead of the update.");
  m.def("sparse_floor", &sparse_floor, "table"_a, "rows"_a, "values"_a, "state"_a, "read_values"_a,
        "Benchmark floor of a sparse update (element-wise state): the table and state rows of the distinct `rows` "
        "read and written once each, prefetched, no grouping, no arithmetic; with read_values also every row of "
        "values (any number of rows) read once.");
  m.def("_grad_norms", &grad_norms_of, "grads"_a, "norm_type"_a = 2.0, "grad_scale"_a = py::none(),
        "Test and benchmark hook: (each grad's norm, the norm of all) as the clip measures them, nothing updated.");
  m.def("_stochastic_round", &stochastic_round, "x"_a, "out"_a, "index0"_a, "seed"_a, "stream"_a, "step"_a,
        "Test hook: out[i] = x[i] (float32) stochastically rounded to out's dtype (float16 / bfloat16) with the "
        "random bits of element index0 + i under (seed, stream, step), by the active kernels.");
  m.def("_plan_tasks", &plan_tasks_for, "sizes"_a,
        "Test hook: (segments, task_starts, chunk_elements) of how a call over arrays of these sizes is split "
        "into thread-pool tasks.");
}

}  // namespace adagrad::bindings
