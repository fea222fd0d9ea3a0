// _core.embedding_bag_pool(record): the forward pooling of adagrad.torch.EmbeddingBag on a float32
// table (pool_kernel.inl), threaded over bags. The record is a dict with fixed keys:
//   "table"    float32 (rows, dim), C order
//   "ids"      int32 or int64 (n,), each in [0, rows)
//   "offsets"  int64 (bags + 1,): bag b is ids [offsets[b], offsets[b + 1]), non-decreasing, within [0, n]
//   "weights"  None or float32 (n,); "fused_weights": bool (fma into the sum, else product then sum)
//   "padding_idx" an int (-1: none), "mean" a bool
//   "out"      float32 (bags, dim), C order, writeable: overwritten
// _core.embedding_bag_pools(records): a list of such records (adagrad.torch.EmbeddingBagCollection's
// tables), pooled in one call threaded across tables x bags. Every record is checked before anything
// is written.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "adagrad/dispatch.hpp"
#include "adagrad/kernels.hpp"
#include "adagrad/thread_pool.hpp"

namespace adagrad::bindings {

namespace py = pybind11;

namespace {

// Bags per task at least: below it the call stays on the calling thread.
constexpr std::size_t kBagsPerTask = 32;

py::array checked(const py::dict& r, const char* key, int ndim, bool writeable = false) {
  if (!r.contains(key)) throw py::key_error(std::string("embedding_bag_pool: no ") + key);
  const py::handle obj = r[key];
  if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(key) + " must be a numpy.ndarray");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (a.ndim() != ndim || !(a.flags() & py::array::c_style) || (writeable && !a.writeable())) {
    throw py::value_error(std::string(key) + " must be " + std::to_string(ndim) + "-D, C-contiguous" +
                          (writeable ? ", writeable" : ""));
  }
  return a;
}

// One record's task over all its bags, checked; the arrays stay alive in the caller's record.
PoolTask checked_task(const py::dict& r) {
  const py::array table = checked(r, "table", 2), ids = checked(r, "ids", 1), offsets = checked(r, "offsets", 1);
  py::array out = checked(r, "out", 2, true);
  const py::handle weights_obj = r["weights"];
  if (!table.dtype().is(py::dtype::of<float>()) || !out.dtype().is(py::dtype::of<float>())) {
    throw py::type_error("table and out must be float32");
  }
  const bool int64 = ids.dtype().is(py::dtype::of<std::int64_t>());
  if (!int64 && !ids.dtype().is(py::dtype::of<std::int32_t>())) throw py::type_error("ids must be int32 or int64");
  if (!offsets.dtype().is(py::dtype::of<std::int64_t>())) throw py::type_error("offsets must be int64");
  const auto rows = static_cast<std::int64_t>(table.shape(0));
  const auto dim = static_cast<std::size_t>(table.shape(1));
  const auto n = static_cast<std::size_t>(ids.shape(0));
  if (offsets.shape(0) < 1) throw py::value_error("offsets must hold len(bags) + 1 entries");
  const auto bags = static_cast<std::size_t>(offsets.shape(0)) - 1;
  if (static_cast<std::size_t>(out.shape(0)) != bags || static_cast<std::size_t>(out.shape(1)) != dim) {
    throw py::value_error("out must have shape (len(offsets) - 1, dim)");
  }
  const auto* off = static_cast<const std::int64_t*>(offsets.data());
  if (off[0] != 0 || static_cast<std::size_t>(off[bags]) > n) throw py::value_error("offsets must run within [0, len(ids)]");
  for (std::size_t b = 0; b < bags; ++b) {
    if (off[b + 1] < off[b]) throw py::value_error("offsets must be non-decreasing");
  }
  for (std::size_t k = 0; k < n; ++k) {
    const std::int64_t id = int64 ? static_cast<const std::int64_t*>(ids.data())[k]
                                  : static_cast<const std::int32_t*>(ids.data())[k];
    if (id < 0 || id >= rows) throw py::value_error("id " + std::to_string(id) + " is out of range");
  }
  const float* weights = nullptr;
  if (!weights_obj.is_none()) {
    const py::array w = checked(r, "weights", 1);
    if (!w.dtype().is(py::dtype::of<float>()) || static_cast<std::size_t>(w.shape(0)) != n) {
      throw py::value_error("weights must be float32 of len(ids)");
    }
    weights = static_cast<const float*>(w.data());
  }
  PoolTask task{static_cast<const float*>(table.data()),
                dim,
                ids.data(),
                int64,
                n,
                off,
                weights,
                r["fused_weights"].cast<bool>(),
                r["padding_idx"].cast<std::int64_t>(),
                r["mean"].cast<bool>(),
                static_cast<float*>(out.mutable_data()),
                0,
                bags};
  return task;
}

// The tasks' bags, counted across tasks in order, cut into equal runs, one per thread (a run may
// span tables); each bag is one run's alone.
void pool_all(const std::vector<PoolTask>& tasks) {
  std::size_t total = 0;
  for (const PoolTask& t : tasks) total += t.end_bag;
  const KernelTable& kernels = active_kernels();
  py::gil_scoped_release release;
  const ParallelSection section(true);
  const std::size_t runs = total < 2 * kBagsPerTask ? 1 : static_cast<std::size_t>(section.threads());
  auto pool_run = [&](std::size_t first, std::size_t end) {
    std::size_t before = 0;  // bags of the tasks before t
    for (const PoolTask& t : tasks) {
      const std::size_t lo = first > before ? first - before : 0;
      const std::size_t hi = end - before < t.end_bag ? end - before : t.end_bag;
      if (lo < hi) {
        PoolTask part = t;
        part.first_bag = lo;
        part.end_bag = hi;
        kernels.pool_f32(part);
      }
      before += t.end_bag;
      if (before >= end) break;
    }
  };
  if (runs == 1) return pool_run(0, total);
  parallel_for(runs, [&](std::size_t i) { pool_run(total * i / runs, total * (i + 1) / runs); });
}

void embedding_bag_pool(const py::dict& r) { pool_all({checked_task(r)}); }

void embedding_bag_pools(const py::list& records) {
  std::vector<PoolTask> tasks;
  tasks.reserve(records.size());
  for (const py::handle r : records) {
    if (!py::isinstance<py::dict>(r)) throw py::type_error("embedding_bag_pools takes a list of dicts");
    tasks.push_back(checked_task(py::reinterpret_borrow<py::dict>(r)));
  }
  pool_all(tasks);
}

}  // namespace

void register_embedding_bag(py::module_& m) {
  using namespace pybind11::literals;
  m.def("embedding_bag_pool", &embedding_bag_pool, "record"_a,
        "The forward pooling of adagrad.torch.EmbeddingBag on a float32 table (a record: see "
        "cpp/bindings/register_embedding_bag.cpp).");
  m.def("embedding_bag_pools", &embedding_bag_pools, "records"_a,
        "The forward pooling of several float32 tables in one call (adagrad.torch.EmbeddingBagCollection; "
        "records as embedding_bag_pool's).");
}

}  // namespace adagrad::bindings
