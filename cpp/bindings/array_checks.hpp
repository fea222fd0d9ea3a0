// Checks that turn Python objects into raw buffers the kernels can use, or raise a clear
// TypeError / ValueError naming the argument. Nothing here ever copies or casts an array.
// The happy path reads NumPy's array header directly: no Python objects, no strings.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "adagrad/dense.hpp"
#include "adagrad/rules/declare.hpp"

namespace adagrad::bindings {

namespace py = pybind11;

// The role of an array in one tensor's update, and how errors name it: a state is named by its
// rule's StateSpec (rules/declare.hpp).
enum class Role { param, grad, indices, state };

// AdagradDecay's per-row counts of decays done, named like a state.
inline constexpr StateSpec kDecayCounts{"decay_count", "decay_counts", "decay_counts", "decay counts of "};

// label None: the functional form's argument names ("param", "grad", "state_sum"; the sparse form's
// "table", "values", "state");
// label a str such as "'fc.weight'" or "params[3]": "param 'fc.weight'", "grad of 'fc.weight'", ...
// Built only when an error is raised.
struct TensorName {
  py::handle label;  // borrowed: must outlive every use, including error messages
  bool sparse = false;  // label None: the sparse form's argument names
  std::string operator()(Role role, const StateSpec* state = nullptr) const;
};

struct FloatArray {
  py::object owner;  // keeps the buffer alive while the GIL is released
  Dtype dtype;
  void* data;
  std::size_t size;
  std::size_t nbytes;
  int ndim;
  const py::ssize_t* shape;
  bool c_order;  // C-contiguous (else Fortran-contiguous only)
};

// A float32/float64/float16/bfloat16 (ml_dtypes.bfloat16) ndarray, aligned, native byte order, C- or
// Fortran-contiguous; params and states must also be writeable, grads are only read.
FloatArray float_array(py::handle obj, const TensorName& name, Role role, const StateSpec* state = nullptr);

// The common case of a dense update, read from the array headers at once: exact ndarrays sharing
// one float32 or float64 dtype object (native byte order), C-contiguous and aligned, one shape,
// param and states writeable. Fills `out` and returns true; false when anything differs, and then
// the checks above run one by one (they raise, or accept a valid but less common layout).
struct DenseArrays {
  Dtype dtype;
  Dtype state_dtype;  // dtype, or float32 for a 16-bit param (checked_dense_arrays alone)
  void* param;
  const void* grad;
  void* states[kMaxStates];
  std::size_t size;
  std::size_t nbytes;
  std::size_t state_nbytes;
};
bool plain_dense_arrays(py::handle param, py::handle grad, const py::handle* states, std::size_t n_states,
                        DenseArrays& out);
// The same, one check at a time: raises a TypeError / ValueError naming the array, or accepts any
// valid layout (Fortran order, ndarray subclasses, equal dtypes of distinct dtype objects).
DenseArrays checked_dense_arrays(py::handle param, py::handle grad, const py::handle* states, const StateSpec* specs,
                                 std::size_t n_states, const TensorName& name);

// "(3, 4)", "(5,)": the array's shape as Python prints it, for messages.
std::string shape_string(const FloatArray& a);

// The grad or a state must have the param's dtype, shape and memory order; a 16-bit param's
// state may also be float32 when float32_state_allowed.
void require_same_layout(const FloatArray& param, const FloatArray& other, const TensorName& name, Role role,
                         const StateSpec* state = nullptr, bool float32_state_allowed = false);

// A byte range [begin, end).
struct Span {
  std::uintptr_t begin, end;
};

// Raises ValueError if any written buffer overlaps another written or read buffer.
class OverlapChecker {
 public:
  void add(const FloatArray& a, const TensorName& name, Role role, const StateSpec* state = nullptr) {
    add(a.data, a.nbytes, name, role, state);
  }
  void add(const void* data, std::size_t nbytes, const TensorName& name, Role role, const StateSpec* state = nullptr);
  void clear() {
    written_.clear();
    read_.clear();
    sorted_ = nullptr;
  }
  void reserve(std::size_t tensors) {
    written_.reserve(2 * tensors);
    read_.reserve(tensors);
  }
  // A buffer that is only read, e.g. sparse indices; named as `role` of `name`.
  void add_read(const void* data, std::size_t nbytes, const TensorName& name, Role role);
  void check();
  // After check(): the written ranges, sorted and disjoint. Owned by the calling thread; valid
  // until its next check().
  const std::vector<Span>& written_sorted() const { return *sorted_; }
  // The name of the written array holding the byte at `address` (for messages).
  std::string written_name(std::uintptr_t address) const;

 private:
  [[noreturn]] void report_clash();  // the slow path: finds the clash again and names it

  struct Range {
    std::uintptr_t begin, end;
    TensorName name;
    Role role;
    const StateSpec* state;
  };
  std::vector<Range> written_, read_;
  const std::vector<Span>* sorted_ = nullptr;
};

}  // namespace adagrad::bindings
