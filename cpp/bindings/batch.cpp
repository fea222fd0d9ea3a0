#include "batch.hpp"

#include "adagrad/half.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <thread>

#include "adagrad/dispatch.hpp"
#include "adagrad/grad_norm.hpp"

namespace adagrad::bindings {

namespace {

using npy = py::detail::npy_api;


struct Indices {
  py::object owner;
  const void* data;
  std::size_t size;
  bool int64;
};

Indices index_array(py::handle obj, const TensorName& name) {
  if (!npy::get().PyArray_Check_(obj.ptr())) {
    throw py::type_error(name(Role::indices) + " must be a 1-D numpy.ndarray of int32 or int64, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  const auto* a = py::detail::array_proxy(obj.ptr());
  const auto* descr = py::detail::array_descriptor_proxy(a->descr);
  const int type = descr->type_num;
  const bool i32 = type == npy::NPY_INT_;
  const bool i64 = type == npy::NPY_LONGLONG_ || (sizeof(long) == 8 && type == npy::NPY_LONG_);
  if (!i32 && !i64) {
    throw py::type_error(name(Role::indices) + " must have dtype int32 or int64, got " +
                         std::string(py::str(py::handle(a->descr))));
  }
  if (descr->byteorder == '>') throw py::type_error(name(Role::indices) + " must be in native byte order");
  if (a->nd != 1) {
    throw py::value_error(name(Role::indices) + " must be 1-D, got " + std::to_string(a->nd) + " dimensions");
  }
  const int need = npy::NPY_ARRAY_C_CONTIGUOUS_ | npy::NPY_ARRAY_ALIGNED_;
  if ((a->flags & need) != need) throw py::value_error(name(Role::indices) + " must be contiguous and aligned");
  return {py::reinterpret_borrow<py::object>(obj), a->data, static_cast<std::size_t>(a->dimensions[0]), i64};
}

// The arrays that steps running right now (in any thread) write: a second step writing any of them
// at the same time is refused, before it writes anything. Two threads stepping the same arrays
// would race (and results would depend on the timing); this turns that into a clear error.
class InFlight {
 public:
  InFlight(const std::vector<Span>& mine, const OverlapChecker& names) : mine_(mine) {
    if (mine_.empty()) return;
    const Lock lock;
    for (const std::vector<Span>* other : running()) {
      if (const std::uintptr_t at = first_shared(mine_, *other); at != 0) {
        throw py::value_error(names.written_name(at) +
                              " is being updated by another thread right now; two threads must not step the same "
                              "arrays at the same time");
      }
    }
    running().push_back(&mine_);
  }
  ~InFlight() {
    if (mine_.empty()) return;
    const Lock lock;
    auto& all = running();
    all.erase(std::find(all.begin(), all.end(), &mine_));
  }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  // A spin lock: held for a few compares at most, and taken twice per step, where a mutex's two
  // library calls would be a measurable part of a 2 us step.
  struct Lock {
    Lock() {
      while (flag().test_and_set(std::memory_order_acquire)) std::this_thread::yield();
    }
    ~Lock() { flag().clear(std::memory_order_release); }
    static std::atomic_flag& flag() {
      static std::atomic_flag f = ATOMIC_FLAG_INIT;
      return f;
    }
  };
  static std::vector<const std::vector<Span>*>& running() {
    static std::vector<const std::vector<Span>*> all;
    return all;
  }
  // The first byte two sorted, disjoint lists of ranges share, or 0 if none.
  static std::uintptr_t first_shared(const std::vector<Span>& a, const std::vector<Span>& b) {
    std::size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
      if (a[i].end <= b[j].begin) {
        ++i;
      } else if (b[j].end <= a[i].begin) {
        ++j;
      } else {
        return std::max(a[i].begin, b[j].begin);
      }
    }
    return 0;
  }

  const std::vector<Span>& mine_;
};

}  // namespace

StepBatch::Lists& StepBatch::free_lists() {
  thread_local Lists reused;
  if (reused.in_use) return *(own_lists_ = std::make_unique<Lists>());
  return reused;
}

StepBatch::StepBatch(NonFinite nonfinite, std::optional<double> grad_scale, ClipRequest clip)
    : nonfinite_(nonfinite),
      grad_scale_(grad_scale),
      clip_(clip),
      grad_norm_(std::numeric_limits<double>::quiet_NaN()),
      lists_(free_lists()) {
  lists_.in_use = true;
}

StepBatch::~StepBatch() {
  checked_names_.clear();
  owners_.clear();  // the references go back with the GIL held, as the caller holds it
  dense_.clear();
  sparse_.clear();
  overlap_.clear();
  checked_.clear();
  dense_options_.clear();
  dense_span_.clear();
  sparse_span_.clear();
  lists_.in_use = false;
}

void StepBatch::check_rule_takes_batch_options(const DenseOptions& o, const TensorName& name) const {
  if (o.rule != Rule::adagrad && (grad_scale_ || clip_.rule != ClipRule::none)) {
    throw py::value_error(name(Role::param) +
                          ": grad_scale and the clip options are Adagrad's; the composite rules take neither");
  }
}

void StepBatch::check_16bit_takes(const DenseOptions& o, const TensorName& name) const {
  if (o.rule != Rule::adagrad) {
    throw py::type_error(name(Role::param) + ": float16 and bfloat16 params take Adagrad's rule alone (the composite "
                         "rules and AdagradDecay take float32 and float64)");
  }
  if (clip_.rule != ClipRule::none) {  // the 16-bit kernels have no clip variants (half_dense_variant)
    throw py::type_error(name(Role::param) + ": float16 and bfloat16 params take no clip yet (clip_value, "
                         "max_grad_norm, clip_norm_per_tensor take float32 and float64 params)");
  }
}

void* StepBatch::checked_grad_sum(py::handle grad_sum, const FloatArray& param, const DenseOptions& o,
                                  const TensorName& name) {
  const bool needed = o.rule == Rule::dual_averaging;
  if (!needed) {
    if (grad_sum && !grad_sum.is_none()) throw py::value_error(name(Role::grad_sum) + " is Adagrad-DA's alone");
    return nullptr;
  }
  if (!grad_sum || grad_sum.is_none()) throw py::value_error(name(Role::grad_sum) + " is required by Adagrad-DA");
  const FloatArray a = float_array(grad_sum, name, Role::grad_sum);
  require_same_layout(param, a, name, Role::grad_sum);
  overlap_.add(a, name, Role::grad_sum);
  owners_.push_back(py::reinterpret_borrow<py::object>(grad_sum));
  return a.data;
}

std::int64_t* StepBatch::checked_decay_counts(py::handle counts, std::size_t rows, const DenseOptions& o,
                                              const TensorName& name, const FloatArray* dense_param,
                                              std::size_t* counted_rows) {
  const bool given = counts && !counts.is_none();
  const std::string what = (name.label.is_none() ? std::string("decay_counts") : "decay counts of " + name(Role::param));
  if (o.rule != Rule::adagrad_decay) {
    if (given) throw py::value_error(what + " are AdagradDecay's alone");
    return nullptr;
  }
  if (!given) throw py::value_error(what + " are required by AdagradDecay");
  if (!npy::get().PyArray_Check_(counts.ptr())) {
    throw py::type_error(what + " must be a numpy.ndarray of int64, got " + type_name(counts));
  }
  const auto* a = py::detail::array_proxy(counts.ptr());
  const auto* d = py::detail::array_descriptor_proxy(a->descr);
  const bool int64 = d->type_num == npy::NPY_LONGLONG_ || (sizeof(long) == 8 && d->type_num == npy::NPY_LONG_);
  if (!int64 || d->byteorder == '>') throw py::type_error(what + " must have dtype int64 (native byte order)");
  const int need = npy::NPY_ARRAY_C_CONTIGUOUS_ | npy::NPY_ARRAY_ALIGNED_ | npy::NPY_ARRAY_WRITEABLE_;
  const auto length = a->nd == 1 ? static_cast<std::size_t>(a->dimensions[0]) : std::size_t{0};
  if (dense_param != nullptr) {  // one count, or one per row of a 2-D C-order param
    const bool per_row = dense_param->ndim == 2 && dense_param->c_order &&
                         length == static_cast<std::size_t>(dense_param->shape[0]) && length > 0;
    rows = per_row ? length : 1;
  }
  if (a->nd != 1 || length != rows || (a->flags & need) != need) {
    throw py::value_error(what + " must be a writeable, contiguous int64 array of shape (" + std::to_string(rows) +
                          ",)" + (dense_param != nullptr ? " (one count, or one per row of a 2-D table)" : ""));
  }
  if (counted_rows != nullptr) *counted_rows = rows;
  overlap_.add(a->data, rows * sizeof(std::int64_t), name, Role::sum);
  owners_.push_back(py::reinterpret_borrow<py::object>(counts));
  return reinterpret_cast<std::int64_t*>(a->data);
}

void StepBatch::add_dense(py::handle param, py::handle grad, py::handle sum, const TensorName& name,
                          const DenseOptions& o, std::int64_t step, int variant_override, py::handle grad_sum,
                          py::handle decay_counts) {
  check_rule_takes_batch_options(o, name);
  DenseArrays a;
  // The one-read check first (~40% of the per-tensor cost of the step-by-step one).
  if (!plain_dense_arrays(param, grad, sum, a)) a = checked_dense_arrays(param, grad, sum, name);
  if (is_16bit(a.dtype)) check_16bit_takes(o, name);
  overlap_.add(a.param, a.nbytes, name, Role::param);
  overlap_.add(a.grad, a.nbytes, name, Role::grad);
  overlap_.add(a.sum, a.nbytes, name, Role::sum);
  void* grad_sum_data = nullptr;
  if (o.rule == Rule::dual_averaging || (grad_sum && !grad_sum.is_none())) {
    grad_sum_data = checked_grad_sum(grad_sum, float_array(param, name, Role::param), o, name);
  }
  std::int64_t* decay_count_data = nullptr;
  std::size_t decay_rows = 0;
  if (o.rule == Rule::adagrad_decay || (decay_counts && !decay_counts.is_none())) {
    const FloatArray p = float_array(param, name, Role::param);
    decay_count_data = checked_decay_counts(decay_counts, 0, o, name, &p, &decay_rows);
  }
  if (clip_.measures_norm()) {
    dense_span_.push_back(checked_.size());
    dense_options_.emplace_back(with_batch_options(o), step);
  }
  if (nonfinite_ != NonFinite::propagate || clip_.measures_norm()) check_later(a.dtype, a.grad, a.size, grad, name);
  DenseTensor& t = dense_.emplace_back(coefficients(a.dtype, o, step));
  t.state_dtype = a.state_dtype;
  t.param = a.param;
  t.grad = a.grad;
  t.sum = a.sum;
  t.grad_sum = grad_sum_data;
  t.decay_counts = decay_count_data;
  t.decay_rows = decay_rows;
  t.n = a.size;
  if (variant_override >= 0) t.variant = variant_override;
  for (const py::handle h : {param, grad, sum}) owners_.push_back(py::reinterpret_borrow<py::object>(h));
}

void StepBatch::add_sparse(py::handle table, py::handle indices, py::handle values, py::handle state,
                           const TensorName& name, const DenseOptions& o, Duplicates duplicates, std::int64_t step,
                           int variant_override, py::handle grad_sum, py::handle decay_counts) {
  check_rule_takes_batch_options(o, name);
  FloatArray tab = float_array(table, name, Role::param);
  if (is_16bit(tab.dtype)) check_16bit_takes(o, name);
  if (tab.ndim != 2 || !tab.c_order) {
    throw py::value_error(name(Role::param) + " must be a 2-D C-contiguous array (rows, dim) for sparse updates, got shape " +
                          shape_string(tab) + (tab.c_order ? "" : " in Fortran order"));
  }
  const auto rows = static_cast<std::size_t>(tab.shape[0]), dim = static_cast<std::size_t>(tab.shape[1]);
  Indices idx = index_array(indices, name);
  FloatArray val = float_array(values, name, Role::grad);
  FloatArray st = float_array(state, name, Role::sum);
  if (val.dtype != tab.dtype) throw py::type_error(name(Role::grad) + " must have the dtype of " + name(Role::param));
  if (st.dtype != tab.dtype && !(is_16bit(tab.dtype) && st.dtype == Dtype::f32)) {
    throw py::type_error(name(Role::sum) + " must have the dtype of " + name(Role::param) +
                         (is_16bit(tab.dtype) ? " or float32" : ""));
  }
  // The benchmark's floor with values reads a whole batch's values for its distinct rows.
  const bool any_value_rows = variant_override == kFloorWithValuesVariant;
  if (val.ndim != 2 || (!any_value_rows && static_cast<std::size_t>(val.shape[0]) != idx.size) ||
      static_cast<std::size_t>(val.shape[1]) != dim || !val.c_order) {
    throw py::value_error(name(Role::grad) + " must be C-contiguous of shape (len(indices), dim) = (" +
                          std::to_string(idx.size) + ", " + std::to_string(dim) + "), got " + shape_string(val));
  }
  const bool elementwise = st.ndim == 2 && static_cast<std::size_t>(st.shape[0]) == rows &&
                           static_cast<std::size_t>(st.shape[1]) == dim && st.c_order;
  const bool rowwise = st.ndim == 1 && static_cast<std::size_t>(st.shape[0]) == rows;
  if (!elementwise && !rowwise) {
    throw py::value_error(name(Role::sum) + " must have shape (rows, dim) = (" + std::to_string(rows) + ", " +
                          std::to_string(dim) + ") for element-wise Adagrad or (rows,) = (" + std::to_string(rows) +
                          ",) for row-wise Adagrad, got " + shape_string(st));
  }
  if (rowwise && dim == 0) throw py::value_error("row-wise Adagrad needs dim >= 1");
  if (rowwise && o.rule != Rule::adagrad) {
    throw py::value_error(name(Role::sum) + " must have shape (rows, dim) = (" + std::to_string(rows) + ", " +
                          std::to_string(dim) + "): row-wise state is Adagrad's alone, got " + shape_string(st));
  }
  void* const grad_sum_data = checked_grad_sum(grad_sum, tab, o, name);
  std::int64_t* const decay_count_data = checked_decay_counts(decay_counts, rows, o, name);
  if (idx.size >= (std::size_t{1} << 32)) throw py::value_error(name(Role::indices) + " has 2**32 or more entries");
  overlap_.add(tab, name, Role::param);
  overlap_.add(st, name, Role::sum);
  overlap_.add(val, name, Role::grad);
  overlap_.add_read(idx.data, idx.size * (idx.int64 ? 8 : 4), name, Role::indices);
  if (variant_override >= 0 && rowwise) throw py::value_error("the sparse ceiling and floors take element-wise state only");
  const SparseProblem problem{tab.dtype,     st.dtype,   tab.data,   rows,
                              dim,           idx.data,   idx.int64,
                              idx.size,      val.data,   st.data,
                              grad_sum_data, decay_count_data, rowwise,    duplicates,
                              with_batch_options(o), step, variant_override,
                              val.ndim == 2 ? static_cast<std::size_t>(val.shape[0]) : 0};
  if (!sparse_kernel_exists(kBaselineKernels, problem)) {  // every ISA's table has the same entries
    throw py::type_error(name(Role::param) + " is a " + std::string(adagrad::dtype_name(tab.dtype)) +
                         " table: its sparse updates take Adagrad without maximize, decoupled_weight_decay, "
                         "eps_inside_sqrt or a clip, and no benchmark floor (float32 and float64 tables take them all)");
  }
  if (const std::size_t bad = first_bad_index(problem); bad != idx.size) {
    throw py::value_error(name(Role::indices) + "[" + std::to_string(bad) + "] = " +
                          std::to_string(index_at(problem, bad)) +
                          " is out of range for a table of " + std::to_string(rows) + " rows");
  }
  if (clip_.measures_norm()) sparse_span_.push_back(checked_.size());
  if (nonfinite_ != NonFinite::propagate || clip_.measures_norm()) {
    check_later(val.dtype, val.data, val.size, val.owner, name);
  }
  sparse_.push_back(problem);
  for (py::object* owner : {&tab.owner, &idx.owner, &val.owner, &st.owner}) owners_.push_back(std::move(*owner));
}

void StepBatch::reserve(std::size_t tensors) {
  dense_.reserve(tensors);
  owners_.reserve(3 * tensors);
  overlap_.reserve(tensors);
}

DenseOptions StepBatch::with_batch_options(const DenseOptions& o) const {
  if (!grad_scale_ && clip_.rule == ClipRule::none) return o;
  DenseOptions with = o;
  if (grad_scale_) {
    with.scale_grads = true;
    with.grad_scale = *grad_scale_;
  }
  with.clip = clip_.rule;
  with.clip_threshold = clip_.threshold;
  return with;
}

void StepBatch::apply_norms(const std::vector<double>& norms) {
  const auto norm_of = [&](std::size_t span) { return clip_.rule == ClipRule::global_norm ? grad_norm_ : norms[span]; };
  for (std::size_t i = 0; i < dense_.size(); ++i) {
    DenseTensor& t = dense_[i];
    DenseOptions& o = dense_options_[i].first;
    o.clip_norm = norm_of(dense_span_[i]);
    t = make_dense_tensor(t.dtype, t.state_dtype, t.param, t.grad, t.sum, t.grad_sum, t.n, o, dense_options_[i].second);
  }
  for (std::size_t i = 0; i < sparse_.size(); ++i) sparse_[i].options.clip_norm = norm_of(sparse_span_[i]);
}

const DenseTensor& StepBatch::coefficients(Dtype dtype, const DenseOptions& o, std::int64_t step) {
  const auto same = [](const DenseOptions& a, const DenseOptions& b) {
    return a.rule == b.rule && a.lr == b.lr && a.lr_decay == b.lr_decay && a.weight_decay == b.weight_decay &&
           a.eps == b.eps && a.maximize == b.maximize && a.decoupled_weight_decay == b.decoupled_weight_decay &&
           a.eps_inside_sqrt == b.eps_inside_sqrt && a.l1 == b.l1 && a.l2 == b.l2 && a.decay_step == b.decay_step &&
           a.decay_rate == b.decay_rate && a.decay_floor == b.decay_floor &&
           a.narrowed_constants_width == b.narrowed_constants_width &&
           a.stochastic_rounding == b.stochastic_rounding && a.sr_seed == b.sr_seed;
  };
  // grad_scale and clip are the batch's, the same for every tensor: the options compared are the caller's.
  if (!last_.valid || last_.dtype != dtype || last_.step != step || !same(last_.options, o)) {
    last_ = {true, dtype, step, o, make_dense_tensor(dtype, dtype, nullptr, nullptr, nullptr, nullptr, 0, with_batch_options(o), step)};
  }
  if (o.stochastic_rounding) {  // each tensor's own stream (its key; the rest is the group's)
    const SrKey key = sr_key(o.sr_seed, o.sr_stream, step);
    last_.tensor.c32.sr_key = last_.tensor.c32_narrowed.sr_key = key;
  }
  return last_.tensor;
}

void StepBatch::check_later(Dtype dtype, const void* data, std::size_t size, py::handle grad, const TensorName& name) {
  checked_.push_back({dtype, data, size});
  if (nonfinite_ == NonFinite::raise) checked_names_.push_back({grad, name});
}

bool StepBatch::run() {
  overlap_.check();
  const KernelTable& kernels = active_kernels();  // may raise for a bad ADAGRAD_ISA: before any write
  const InFlight in_flight(overlap_.written_sorted(), overlap_);
  std::size_t bad = checked_.size();
  {
    py::gil_scoped_release release;
    if (clip_.measures_norm()) {
      std::vector<double>& norms = lists_.norms;
      grad_norm_ = grad_norms(kernels, checked_, clip_.norm, with_batch_options(DenseOptions{}), norms);
      // A finite norm means finite grads; otherwise (or a float64 sum of squares beyond the range)
      // the check says which grad, if any, is not finite.
      if (nonfinite_ != NonFinite::propagate && !std::isfinite(grad_norm_)) bad = first_nonfinite(kernels, checked_);
      apply_norms(norms);
    } else if (nonfinite_ != NonFinite::propagate && !checked_.empty()) {
      bad = first_nonfinite(kernels, checked_);
    }
    if (bad == checked_.size()) {
      run_dense(kernels, dense_);
      for (const SparseProblem& p : sparse_) run_sparse(kernels, p);
    }
  }
  if (bad == checked_.size()) return true;
  if (nonfinite_ == NonFinite::skip) return false;
  report_nonfinite(bad);
}

void StepBatch::report_nonfinite(std::size_t index) const {
  // The slow path, with the GIL held: find the first bad element again and say where it is.
  const GradSpan& span = checked_[index];
  std::size_t at = 0;
  double value = 0.0;
  for (; at < span.n; ++at) {
    switch (span.dtype) {
      case Dtype::f32:
        value = static_cast<const float*>(span.data)[at];
        break;
      case Dtype::f64:
        value = static_cast<const double*>(span.data)[at];
        break;
      case Dtype::f16:
        value = widen(static_cast<const float16*>(span.data)[at]);
        break;
      case Dtype::bf16:
        value = widen(static_cast<const bfloat16*>(span.data)[at]);
        break;
    }
    if (!std::isfinite(value)) break;
  }
  if (at == span.n) {  // only if another thread wrote to the grad meanwhile
    throw NonFiniteGrad(checked_names_[index].name(Role::grad) +
                        " held a non-finite value that changed while it was read; nothing was updated");
  }
  // The element's index from its offset in memory, in the array's own order (C or Fortran).
  const auto* a = py::detail::array_proxy(checked_names_[index].array.ptr());
  const bool c_order = (a->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_) != 0;
  std::vector<std::size_t> position(static_cast<std::size_t>(a->nd));
  std::size_t rest = at;
  for (int k = 0; k < a->nd; ++k) {
    const int axis = c_order ? a->nd - 1 - k : k;
    const auto extent = static_cast<std::size_t>(a->dimensions[axis]);
    position[static_cast<std::size_t>(axis)] = rest % extent;
    rest /= extent;
  }
  std::string shown = "(";
  for (std::size_t k = 0; k < position.size(); ++k) {
    shown += std::to_string(position[k]) + (position.size() == 1 ? "," : (k + 1 < position.size() ? ", " : ""));
  }
  shown += ")";
  const char* what = std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf");
  throw NonFiniteGrad(checked_names_[index].name(Role::grad) + " holds a non-finite value (" + what + " at index " +
                      shown + "); nonfinite='raise': nothing was updated");
}

}  // namespace adagrad::bindings
