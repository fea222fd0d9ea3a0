// adagrad._core: the only module; each area registers its functions from its own file.
#include <pybind11/pybind11.h>

#include <stdexcept>

#include "batch.hpp"

namespace adagrad::bindings {
void register_benchmarks(pybind11::module_& m);
void register_embedding_bag(pybind11::module_& m);
void register_runtime(pybind11::module_& m);
void register_step(pybind11::module_& m);
}  // namespace adagrad::bindings

// Safe without the GIL (free-threaded CPython, 3.13t and later): shared state is atomics or locked,
// and two threads stepping one optimizer take turns in its Python layer (docs/free_threading.md).
PYBIND11_MODULE(_core, m, pybind11::mod_gil_not_used()) {
  m.doc() = "Native kernels of the adagrad package; use the public API in adagrad instead.";
  // std::invalid_argument from the C++ layer (bad ADAGRAD_ISA, thread count, options) -> ValueError.
  pybind11::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
  // A NaN or infinity in a grad under nonfinite="raise"; re-exported as adagrad.NonFiniteGradError.
  pybind11::register_exception<adagrad::bindings::NonFiniteGrad>(m, "NonFiniteGradError", PyExc_ValueError);
  adagrad::bindings::register_runtime(m);
  adagrad::bindings::register_step(m);
  adagrad::bindings::register_benchmarks(m);
  adagrad::bindings::register_embedding_bag(m);
  m.attr("__version__") = ADAGRAD_VERSION;
}
