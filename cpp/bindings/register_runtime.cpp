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
  const LoadGuardStatus guard = load_guard_status();
  info["stalls"] = guard.stalls;
  info["stall_back_off"] = guard.inline_seconds_left;
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
  // The four public controls' docstrings are their documentation (the docs site's API page).
  m.def("cpu_info", &cpu_info, R"doc(Which kernel runs and what this CPU offers.

Returns a dict: ``isa`` (the kernels in use: ``baseline``, ``avx2``, ``avx512`` or ``neon``),
``available`` (those this CPU can run), ``compiled`` (those in this build), ``threads`` (as
:func:`get_num_threads`), ``thread_team`` (``own``: adagrad's pool; ``openmp``: torch's team,
which ``adagrad.torch``'s optimizers use once it is imported), ``parallel_threshold`` (elements
in one call from which it is split across threads), ``pool_threads`` (threads the own pool has
started, the caller's included), ``pool_refusal`` (why the system refused a worker thread, or
None), ``stalls`` (parallel steps that a busy CPU slowed below one thread's speed: the load guard
then runs steps on the calling thread alone for a while) and ``stall_back_off`` (the seconds of
that still to run), ``arch``, ``compiler``, ``build_flags`` (the build type and flags, then each ISA kernel
file's own), ``version`` and ``errors`` (messages for a bad ``ADAGRAD_ISA`` /
``ADAGRAD_NUM_THREADS``, whose key is then None: it never raises). ``python -m adagrad info``
prints it.

Examples:
    >>> import adagrad
    >>> info = adagrad.cpu_info()
    >>> info["isa"] in info["available"]
    True
)doc");
  m.def("set_isa", &set_isa, "name"_a, R"doc(Force the kernels of one instruction set (a name from cpu_info()['available']).

As the environment variable ``ADAGRAD_ISA`` does at start-up. An unknown name, or one this CPU
lacks, raises ``ValueError``. Results are the same bits on every ISA; only the speed differs.

Examples:
    >>> import adagrad
    >>> adagrad.set_isa("baseline"); adagrad.cpu_info()["isa"]
    'baseline'
    >>> adagrad.set_isa(adagrad.cpu_info()["available"][-1])
)doc");
  m.def("get_num_threads", &get_num_threads, R"doc(Threads one update may use.

Default: the CPUs this process may use, or ``ADAGRAD_NUM_THREADS``. The steps of ``adagrad.torch``'s
optimizers, on torch's thread team, use the smaller of this and ``torch.get_num_threads()``.
)doc");
  m.def("set_num_threads", &set_num_threads, "n"_a, R"doc(Set the threads one update may use (>= 1).

Results do not depend on the thread count. Inside a torch training loop see the docs' PyTorch
page, "Threads in a training loop".

Examples:
    >>> import adagrad
    >>> n = adagrad.get_num_threads()
    >>> adagrad.set_num_threads(1); adagrad.get_num_threads()
    1
    >>> adagrad.set_num_threads(n)
)doc");
  m.def("_use_openmp_team", &use_openmp_team, "on"_a,
        "Run parallel steps on the OpenMP thread team of the process's libgomp (PyTorch's), or not; returns "
        "whether it is used (False where no libgomp is loaded). adagrad.torch turns it on.");
  m.def("_last_thread_team", &last_thread_team,
        "Tests only: where this thread's last step ran its tasks: 'inline', 'own' or 'openmp'.");
  m.def("_reset_load_guard", &reset_load_guard, "keep_level"_a = false,
        "Tests only: end the load guard's back-off (keep_level: the next one still grows on the last); the stall "
        "count stays.");
  m.def("_set_first_back_off", &set_first_back_off, "seconds"_a,
        "Tests only: the load guard's first back-off (later ones grow fourfold); 0 restores the default, 1 ms.");
  m.def("_slow_workers", &slow_workers, "microseconds"_a,
        "Tests only: every parallel task a worker thread (not the caller) runs first sleeps this long; 0 turns "
        "it off.");
  m.def("_fail_task", &fail_task, "index"_a,
        "Tests only: the parallel task of this index throws (RuntimeError in the caller); -1 turns it off.");
}

}  // namespace adagrad::bindings
