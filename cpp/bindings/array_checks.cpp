#include "array_checks.hpp"

#include <algorithm>
#include <cstdint>

namespace adagrad::bindings {

namespace {

bool native_byte_order(const py::dtype& dt) {
  const char order = dt.byteorder();
  if (order == '=' || order == '|') return true;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return order == '>';  // spelled out, yet native
#else
  return order == '<';
#endif
}

std::string type_name(py::handle obj) { return py::str(py::type::of(obj).attr("__name__")); }

std::string shape_string(const py::array& a) {
  std::string out = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) out += std::to_string(a.shape(i)) + (a.ndim() == 1 ? "," : (i + 1 < a.ndim() ? ", " : ""));
  return out + ")";
}

}  // namespace

std::string TensorName::operator()(Role role) const {
  static const char* const kArgument[] = {"param", "grad", "state_sum"};
  static const char* const kPrefix[] = {"param ", "grad of ", "state sum of "};
  const auto r = static_cast<int>(role);
  if (label.is_none()) return kArgument[r];
  return kPrefix[r] + std::string(py::str(label));
}

FloatArray float_array(py::handle obj, const TensorName& name, Role role) {
  const bool writeable = role != Role::grad;
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(name(role) + " must be a numpy.ndarray of float32 or float64, got " + type_name(obj));
  }
  auto array = py::reinterpret_borrow<py::array>(obj);
  const py::dtype dt = array.dtype();
  const bool is_float = dt.kind() == 'f' && (dt.itemsize() == 4 || dt.itemsize() == 8);
  if (!is_float || !native_byte_order(dt)) {
    throw py::type_error(name(role) + " must have dtype float32 or float64 (native byte order), got " +
                         std::string(py::str(dt)) + "; convert it yourself: a hidden copy would not be updated");
  }
  const int flags = array.flags();
  const bool c_order = (flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) != 0;
  const bool f_order = (flags & py::detail::npy_api::NPY_ARRAY_F_CONTIGUOUS_) != 0;
  if (!c_order && !f_order) {
    throw py::value_error(name(role) + " must be contiguous (C or Fortran order), got strides of a view; "
                          "pass a contiguous array (a hidden copy would not be updated)");
  }
  if ((flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_) == 0) {
    throw py::value_error(name(role) + " is not aligned to its element size");
  }
  if (writeable && !array.writeable()) {
    throw py::value_error(name(role) + " is read-only; it is updated in place and must be writeable");
  }
  return {array, dt.itemsize() == 4 ? Dtype::f32 : Dtype::f64, const_cast<void*>(array.data()),
          static_cast<std::size_t>(array.size()), static_cast<std::size_t>(array.nbytes()), c_order};
}

void require_same_layout(const FloatArray& ref, const FloatArray& other, const TensorName& name, Role role) {
  if (other.dtype != ref.dtype) {
    throw py::type_error(name(role) + " has dtype " + std::string(py::str(other.array.dtype())) + " but " + name(Role::param) +
                         " has " + std::string(py::str(ref.array.dtype())) + "; they must match");
  }
  const bool same_shape = other.array.ndim() == ref.array.ndim() &&
                          std::equal(ref.array.shape(), ref.array.shape() + ref.array.ndim(), other.array.shape());
  if (!same_shape) {
    throw py::value_error(name(role) + " has shape " + shape_string(other.array) + " but " + name(Role::param) + " has " +
                          shape_string(ref.array) + "; they must match");
  }
  // Both contiguous; the element order differs only if one is C-only and the other Fortran-only.
  const int ref_flags = ref.array.flags(), other_flags = other.array.flags();
  const int c = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_;
  if ((ref_flags & c) != (other_flags & c) && ref.size > 1) {
    throw py::value_error(name(role) + " is in " + (other.c_order ? "C" : "Fortran") + " order but " + name(Role::param) +
                          " is in " + (ref.c_order ? "C" : "Fortran") + " order; they must match");
  }
}

void OverlapChecker::add(const FloatArray& a, const TensorName& name, Role role) {
  if (a.nbytes == 0) return;
  const auto b = reinterpret_cast<std::uintptr_t>(a.data);
  (role == Role::grad ? read_ : written_).push_back({b, b + a.nbytes, name, role});
}

void OverlapChecker::check() {
  auto clash = [](const Range& x, const Range& y) {
    throw py::value_error(x.name(x.role) + " and " + y.name(y.role) +
                          " share memory; every parameter, gradient and state must be its own buffer");
  };
  std::sort(written_.begin(), written_.end(), [](const Range& x, const Range& y) { return x.begin < y.begin; });
  for (std::size_t i = 1; i < written_.size(); ++i) {
    if (written_[i].begin < written_[i - 1].end) clash(written_[i - 1], written_[i]);
  }
  for (const Range& r : read_) {
    // The written range starting last before r.end is the only candidate that can overlap r
    // once written ranges are known to be disjoint and sorted.
    auto it = std::lower_bound(written_.begin(), written_.end(), r.end,
                               [](const Range& w, std::uintptr_t end) { return w.begin < end; });
    if (it != written_.begin() && std::prev(it)->end > r.begin) clash(*std::prev(it), r);
  }
}

}  // namespace adagrad::bindings
