// Python entry point of the sparse (row-indexed) update: a StepBatch of one sparse update.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "batch.hpp"
#include "options.hpp"

namespace adagrad::bindings {

namespace {

bool sparse_update(py::handle table, py::handle indices, py::handle values, py::handle state, py::handle step,
                   py::handle lr, py::handle lr_decay, py::handle eps, py::handle weight_decay, py::handle maximize,
                   py::handle eps_inside_sqrt, py::handle decoupled_weight_decay, py::handle duplicates,
                   py::handle nonfinite, py::handle grad_scale, py::handle max_grad_norm, py::handle norm_type,
                   py::handle clip_norm_per_tensor, py::handle clip_value, py::handle sr_seed) {
  const std::int64_t t = checked_step(step);
  DenseOptions o =
      checked_options({lr, lr_decay, weight_decay, eps, maximize, decoupled_weight_decay, eps_inside_sqrt}, nowhere);
  set_stochastic_rounding(o, sr_seed, "");
  StepBatch batch(nonfinite_mode(nonfinite), checked_grad_scale(grad_scale),
                  checked_clip(max_grad_norm, norm_type, clip_norm_per_tensor, clip_value));
  batch.add_sparse(table, indices, values, state, TensorName{py::none(), TensorName::kSparseArguments}, o,
                   duplicates_mode(duplicates), t);
  return batch.run();
}

// Proximal Adagrad on the indexed rows (element-wise state of the table's shape).
bool sparse_proximal_update(py::handle table, py::handle indices, py::handle values, py::handle state, py::handle lr,
                            py::handle l1, py::handle l2, py::handle duplicates, py::handle nonfinite) {
  const DenseOptions o = checked_rule_options(Rule::proximal, lr, l1, l2, nowhere);
  StepBatch batch(nonfinite_mode(nonfinite));
  batch.add_sparse(table, indices, values, state, TensorName{py::none(), TensorName::kSparseArguments}, o,
                   duplicates_mode(duplicates), 1);
  return batch.run();
}

// Adagrad-DA on the indexed rows; step enters every touched row (TensorFlow's global step + 1).
bool sparse_da_update(py::handle table, py::handle indices, py::handle values, py::handle grad_sum, py::handle state,
                      py::handle step, py::handle lr, py::handle l1, py::handle l2, py::handle duplicates,
                      py::handle nonfinite) {
  const std::int64_t t = checked_step(step);
  const DenseOptions o = checked_rule_options(Rule::dual_averaging, lr, l1, l2, nowhere);
  StepBatch batch(nonfinite_mode(nonfinite));
  batch.add_sparse(table, indices, values, state, TensorName{py::none(), TensorName::kSparseArguments}, o,
                   duplicates_mode(duplicates), t, -1, grad_sum);
  return batch.run();
}

// AdagradDecay on the indexed rows; decay_counts (rows,) int64: the decays each row has had.
bool sparse_decay_update(py::handle table, py::handle indices, py::handle values, py::handle state,
                         py::handle decay_counts, py::handle step, py::handle lr, py::handle decay_step,
                         py::handle decay_rate, py::handle initial, py::handle duplicates, py::handle nonfinite) {
  const std::int64_t t = checked_step(step);
  const DenseOptions o = checked_decay_options(lr, decay_step, decay_rate, initial, nowhere);
  StepBatch batch(nonfinite_mode(nonfinite));
  batch.add_sparse(table, indices, values, state, TensorName{py::none(), TensorName::kSparseArguments}, o,
                   duplicates_mode(duplicates), t, -1, {}, decay_counts);
  return batch.run();
}

// The benchmark's memory ceiling of sparse_update: the same validation, grouping of repeated rows,
// prefetch and threads, with the row update reduced to state += g, row += g.
void sparse_stream_ceiling(py::handle table, py::handle indices, py::handle values, py::handle state) {
  StepBatch batch;
  batch.add_sparse(table, indices, values, state, TensorName{py::none(), TensorName::kSparseArguments}, DenseOptions{},
                   Duplicates::sum, 1, kStreamVariant);
  batch.run();
}

// The benchmark's floors: each row of `rows` (distinct) has its table and state rows read and
// written once, prefetched, with no grouping and no arithmetic; with read_values, every row of
// `values` (any number of rows: a whole batch's) is also read once. Validated like sparse_update.
void sparse_floor(py::handle table, py::handle rows, py::handle values, py::handle state, bool read_values) {
  StepBatch batch;
  batch.add_sparse(table, rows, values, state, TensorName{py::none(), TensorName::kSparseArguments}, DenseOptions{},
                   Duplicates::sum, 1, read_values ? kFloorWithValuesVariant : kFloorVariant);
  batch.run();
}

}  // namespace

void register_sparse(py::module_& m) {
  using namespace pybind11::literals;
  m.def("sparse_update", &sparse_update, "table"_a, "indices"_a, "values"_a, "state"_a, "step"_a, "lr"_a,
        "lr_decay"_a, "eps"_a, "weight_decay"_a, "maximize"_a, "eps_inside_sqrt"_a, "decoupled_weight_decay"_a, "duplicates"_a,
        "nonfinite"_a = "propagate", "grad_scale"_a = py::none(), "max_grad_norm"_a = py::none(), "norm_type"_a = 2.0,
        "clip_norm_per_tensor"_a = py::none(), "clip_value"_a = py::none(), "sr_seed"_a = py::none(),
        "Sparse Adagrad update of the indexed rows of a table, in place (sr_seed: stochastic rounding of a 16-bit "
        "table's writes, stream 0; None: to nearest even). Validated by adagrad.sparse_update. "
        "Returns False if skipped (nonfinite='skip' and the values are not finite).");
  m.def("sparse_proximal_update", &sparse_proximal_update, "table"_a, "indices"_a, "values"_a, "state"_a, "lr"_a,
        "l1"_a, "l2"_a, "duplicates"_a, "nonfinite"_a = "propagate",
        "Sparse Proximal Adagrad update of the indexed rows of a table, in place. Validated by "
        "adagrad.sparse_proximal_update. Returns False if skipped (nonfinite='skip', values not finite).");
  m.def("sparse_da_update", &sparse_da_update, "table"_a, "indices"_a, "values"_a, "grad_sum"_a, "state"_a, "step"_a,
        "lr"_a, "l1"_a, "l2"_a, "duplicates"_a, "nonfinite"_a = "propagate",
        "Sparse Adagrad-DA update of the indexed rows of a table, in place. Validated by adagrad.sparse_da_update. "
        "Returns False if skipped (nonfinite='skip', values not finite).");
  m.def("sparse_decay_update", &sparse_decay_update, "table"_a, "indices"_a, "values"_a, "state"_a, "decay_counts"_a,
        "step"_a, "lr"_a, "accumulator_decay_step"_a, "accumulator_decay_rate"_a, "initial_accumulator_value"_a,
        "duplicates"_a, "nonfinite"_a = "propagate",
        "Sparse AdagradDecay update of the indexed rows of a table, in place. Validated by "
        "adagrad.sparse_decay_update. Returns False if skipped (nonfinite='skip', values not finite).");
  m.def("sparse_stream_ceiling", &sparse_stream_ceiling, "table"_a, "indices"_a, "values"_a, "state"_a,
        "Benchmark ceiling of sparse_update (element-wise state): the same traffic and schedule, one add per "
        "element instead of the update.");
  m.def("sparse_floor", &sparse_floor, "table"_a, "rows"_a, "values"_a, "state"_a, "read_values"_a,
        "Benchmark floor of sparse_update (element-wise state): the table and state rows of the distinct `rows` "
        "read and written once each, prefetched, no grouping, no arithmetic; with read_values also every row of "
        "values (any number of rows) read once.");
}

}  // namespace adagrad::bindings
