#include "batch.hpp"

#include "adagrad/half.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <thread>

#include <pthread.h>

#include "adagrad/dispatch.hpp"
#include "adagrad/grad_norm.hpp"
#include "adagrad/thread_pool.hpp"

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
    static const int registered = pthread_atfork(nullptr, nullptr, &forget_in_child);
    (void)registered;
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
  // A forked child has only the forking thread: the steps other threads were running are not its.
  static void forget_in_child() {
    running().clear();
    Lock::flag().clear();
  }
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

StepBatch::StepBatch(NonFinite nonfinite, std::optional<double> grad_scale, ClipRequest clip, bool openmp_team)
    : nonfinite_(nonfinite),
      grad_scale_(grad_scale),
      clip_(clip),
      openmp_team_(openmp_team),
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
  lists_.counts.clear();
  lists_.in_use = false;
}

std::int64_t* StepBatch::checked_decay_counts(py::handle counts, std::size_t rows, const StepOptions& o,
                                              const TensorName& name, const FloatArray* dense_param,
                                              std::size_t* counted_rows) {
  const bool given = counts && !counts.is_none();
  const std::string what = name(Role::state, &kDecayCounts);
  if (o.rule_index() != rule_index<AdagradDecayRule>) {
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
  overlap_.add(a->data, rows * sizeof(std::int64_t), name, Role::state, &kDecayCounts);
  owners_.push_back(py::reinterpret_borrow<py::object>(counts));
  return reinterpret_cast<std::int64_t*>(a->data);
}

void StepBatch::add_dense(py::handle param, py::handle grad, const TensorStates& states, const TensorName& name,
                          const StepOptions& o, std::int64_t step) {
  DenseArrays a;
  // The one-read check first (~40% of the per-tensor cost of the step-by-step one).
  if (!plain_dense_arrays(param, grad, states.arrays, states.count, a)) {
    a = checked_dense_arrays(param, grad, states.arrays, states.specs, states.count, name);
  }
  overlap_.add(a.param, a.nbytes, name, Role::param);
  overlap_.add(a.grad, a.nbytes, name, Role::grad);
  for (std::size_t j = 0; j < states.count; ++j) {
    overlap_.add(a.states[j], a.state_nbytes, name, Role::state, &states.specs[j]);
  }
  std::int64_t* decay_count_data = nullptr;
  std::size_t decay_rows = 0;
  if (o.rule_index() == rule_index<AdagradDecayRule> || (states.decay_counts && !states.decay_counts.is_none())) {
    const FloatArray p = float_array(param, name, Role::param);
    decay_count_data = checked_decay_counts(states.decay_counts, 0, o, name, &p, &decay_rows);
  }
  if (clip_.measures_norm()) {
    dense_span_.push_back(checked_.size());
    dense_options_.emplace_back(with_batch_options(o), step);
  }
  if (nonfinite_ != NonFinite::propagate || clip_.measures_norm()) check_later(a.dtype, a.grad, a.size, grad, name);
  DenseTensor& t = dense_.emplace_back(coefficients(a.dtype, a.state_dtype, o, step));
  t.param = a.param;
  t.grad = a.grad;
  for (std::size_t j = 0; j < states.count; ++j) t.states[j] = a.states[j];
  t.decay_counts = decay_count_data;
  t.decay_rows = decay_rows;
  t.n = a.size;
  owners_.push_back(py::reinterpret_borrow<py::object>(param));
  owners_.push_back(py::reinterpret_borrow<py::object>(grad));
  for (std::size_t j = 0; j < states.count; ++j) owners_.push_back(py::reinterpret_borrow<py::object>(states.arrays[j]));
}

void StepBatch::add_sparse(py::handle table, py::handle indices, py::handle values, const TensorStates& states,
                           const TensorName& name, const StepOptions& o, Duplicates duplicates, std::int64_t step,
                           SparseProblem::Floor floor, const BagRows* bag) {
  FloatArray tab = float_array(table, name, Role::param);
  if (tab.ndim != 2 || !tab.c_order) {
    throw py::value_error(name(Role::param) + " must be a 2-D C-contiguous array (rows, dim) for sparse updates, got shape " +
                          shape_string(tab) + (tab.c_order ? "" : " in Fortran order"));
  }
  const auto rows = static_cast<std::size_t>(tab.shape[0]), dim = static_cast<std::size_t>(tab.shape[1]);
  Indices idx = index_array(indices, name);
  FloatArray val = float_array(values, name, Role::grad);
  if (val.dtype != tab.dtype) throw py::type_error(name(Role::grad) + " must have the dtype of " + name(Role::param));
  // The benchmark's floor with values reads a whole batch's values for its distinct rows.
  const bool any_value_rows = floor == SparseProblem::Floor::with_values || bag != nullptr;
  if (val.ndim != 2 || (!any_value_rows && static_cast<std::size_t>(val.shape[0]) != idx.size) ||
      static_cast<std::size_t>(val.shape[1]) != dim || !val.c_order) {
    throw py::value_error(name(Role::grad) + " must be C-contiguous of shape (len(indices), dim) = (" +
                          std::to_string(idx.size) + ", " + std::to_string(dim) + "), got " + shape_string(val));
  }
  // The first state picks element-wise (rows, dim) or row-wise (rows,) state; the others (Adagrad-DA's
  // grad sum) are laid out like the table, in the first one's dtype.
  std::vector<FloatArray> st;
  bool rowwise = false;
  for (std::size_t j = 0; j < states.count; ++j) {
    const StateSpec* spec = &states.specs[j];
    FloatArray s = float_array(states.arrays[j], name, Role::state, spec);
    if (j > 0) {
      require_same_layout(tab, s, name, Role::state, spec, true);
      if (s.dtype != st[0].dtype) {
        throw py::type_error(name(Role::state, spec) + " must have the dtype of " + name(Role::state, &states.specs[0]));
      }
      st.push_back(std::move(s));
      continue;
    }
    if (s.dtype != tab.dtype && !(is_16bit(tab.dtype) && s.dtype == Dtype::f32)) {
      throw py::type_error(name(Role::state, spec) + " must have the dtype of " + name(Role::param) +
                           (is_16bit(tab.dtype) ? " or float32" : ""));
    }
    const bool elementwise = s.ndim == 2 && static_cast<std::size_t>(s.shape[0]) == rows &&
                             static_cast<std::size_t>(s.shape[1]) == dim && s.c_order;
    rowwise = s.ndim == 1 && static_cast<std::size_t>(s.shape[0]) == rows;
    if (!elementwise && !rowwise) {
      throw py::value_error(name(Role::state, spec) + " must have shape (rows, dim) = (" + std::to_string(rows) + ", " +
                            std::to_string(dim) + ") for element-wise Adagrad or (rows,) = (" + std::to_string(rows) +
                            ",) for row-wise Adagrad, got " + shape_string(s));
    }
    if (rowwise && floor == SparseProblem::Floor::none && o.rule_index() == rule_index<StreamRule>) {
      throw py::value_error("the sparse ceiling and floors take element-wise state only");
    }
    if (rowwise && o.rule_index() != rule_index<AdagradRule>) {
      throw py::value_error(name(Role::state, spec) + " must have shape (rows, dim) = (" + std::to_string(rows) + ", " +
                            std::to_string(dim) + "): row-wise state is Adagrad's alone, got " + shape_string(s));
    }
    st.push_back(std::move(s));
  }
  if (rowwise && dim == 0) throw py::value_error("row-wise Adagrad needs dim >= 1");
  std::int64_t* const decay_count_data = checked_decay_counts(states.decay_counts, rows, o, name);
  if (idx.size >= (std::size_t{1} << 32)) throw py::value_error(name(Role::indices) + " has 2**32 or more entries");
  overlap_.add(tab, name, Role::param);
  for (std::size_t j = 0; j < st.size(); ++j) overlap_.add(st[j], name, Role::state, &states.specs[j]);
  overlap_.add(val, name, Role::grad);
  overlap_.add_read(idx.data, idx.size * (idx.int64 ? 8 : 4), name, Role::indices);
  if (floor != SparseProblem::Floor::none && rowwise) {
    throw py::value_error("the sparse ceiling and floors take element-wise state only");
  }
  SparseProblem problem{tab.dtype, st.empty() ? tab.dtype : st[0].dtype, tab.data, rows, dim, idx.data, idx.int64,
                        idx.size, val.data, {}, decay_count_data, rowwise, duplicates, with_batch_options(o), step,
                        floor, val.ndim == 2 ? static_cast<std::size_t>(val.shape[0]) : 0};
  for (std::size_t j = 0; j < st.size(); ++j) problem.states[j] = st[j].data;
  if (!sparse_kernel_exists(kBaselineKernels, problem)) {  // every ISA's table has the same entries
    throw py::type_error(name(Role::param) + " is a " + std::string(adagrad::dtype_name(tab.dtype)) +
                         " table: the benchmark floors take float32 and float64 tables");
  }
  if (const std::size_t bad = first_bad_index(problem); bad != idx.size) {
    throw py::value_error(name(Role::indices) + "[" + std::to_string(bad) + "] = " +
                          std::to_string(index_at(problem, bad)) +
                          " is out of range for a table of " + std::to_string(rows) + " rows");
  }
  if (bag != nullptr) add_bag_rows(problem, *bag, val, name);
  if (clip_.measures_norm()) sparse_span_.push_back(checked_.size());
  if (nonfinite_ != NonFinite::propagate || clip_.measures_norm()) {
    check_later(val.dtype, val.data, val.size, val.owner, name);
  }
  sparse_.push_back(problem);
  for (py::object* owner : {&tab.owner, &idx.owner, &val.owner}) owners_.push_back(std::move(*owner));
  for (FloatArray& s : st) owners_.push_back(std::move(s.owner));
}

void StepBatch::add_bag_rows(SparseProblem& problem, const BagRows& bag, const FloatArray& pooled,
                             const TensorName& name) {
  if (problem.floor != SparseProblem::Floor::none) throw py::value_error("the benchmark floors take no bags");
  if (clip_.measures_norm() || nonfinite_ != NonFinite::propagate) {
    throw py::value_error(name(Role::grad) + ": a bag's pooled gradient takes no clip and no nonfinite check");
  }
  const Indices bags = index_array(bag.bags, name);
  if (!bags.int64 || bags.size != problem.k) {
    throw py::value_error(name(Role::indices) + ": the bags must be int64 of len(indices) = " +
                          std::to_string(problem.k));
  }
  const auto* b = static_cast<const std::int64_t*>(bags.data);
  for (std::size_t i = 0; i < bags.size; ++i) {
    if (b[i] < 0 || static_cast<std::size_t>(b[i]) >= problem.value_rows) {
      throw py::value_error(name(Role::indices) + ": bag " + std::to_string(b[i]) + " of occurrence " +
                            std::to_string(i) + " is out of range for " + std::to_string(problem.value_rows) +
                            " bags");
    }
  }
  problem.bags = b;
  owners_.push_back(bags.owner);
  if (bag.scales.is_none()) return;
  const FloatArray scales = float_array(bag.scales, name, Role::grad);
  if (scales.dtype != pooled.dtype || scales.ndim != 1 || scales.size != problem.k) {
    throw py::value_error(name(Role::grad) + ": the scales must be 1-D of len(indices) = " +
                          std::to_string(problem.k) + " with the pooled gradient's dtype");
  }
  problem.scales = scales.data;
  owners_.push_back(scales.owner);
}

void StepBatch::reserve(std::size_t tensors) {
  dense_.reserve(tensors);
  lists_.counts.reserve(tensors);
  owners_.reserve((2 + kMaxStates) * tensors);
  overlap_.reserve(tensors);
}

StepOptions StepBatch::with_batch_options(const StepOptions& o) const {
  if (!grad_scale_ && clip_.rule == ClipRule::none) return o;
  StepOptions with = o;
  if (grad_scale_) {
    with.transform.scale_grads = true;
    with.transform.grad_scale = *grad_scale_;
  }
  with.transform.clip = clip_.rule;
  with.transform.clip_threshold = clip_.threshold;
  return with;
}

void StepBatch::apply_norms(const std::vector<double>& norms) {
  const auto norm_of = [&](std::size_t span) { return clip_.rule == ClipRule::global_norm ? grad_norm_ : norms[span]; };
  for (std::size_t i = 0; i < dense_.size(); ++i) {
    DenseTensor& t = dense_[i];
    StepOptions& o = dense_options_[i].first;
    o.transform.clip_norm = norm_of(dense_span_[i]);
    const DenseTensor fresh = make_dense_tensor(t.dtype, t.state_dtype, o, dense_options_[i].second);
    t.plain = fresh.plain;  // a clip that now applies is not the plain case
    t.c32 = fresh.c32;
    t.c64 = fresh.c64;
    t.c32_narrowed = fresh.c32_narrowed;
  }
  for (std::size_t i = 0; i < sparse_.size(); ++i) sparse_[i].options.transform.clip_norm = norm_of(sparse_span_[i]);
}

const DenseTensor& StepBatch::coefficients(Dtype dtype, Dtype state_dtype, const StepOptions& o, std::int64_t step) {
  // A tensor's stochastic-rounding stream is its own: the rest is the group's.
  const auto same = [](const StepOptions& a, const StepOptions& b) {
    TransformOptions at = a.transform;
    at.sr_stream = b.transform.sr_stream;
    return a.rule == b.rule && at == b.transform && a.narrowed_constants_width == b.narrowed_constants_width;
  };
  // grad_scale and clip are the batch's, the same for every tensor: the options compared are the caller's.
  if (!last_.valid || last_.dtype != dtype || last_.state_dtype != state_dtype || last_.step != step ||
      !same(last_.options, o)) {
    last_ = {true, dtype, state_dtype, step, o, make_dense_tensor(dtype, state_dtype, with_batch_options(o), step)};
  }
  if (o.transform.stochastic_rounding) {  // each tensor's own stream (its key; the rest is the group's)
    const SrKey key = sr_key(o.transform.sr_seed, o.transform.sr_stream, step);
    last_.tensor.c32.transform.sr_key = last_.tensor.c32_narrowed.transform.sr_key = key;
  }
  return last_.tensor;
}

void StepBatch::check_later(Dtype dtype, const void* data, std::size_t size, py::handle grad, const TensorName& name) {
  checked_.push_back({dtype, data, size});
  if (nonfinite_ == NonFinite::raise) checked_names_.push_back({grad, name});
}

void StepBatch::count_on_success(std::int64_t* count, std::int64_t value) { lists_.counts.push_back({count, value}); }

bool StepBatch::run() {
  overlap_.check();
  const KernelTable& kernels = active_kernels();  // may raise for a bad ADAGRAD_ISA: before any write
  const InFlight in_flight(overlap_.written_sorted(), overlap_);
  std::size_t bad = checked_.size();
  {
    py::gil_scoped_release release;
    // Everything that can fail comes first: the thread count (a bad ADAGRAD_NUM_THREADS), the pool's
    // start, the sparse workspace. The section also holds the kernels' floating-point environment
    // and keeps fork() out until the counts below are written.
    const ParallelSection section(openmp_team_);
    struct Release {
      ~Release() { release_sparse(); }
    } const release_workspace;
    reserve_sparse(sparse_);
    if (clip_.measures_norm()) {
      std::vector<double>& norms = lists_.norms;
      grad_norm_ = grad_norms(kernels, checked_, clip_.norm, with_batch_options(StepOptions{}).transform, norms);
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
      for (const auto& [count, value] : lists_.counts) *count = value;
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
