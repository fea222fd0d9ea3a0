#include "array_checks.hpp"

#include "options.hpp"

#include <algorithm>
#include <iterator>

namespace adagrad::bindings {

namespace {

using npy = py::detail::npy_api;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
constexpr char kSwappedByteOrder = '<';
#else
constexpr char kSwappedByteOrder = '>';
#endif

std::string dtype_name(const py::detail::PyArray_Proxy* a) { return py::str(py::handle(a->descr)); }


const char* order_name(const FloatArray& a) { return a.c_order ? "C" : "Fortran"; }

}  // namespace

std::string shape_string(const FloatArray& a) {
  std::string out = "(";
  for (int i = 0; i < a.ndim; ++i) {
    out += std::to_string(a.shape[i]) + (a.ndim == 1 ? "," : (i + 1 < a.ndim ? ", " : ""));
  }
  return out + ")";
}

std::string TensorName::operator()(Role role, const StateSpec* state) const {
  static const char* const kPrefix[] = {"param ", "grad of ", "grad indices of "};
  static const char* const kDense[] = {"param", "grad", "indices"};
  static const char* const kSparse[] = {"table", "values", "indices"};
  if (role == Role::state) {
    if (label.is_none()) return sparse ? state->sparse_argument : state->dense_argument;
    return state->of + std::string(py::str(label));
  }
  const auto r = static_cast<int>(role);
  if (label.is_none()) return (sparse ? kSparse : kDense)[r];
  return kPrefix[r] + std::string(py::str(label));
}

namespace {

constexpr int kNpyHalf = 23;     // NPY_HALF
constexpr int kNpyUserDef = 256;  // NPY_USERDEF: the first type number of a dtype registered at run time

// ml_dtypes.bfloat16's scalar type, looked up once and only when an array of a registered dtype is
// seen (ml_dtypes stays an optional dependency); null when ml_dtypes is not installed.
PyObject* bfloat16_type() {
  static PyObject* const type = []() -> PyObject* {
    try {
      return py::object(py::module_::import("ml_dtypes").attr("bfloat16")).release().ptr();
    } catch (const py::error_already_set&) {
      return nullptr;
    }
  }();
  return type;
}

// The array's dtype as the kernels know it, or false.
bool known_dtype(const py::detail::PyArrayDescr_Proxy* descr, Dtype& out) {
  if (descr->byteorder == kSwappedByteOrder) return false;
  switch (descr->type_num) {
    case npy::NPY_FLOAT_:
      out = Dtype::f32;
      return true;
    case npy::NPY_DOUBLE_:
      out = Dtype::f64;
      return true;
    case kNpyHalf:
      out = Dtype::f16;
      return true;
    default:
      if (descr->type_num >= kNpyUserDef && descr->typeobj == bfloat16_type() && descr->typeobj != nullptr) {
        out = Dtype::bf16;
        return true;
      }
      return false;
  }
}

}  // namespace

FloatArray float_array(py::handle obj, const TensorName& name, Role role, const StateSpec* state) {
  if (!npy::get().PyArray_Check_(obj.ptr())) {
    throw py::type_error(name(role, state) + " must be a numpy.ndarray of float32, float64, float16 or bfloat16, got " +
                         type_name(obj));
  }
  const auto* a = py::detail::array_proxy(obj.ptr());
  const auto* descr = py::detail::array_descriptor_proxy(a->descr);
  Dtype dtype{};
  if (!known_dtype(descr, dtype)) {
    throw py::type_error(name(role, state) + " must have dtype float32, float64, float16 or bfloat16 (native byte order), got " +
                         dtype_name(a) + "; convert it yourself: a hidden copy would not be updated");
  }
  const int flags = a->flags;
  const bool c_order = (flags & npy::NPY_ARRAY_C_CONTIGUOUS_) != 0;
  if (!c_order && (flags & npy::NPY_ARRAY_F_CONTIGUOUS_) == 0) {
    throw py::value_error(name(role, state) + " must be contiguous (C or Fortran order), got strides of a view; "
                          "pass a contiguous array (a hidden copy would not be updated)");
  }
  if ((flags & npy::NPY_ARRAY_ALIGNED_) == 0) {
    throw py::value_error(name(role, state) + " is not aligned to its element size");
  }
  if (role != Role::grad && (flags & npy::NPY_ARRAY_WRITEABLE_) == 0) {
    throw py::value_error(name(role, state) + " is read-only; it is updated in place and must be writeable");
  }
  std::size_t size = 1;
  for (int i = 0; i < a->nd; ++i) size *= static_cast<std::size_t>(a->dimensions[i]);
  return {py::reinterpret_borrow<py::object>(obj), dtype, a->data, size, size * adagrad::dtype_size(dtype), a->nd,
          a->dimensions, c_order};
}

bool plain_dense_arrays(py::handle param, py::handle grad, const py::handle* states, std::size_t n_states,
                        DenseArrays& out) {
  static PyTypeObject* const array_type = npy::get().PyArray_Type_;
  if (Py_TYPE(param.ptr()) != array_type || Py_TYPE(grad.ptr()) != array_type) return false;
  for (std::size_t j = 0; j < n_states; ++j) {
    if (Py_TYPE(states[j].ptr()) != array_type) return false;
  }
  const auto* p = py::detail::array_proxy(param.ptr());
  const auto* g = py::detail::array_proxy(grad.ptr());
  if (g->descr != p->descr || g->nd != p->nd) return false;
  const auto* descr = py::detail::array_descriptor_proxy(p->descr);
  const bool f32 = descr->type_num == npy::NPY_FLOAT_;
  if ((!f32 && descr->type_num != npy::NPY_DOUBLE_) || descr->byteorder == kSwappedByteOrder) return false;
  const int read = npy::NPY_ARRAY_C_CONTIGUOUS_ | npy::NPY_ARRAY_ALIGNED_;
  const int written = read | npy::NPY_ARRAY_WRITEABLE_;
  if ((p->flags & written) != written || (g->flags & read) != read) return false;
  std::size_t size = 1;
  for (int i = 0; i < p->nd; ++i) {
    const py::ssize_t extent = p->dimensions[i];
    if (g->dimensions[i] != extent) return false;
    size *= static_cast<std::size_t>(extent);
  }
  for (std::size_t j = 0; j < n_states; ++j) {
    const auto* s = py::detail::array_proxy(states[j].ptr());
    if (s->descr != p->descr || s->nd != p->nd || (s->flags & written) != written) return false;
    for (int i = 0; i < p->nd; ++i) {
      if (s->dimensions[i] != p->dimensions[i]) return false;
    }
    out.states[j] = s->data;
  }
  const Dtype dtype = f32 ? Dtype::f32 : Dtype::f64;
  const std::size_t nbytes = size * (f32 ? sizeof(float) : sizeof(double));
  out.dtype = out.state_dtype = dtype;
  out.param = p->data;
  out.grad = g->data;
  out.size = size;
  out.nbytes = out.state_nbytes = nbytes;
  return true;
}

DenseArrays checked_dense_arrays(py::handle param, py::handle grad, const py::handle* states, const StateSpec* specs,
                                 std::size_t n_states, const TensorName& name) {
  const FloatArray p = float_array(param, name, Role::param);
  const FloatArray g = float_array(grad, name, Role::grad);
  require_same_layout(p, g, name, Role::grad);
  DenseArrays out{p.dtype, p.dtype, p.data, g.data, {}, p.size, p.nbytes, p.nbytes};
  for (std::size_t j = 0; j < n_states; ++j) {
    const FloatArray s = float_array(states[j], name, Role::state, &specs[j]);
    if (j == 0 && s.ndim == 1 && p.ndim == 2 && s.size == static_cast<std::size_t>(p.shape[0])) {
      throw py::value_error(name(Role::param) + " keeps row-wise state (one accumulator per row): "
                            "give its grad as (indices, values)");
    }
    require_same_layout(p, s, name, Role::state, &specs[j], true);
    if (j > 0 && s.dtype != out.state_dtype) {
      throw py::type_error(name(Role::state, &specs[j]) + " must have the dtype of " +
                           name(Role::state, &specs[0]));
    }
    out.state_dtype = s.dtype;
    out.states[j] = s.data;
    out.state_nbytes = s.nbytes;
  }
  return out;
}

void require_same_layout(const FloatArray& ref, const FloatArray& other, const TensorName& name, Role role,
                         const StateSpec* state, bool float32_state_allowed) {
  const bool master_state = float32_state_allowed && is_16bit(ref.dtype) && other.dtype == Dtype::f32;
  if (other.dtype != ref.dtype && !master_state) {
    throw py::type_error(name(role, state) + " has dtype " + dtype_name(py::detail::array_proxy(other.owner.ptr())) + " but " +
                         name(Role::param) + " has " + dtype_name(py::detail::array_proxy(ref.owner.ptr())) +
                         (float32_state_allowed && is_16bit(ref.dtype) ? "; it must be the param's or float32"
                                                                       : "; they must match"));
  }
  bool same_shape = other.ndim == ref.ndim;
  for (int i = 0; same_shape && i < ref.ndim; ++i) same_shape = other.shape[i] == ref.shape[i];  // no memcmp call
  if (!same_shape) {
    throw py::value_error(name(role, state) + " has shape " + shape_string(other) + " but " + name(Role::param) + " has " +
                          shape_string(ref) + "; they must match");
  }
  // Both contiguous; the element order differs only if one is C-only and the other Fortran-only
  // (an array that is both has at most one dimension longer than 1).
  if (other.c_order != ref.c_order && ref.size > 1) {
    const auto* o = py::detail::array_proxy(other.owner.ptr());
    const auto* r = py::detail::array_proxy(ref.owner.ptr());
    const int both = npy::NPY_ARRAY_C_CONTIGUOUS_ | npy::NPY_ARRAY_F_CONTIGUOUS_;
    if ((o->flags & both) != both && (r->flags & both) != both) {
      throw py::value_error(name(role, state) + " is in " + order_name(other) + " order but " + name(Role::param) +
                            " is in " + order_name(ref) + " order; they must match");
    }
  }
}

void OverlapChecker::add(const void* data, std::size_t nbytes, const TensorName& name, Role role,
                         const StateSpec* state) {
  if (nbytes == 0) return;
  const auto b = reinterpret_cast<std::uintptr_t>(data);
  (role == Role::grad || role == Role::indices ? read_ : written_).push_back({b, b + nbytes, name, role, state});
}

void OverlapChecker::add_read(const void* data, std::size_t nbytes, const TensorName& name, Role role) {
  if (nbytes == 0) return;
  const auto b = reinterpret_cast<std::uintptr_t>(data);
  read_.push_back({b, b + nbytes, name, role, nullptr});
}

std::string OverlapChecker::written_name(std::uintptr_t address) const {
  for (const Range& r : written_) {
    if (r.begin <= address && address < r.end) return r.name(r.role, r.state);
  }
  return "an array";
}

void OverlapChecker::check() {
  // The common case: the same params and sums as the previous check on this thread (an optimizer
  // stepping again), already verified disjoint and sorted. Only the grads need checking then.
  // (Function-local, so that the thread-local address is computed once per call, not per use.)
  thread_local std::vector<Span> last_written, last_sorted;
  sorted_ = &last_sorted;
  const auto same_as = [](const std::vector<Range>& ranges, const std::vector<Span>& spans) {
    return ranges.size() == spans.size() &&
           std::equal(ranges.begin(), ranges.end(), spans.begin(),
                      [](const Range& r, const Span& s) { return r.begin == s.begin && r.end == s.end; });
  };
  const bool same_as_last = same_as(written_, last_written);
  if (!same_as_last) {
    last_written.clear();
    last_sorted.clear();
    for (const Range& r : written_) last_sorted.push_back({r.begin, r.end});
    auto by_begin = [](const Span& x, const Span& y) { return x.begin < y.begin; };
    if (!std::is_sorted(last_sorted.begin(), last_sorted.end(), by_begin)) {
      std::sort(last_sorted.begin(), last_sorted.end(), by_begin);
    }
    for (std::size_t i = 1; i < last_sorted.size(); ++i) {
      if (last_sorted[i].begin < last_sorted[i - 1].end) {
        last_sorted.clear();
        report_clash();
      }
    }
    for (const Range& r : written_) last_written.push_back({r.begin, r.end});
  }
  // The grads of the last check on this thread, if they were found clear of these written spans:
  // an optimizer whose grads live on from step to step (torch's .grad) is checked in one compare.
  thread_local std::vector<Span> last_read;
  if (same_as_last && same_as(read_, last_read)) return;
  last_read.clear();
  // With the written spans disjoint and sorted, the last one starting before a read span's end is
  // the only one that can overlap it. The search is branch-free: with fresh grads at every step,
  // a branching binary search mispredicts about half its steps (~20 ns a grad here).
  const Span* const first = last_sorted.data();
  for (const Range& r : read_) {
    const Span* base = first;
    std::size_t n = last_sorted.size();
    while (n > 1) {
      const std::size_t half = n / 2;
      base = base[half].begin < r.end ? base + half : base;
      n -= half;
    }
    // base: the last span starting before r.end, if any starts before it.
    if (n == 1 && base->begin < r.end && base->end > r.begin) report_clash();
  }
  for (const Range& r : read_) last_read.push_back({r.begin, r.end});
}

void OverlapChecker::report_clash() {
  auto clash = [](const Range& x, const Range& y) {
    throw py::value_error(x.name(x.role, x.state) + " and " + y.name(y.role, y.state) +
                          " share memory; every parameter, gradient and state must be its own buffer");
  };
  auto by_begin = [](const Range& x, const Range& y) { return x.begin < y.begin; };
  std::sort(written_.begin(), written_.end(), by_begin);
  for (std::size_t i = 1; i < written_.size(); ++i) {
    if (written_[i].begin < written_[i - 1].end) clash(written_[i - 1], written_[i]);
  }
  for (const Range& r : read_) {
    for (const Range& w : written_) {
      if (w.begin < r.end && r.begin < w.end) clash(w, r);
    }
  }
  throw std::logic_error("overlap reported but not found");
}

}  // namespace adagrad::bindings
