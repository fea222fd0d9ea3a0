// The arrays of one call, dense and sparse: each validated as it is added (raising a clear
// TypeError / ValueError), nothing written before run(), which then releases the GIL.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "adagrad/dense.hpp"
#include "adagrad/sparse.hpp"
#include "array_checks.hpp"
#include "options.hpp"

namespace adagrad::bindings {

// A gradient held a NaN or an infinity under nonfinite="raise": adagrad.NonFiniteGradError,
// a subclass of ValueError (module.cpp).
class NonFiniteGrad : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The rule's state arrays of one tensor, as the caller handed them: its float states in its kStates
// order (specs), and AdagradDecay's decay counts (null handle for the other rules).
struct TensorStates {
  const py::handle* arrays;
  const StateSpec* specs;
  std::size_t count;
  py::handle decay_counts;
};

class StepBatch {
 public:
  // nonfinite: what run() does if a grad holds a NaN or an infinity. grad_scale: every grad of
  // the batch is divided by it first (loss scaling), or not at all when empty. clip: then every
  // grad is clipped (ClipRule); the norm rules measure the norms first, in run(). Both apply to
  // every rule.
  // openmp_team: run on torch's OpenMP team where it is shared (adagrad.torch's steps).
  explicit StepBatch(NonFinite nonfinite = NonFinite::propagate, std::optional<double> grad_scale = std::nullopt,
                     ClipRequest clip = {}, bool openmp_team = false);
  ~StepBatch();
  StepBatch(const StepBatch&) = delete;
  StepBatch& operator=(const StepBatch&) = delete;

  // Room for this many tensors: no reallocation while they are added.
  void reserve(std::size_t tensors);

  // One dense update of param with grad and its states (each of the param's dtype, shape and order;
  // a 16-bit param's float states may be float32), by the options' rule. AdagradDecay's decay
  // counts: int64, one count per row of a 2-D C-order param ((rows,)) or one for the whole array ((1,)).
  void add_dense(py::handle param, py::handle grad, const TensorStates& states, const TensorName& name,
                 const StepOptions& o, std::int64_t step);

  // One sparse update of the rows `indices` of a 2-D param with `values`; the first state's shape
  // (rows, dim) or (rows,) picks element-wise or row-wise state (row-wise: rules with kRowwise).
  // Checks every index. AdagradDecay's decay counts: int64 (rows,), the decays each row has had.
  // bag: a bag's backward (adagrad.torch.EmbeddingBag; SparseProblem::bags): values is the pooled
  // gradient (bags, dim), bag.bags int64 (len(indices),) each occurrence's bag, bag.scales None or
  // (len(indices),) of the table's dtype.
  struct BagRows {
    py::handle bags, scales;
  };
  void add_sparse(py::handle table, py::handle indices, py::handle values, const TensorStates& states,
                  const TensorName& name, const StepOptions& o, Duplicates duplicates, std::int64_t step,
                  SparseProblem::Floor floor = SparseProblem::Floor::none, const BagRows* bag = nullptr);

  // After run() applies the update (and only then), *count = value: an optimizer's step count,
  // written before fork() may copy the process (thread_pool.hpp, ParallelSection).
  void count_on_success(std::int64_t* count, std::int64_t value);

  // The overlap check across everything added, then, with the GIL released, the check of every
  // grad for NaN and infinity (unless nonfinite is propagate) and the arithmetic. Returns true
  // when the update was applied; false when nonfinite is skip and a grad is not finite (nothing
  // written). Throws NonFiniteGrad, nothing written, when nonfinite is raise and one is not.
  bool run();

  // The norm run() measured (clip.measures_norm()): of all grads for ClipRule::global_norm and
  // tensor_norm alike, NaN or inf included; NaN before run().
  double grad_norm() const { return grad_norm_; }

 private:
  // The bag's arrays checked (every bag in range) and set on the problem.
  void add_bag_rows(SparseProblem& problem, const BagRows& bag, const FloatArray& pooled, const TensorName& name);
  // The options with the batch's own: the loss scale and the clip.
  StepOptions with_batch_options(const StepOptions& o) const;
  // AdagradDecay's per-row decay counts (checked), or null for other rules. rows: the length
  // required; 0: (1,) or, for a 2-D C-order param, (param rows,) (the dense form).
  std::int64_t* checked_decay_counts(py::handle counts, std::size_t rows, const StepOptions& o, const TensorName& name,
                                     const FloatArray* dense_param = nullptr, std::size_t* counted_rows = nullptr);
  // Norm rules: each tensor's clip from the norms measured, its coefficients made again.
  void apply_norms(const std::vector<double>& norms);
  // The rule and coefficients for these options and step, computed once for a run of tensors that
  // share them (a param group): the division and the fma cost ~10 ns a tensor otherwise.
  const DenseTensor& coefficients(Dtype dtype, Dtype state_dtype, const StepOptions& o, std::int64_t step);
  void check_later(Dtype dtype, const void* data, std::size_t size, py::handle grad, const TensorName& name);
  [[noreturn]] void report_nonfinite(std::size_t index) const;

  NonFinite nonfinite_;
  std::optional<double> grad_scale_;
  ClipRequest clip_;
  bool openmp_team_;
  double grad_norm_;
  struct LastCoefficients {
    bool valid = false;
    Dtype dtype{}, state_dtype{};
    std::int64_t step = 0;
    StepOptions options;
    DenseTensor tensor{};  // rule and coefficients; no arrays
  } last_;
  struct CheckedName {
    py::handle array;  // borrowed: owners holds it
    TensorName name;
  };
  // The per-tensor lists of one call. They live on (emptied) from one call to the next on the same
  // thread, so that a step of 1,000 tensors neither allocates nor writes to cold memory: that was
  // ~5 ns a tensor. A call made while another is being built on this thread (a Python callback in a
  // validation) gets lists of its own.
  struct Lists {
    bool in_use = false;
    std::vector<py::object> owners;  // keep every buffer alive while the GIL is released
    std::vector<DenseTensor> dense;
    std::vector<SparseProblem> sparse;
    OverlapChecker overlap;
    // nonfinite skip / raise, and the norm rules: every grad (dense arrays, sparse values), in the
    // order added.
    std::vector<GradSpan> checked;
    std::vector<CheckedName> checked_names;  // raise only: for the message
    // Norm rules only: each dense tensor's options (with the batch's) and step, and the span of
    // each dense tensor and of each sparse problem in `checked`.
    std::vector<std::pair<StepOptions, std::int64_t>> dense_options;
    std::vector<std::size_t> dense_span, sparse_span;
    std::vector<double> norms;
    std::vector<std::pair<std::int64_t*, std::int64_t>> counts;  // count_on_success
  };
  Lists& free_lists();
  std::unique_ptr<Lists> own_lists_;  // only when this thread's reused lists are taken
  Lists& lists_;
  std::vector<py::object>& owners_ = lists_.owners;
  std::vector<DenseTensor>& dense_ = lists_.dense;
  std::vector<SparseProblem>& sparse_ = lists_.sparse;
  OverlapChecker& overlap_ = lists_.overlap;
  std::vector<GradSpan>& checked_ = lists_.checked;
  std::vector<CheckedName>& checked_names_ = lists_.checked_names;
  std::vector<std::pair<StepOptions, std::int64_t>>& dense_options_ = lists_.dense_options;
  std::vector<std::size_t>& dense_span_ = lists_.dense_span;
  std::vector<std::size_t>& sparse_span_ = lists_.sparse_span;
};

}  // namespace adagrad::bindings
