// Runtime facts and knobs: which instruction set runs, how many threads.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "adagrad/dense.hpp"
#include "adagrad/dispatch.hpp"
#include "adagrad/thread_pool.hpp"

namespace adagrad::bindings {

namespace py = pybind11;

namespace {

// Never raises: a bad ADAGRAD_ISA or ADAGRAD_NUM_THREADS makes that key None and its message an
// entry of "errors" (python -m adagrad info is how one finds out what is wrong).
py::dict cpu_info() {
  py::dict info;
  py::list errors;
  try {
    info["isa"] = active_kernels().name;
  } catch (const std::exception& e) {
    info["isa"] = py::none();
    errors.append(e.what());
  }
  info["available"] = available_isas();
  info["compiled"] = compiled_isas();
  try {
    info["threads"] = get_num_threads();
  } catch (const std::exception& e) {
    info["threads"] = py::none();
    errors.append(e.what());
  }
  const PoolStatus pool = pool_status();
  info["pool_threads"] = pool.started + 1;  // the calling thread and the workers started
  info["pool_refusal"] = pool.refusal.empty() ? py::object(py::none()) : py::object(py::str(pool.refusal));
  info["thread_team"] = using_openmp_team() ? "openmp" : "own";
  info["parallel_threshold"] = parallel_threshold();
#if defined(__x86_64__) || defined(_M_X64)
  info["arch"] = "x86_64";
#elif defined(__aarch64__)
  info["arch"] = "aarch64";
#else
  info["arch"] = "other";
#endif
  info["compiler"] = __VERSION__;
  info["build_flags"] = ADAGRAD_BUILD_FLAGS;
  info["version"] = ADAGRAD_VERSION;
  info["errors"] = errors;
  return info;
}

}  // namespace

void register_runtime(py::module_& m) {
  using namespace pybind11::literals;
  m.def("cpu_info", &cpu_info, "Which kernel runs and what this CPU offers.");
  m.def("set_isa", &set_isa, "name"_a, "Force the kernels of one instruction set (a name from cpu_info()['available']).");
  m.def("get_num_threads", &get_num_threads, "Threads one update may use.");
  m.def("set_num_threads", &set_num_threads, "n"_a, "Set the threads one update may use (>= 1).");
  m.def("_use_openmp_team", &use_openmp_team, "on"_a,
        "Run parallel steps on the OpenMP thread team of the process's libgomp (PyTorch's), or not; returns "
        "whether it is used (False where no libgomp is loaded). adagrad.torch turns it on.");
  m.def("_last_thread_team", &last_thread_team,
        "Tests only: where this thread's last step ran its tasks: 'inline', 'own' or 'openmp'.");
  m.def("_fail_task", &fail_task, "index"_a,
        "Tests only: the parallel task of this index throws (RuntimeError in the caller); -1 turns it off.");
}

}  // namespace adagrad::bindings
