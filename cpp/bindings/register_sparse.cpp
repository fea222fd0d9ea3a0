// Python entry point of the sparse (row-indexed) update: a StepBatch of one sparse update.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "batch.hpp"
#include "options.hpp"

namespace adagrad::bindings {

namespace {

void sparse_update(py::handle table, py::handle indices, py::handle values, py::handle state, py::handle step,
                   py::handle lr, py::handle lr_decay, py::handle eps, py::handle weight_decay, py::handle maximize,
                   py::handle eps_inside_sqrt, py::handle decoupled_weight_decay, py::handle duplicates) {
  const std::int64_t t = checked_step(step);
  const DenseOptions o =
      checked_options({lr, lr_decay, weight_decay, eps, maximize, decoupled_weight_decay, eps_inside_sqrt}, nowhere);
  StepBatch batch;
  batch.add_sparse(table, indices, values, state, TensorName{py::none(), TensorName::kSparseArguments}, o,
                   duplicates_mode(duplicates), t);
  batch.run();
}

}  // namespace

void register_sparse(py::module_& m) {
  using namespace pybind11::literals;
  m.def("sparse_update", &sparse_update, "table"_a, "indices"_a, "values"_a, "state"_a, "step"_a, "lr"_a,
        "lr_decay"_a, "eps"_a, "weight_decay"_a, "maximize"_a, "eps_inside_sqrt"_a, "decoupled_weight_decay"_a, "duplicates"_a,
        "Sparse Adagrad update of the indexed rows of a table, in place. Validated by adagrad.sparse_update.");
}

}  // namespace adagrad::bindings
