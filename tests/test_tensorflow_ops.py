"""Proximal Adagrad and Adagrad-DA against TensorFlow's raw ops, 50 steps at a time.

Each case runs one of our four composite functions and the matching TensorFlow resource op
(``ResourceApplyProximalAdagrad``, ``ResourceSparseApplyProximalAdagrad``, ``ResourceApplyAdagradDA``,
``ResourceSparseApplyAdagradDA``, eager, one CPU thread) side by side from the same start (random
params, accumulators at TensorFlow's 0.1, DA grad sums at 0) on the same random gradients, and after
every step compares the params and every accumulator. Sparse cases use tables whose rows are a
vector (16), a vector tail (3) and a scalar (1: TensorFlow's separate one-element kernel, which
computes in double even for float32), k = 40 indices per step. TensorFlow's sparse kernels apply a
repeated index once per occurrence, in input order: with repeats we compare ``duplicates=
"sequential"``; with unique indices both modes must agree with TensorFlow.

Tolerance: relative 1e-6 in float32 and 1e-12 in float64, the issue's figures, on every element,
with an absolute floor of that same relative figure times the largest magnitude in the array: an
element near zero is the difference of larger quantities (``param - eta * grad``, a sum of signed
gradients), so its rounding error scales with the array, not with itself. Our kernels round every
operation once; TensorFlow's differ from them by a few units in the last place per step:
``accum += g * g`` without fma; Proximal's ``lr * rsqrt(accum)`` through Eigen (up to 3 ulps from
the correctly rounded ``lr / sqrt(accum)`` in float32, 2 in float64, with tensorflow-cpu 2.21);
DA's sparse rows rearranged to divide by the step; the one-element kernels' mixed double
arithmetic. Over 50 steps the differences came to at most 7.9e-7 (float32) and 1.4e-15 (float64)
of the array's largest magnitude. With ``l1 > 0`` the exact zeros must sit where TensorFlow's do,
and there must be a fair share of them. Dense DA's param formula is TensorFlow's to the bit
(checked from TensorFlow's own sums). Negative controls check that the comparison catches a wrong
step number or the other duplicates mode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import adagrad
from conftest import assert_same_bits

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no banner per import
tf = pytest.importorskip("tensorflow")

try:  # one thread: every element's arithmetic is fixed anyway, this keeps the run deterministic
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
except RuntimeError:  # another module started TensorFlow's runtime first: it keeps its threads
    pass

STEPS = 50
INITIAL_ACCUMULATOR = 0.1  # TensorFlow's default initial_accumulator_value
RTOL = {np.float32: 1e-6, np.float64: 1e-12}
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]

DENSE_SIZE = 1000  # 125 AVX2 vectors of float32, 62.5 of AVX-512 float32: a tail in most widths
SPARSE_SHAPES = [(200, 16), (100, 3), (50, 1)]
K = 40  # indices per sparse step

# (how the indices are drawn, our duplicates mode): TensorFlow always applies each occurrence.
INDEX_MODES = [
    pytest.param("repeats", "sequential", id="repeats-sequential"),
    pytest.param("unique", "sequential", id="unique-sequential"),
    pytest.param("unique", "sum", id="unique-sum"),
]


# --- the two rules, each as a pair of step functions (ours, TensorFlow's) -------------------------


class Rule:
    """A composite rule: its slot arrays and one step of ours and of TensorFlow's, dense or sparse."""

    name = ""
    slots: tuple[str, ...] = ()

    def initial_slots(self, param: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def ours(self, arrays: list[np.ndarray], grad: Any, t: int, options: dict[str, float], duplicates: str) -> None:
        raise NotImplementedError

    def theirs(self, variables: list[Any], grad: Any, t: int, options: dict[str, float]) -> None:
        raise NotImplementedError


def _scalars(options: dict[str, float], dtype: Any) -> dict[str, Any]:
    """lr, l1, l2 as TensorFlow scalars of the variables' dtype (rounded as ours rounds them)."""
    return {k: tf.constant(options.get(k, 0.0), dtype=dtype) for k in ("lr", "l1", "l2")}


class Proximal(Rule):
    name = "proximal"
    slots = ("accum",)

    def initial_slots(self, param: np.ndarray) -> list[np.ndarray]:
        return [np.full_like(param, INITIAL_ACCUMULATOR)]

    def ours(self, arrays: list[np.ndarray], grad: Any, t: int, options: dict[str, float], duplicates: str) -> None:
        param, accum = arrays
        if isinstance(grad, tuple):
            applied = adagrad.sparse_proximal_update(param, *grad, accum, duplicates=duplicates, **options)
        else:
            applied = adagrad.proximal_update(param, grad, accum, **options)
        assert applied is True

    def theirs(self, variables: list[Any], grad: Any, t: int, options: dict[str, float]) -> None:
        var, accum = variables
        scalars = _scalars(options, var.dtype)
        if isinstance(grad, tuple):
            indices, values = grad
            tf.raw_ops.ResourceSparseApplyProximalAdagrad(
                var=var.handle, accum=accum.handle, grad=tf.constant(values), indices=tf.constant(indices), **scalars
            )
        else:
            tf.raw_ops.ResourceApplyProximalAdagrad(
                var=var.handle, accum=accum.handle, grad=tf.constant(grad), **scalars
            )


class DualAveraging(Rule):
    name = "dual_averaging"
    slots = ("grad_sum", "state_sum")

    def initial_slots(self, param: np.ndarray) -> list[np.ndarray]:
        return [np.zeros_like(param), np.full_like(param, INITIAL_ACCUMULATOR)]

    def ours(self, arrays: list[np.ndarray], grad: Any, t: int, options: dict[str, float], duplicates: str) -> None:
        param, grad_sum, state_sum = arrays
        if isinstance(grad, tuple):
            applied = adagrad.sparse_da_update(
                param, *grad, grad_sum, state_sum, step=t, duplicates=duplicates, **options
            )
        else:
            applied = adagrad.da_update(param, grad, grad_sum, state_sum, step=t, **options)
        assert applied is True

    def theirs(self, variables: list[Any], grad: Any, t: int, options: dict[str, float]) -> None:
        var, grad_sum, state_sum = variables
        # Our step is 1-based (the optimizer passes its step count + 1); TensorFlow's op takes that
        # same number as global_step (AdagradDAOptimizer feeds it global_step + 1).
        common = {
            "var": var.handle,
            "gradient_accumulator": grad_sum.handle,
            "gradient_squared_accumulator": state_sum.handle,
            "global_step": tf.constant(t, dtype=tf.int64),
            **_scalars(options, var.dtype),
        }
        if isinstance(grad, tuple):
            indices, values = grad
            tf.raw_ops.ResourceSparseApplyAdagradDA(grad=tf.constant(values), indices=tf.constant(indices), **common)
        else:
            tf.raw_ops.ResourceApplyAdagradDA(grad=tf.constant(grad), **common)


# (rule, settings id, options): no regularizer, l1 alone, l2 alone, both. The l1 values differ by
# rule because their thresholds differ in scale (eta * l1 on the param per step for Proximal, t * l1
# on the grad sum for DA); each leaves 13% to 87% of the weights at exactly 0 after step 50.
SETTINGS = [
    (Proximal(), "plain", {"lr": 0.1}),
    (Proximal(), "l1", {"lr": 0.1, "l1": 0.5}),
    (Proximal(), "l2", {"lr": 0.1, "l2": 0.1}),
    (Proximal(), "l1-l2", {"lr": 0.3, "l1": 0.3, "l2": 0.2}),
    (DualAveraging(), "plain", {"lr": 0.1}),
    (DualAveraging(), "l1", {"lr": 0.1, "l1": 0.05}),
    (DualAveraging(), "l2", {"lr": 0.1, "l2": 0.1}),
    (DualAveraging(), "l1-l2", {"lr": 0.3, "l1": 0.1, "l2": 0.2}),
]
CASES = [pytest.param(rule, options, id=f"{rule.name}-{name}") for rule, name, options in SETTINGS]
RULES = [pytest.param(Proximal(), id="proximal"), pytest.param(DualAveraging(), id="dual_averaging")]


# --- inputs ---------------------------------------------------------------------------------------


def random_values(rng: np.random.Generator, shape: Any, dtype: type) -> np.ndarray:
    """Standard normal gradients with 5% exact zeros (a zero grad still moves a proximal param)."""
    g = rng.standard_normal(shape)
    g[rng.random(shape) < 0.05] = 0.0
    return g.astype(dtype)


def random_indices(rng: np.random.Generator, rows: int, mode: str) -> np.ndarray:
    """K row indices: all distinct, or 30 draws and 10 repeats of them, shuffled."""
    if mode == "unique":
        return rng.choice(rows, size=K, replace=False).astype(np.int64)
    drawn = rng.integers(0, rows, size=K - 10)
    indices = rng.permutation(np.concatenate([drawn, rng.choice(drawn, size=10)])).astype(np.int64)
    assert np.unique(indices).size < K
    return indices


def dense_grads(rng: np.random.Generator, dtype: type) -> Iterator[np.ndarray]:
    for _ in range(STEPS):
        yield random_values(rng, DENSE_SIZE, dtype)


def sparse_grads(rng: np.random.Generator, shape: tuple[int, int], mode: str, dtype: type) -> Iterator[Any]:
    for _ in range(STEPS):
        yield random_indices(rng, shape[0], mode), random_values(rng, (K, shape[1]), dtype)


# --- the comparison -------------------------------------------------------------------------------


def differences(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Max absolute difference, max relative difference (where TensorFlow's value is not 0), the
    same scaled by the array's largest magnitude, and the fraction of bitwise-equal elements."""
    diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
    nonzero = theirs != 0
    scale = float(np.max(np.abs(theirs)))
    uint = np.uint32 if ours.dtype == np.float32 else np.uint64
    return {
        "abs": float(diff.max()),
        "rel": float((diff[nonzero] / np.abs(theirs[nonzero])).max()) if nonzero.any() else 0.0,
        "scaled": float(diff.max()) / scale if scale > 0 else float(diff.max()),
        "same_bits": float(np.mean(ours.view(uint) == theirs.view(uint))),
    }


def assert_close(ours: np.ndarray, theirs: np.ndarray, rtol: float, what: str) -> None:
    """rtol relative, with an absolute floor of rtol times the array's largest magnitude."""
    atol = rtol * float(np.max(np.abs(theirs)))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol, err_msg=what)


def assert_same_zeros(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    """Exact zeros (either sign) in the same places."""
    np.testing.assert_array_equal(ours == 0, theirs == 0, err_msg=f"zero pattern of {what}")


def run_against_tensorflow(
    rule: Rule,
    param: np.ndarray,
    grads: Iterator[Any],
    options: dict[str, float],
    *,
    duplicates: str = "sum",
    step_offset: int = 0,
) -> dict[str, Any]:
    """Steps ours and TensorFlow's from the same start on the same grads, comparing after every
    step; returns each array's worst differences over the run and the param's final zero count.
    step_offset: added to our step number only (a negative control)."""
    rtol = RTOL[param.dtype.type]
    names = ("param", *rule.slots)
    ours = [param.copy(), *rule.initial_slots(param)]
    theirs = [tf.Variable(a) for a in ours]  # tf.Variable copies: the two runs share no memory
    worst: dict[str, dict[str, float]] = {}
    for t, grad in enumerate(grads, start=1):
        rule.ours(ours, grad, t + step_offset, options, duplicates)
        rule.theirs(theirs, grad, t, options)
        for name, mine, variable in zip(names, ours, theirs):
            reference = variable.numpy()
            assert_close(mine, reference, rtol, f"{rule.name} {name} after step {t}")
            if name == "param" and options.get("l1", 0.0) > 0:
                assert_same_zeros(mine, reference, f"{rule.name} param after step {t}")
            found = differences(mine, reference)
            previous = worst.setdefault(name, dict(found))
            for key, value in found.items():
                previous[key] = min(previous[key], value) if key == "same_bits" else max(previous[key], value)
    return {"worst": worst, "zeros": int(np.count_nonzero(ours[0] == 0)), "size": ours[0].size}


def check_zeros(result: dict[str, Any], options: dict[str, float]) -> None:
    """With l1 > 0 the setting must leave a fair share of exact zeros (else the zero check is vacuous)."""
    if options.get("l1", 0.0) > 0:
        assert result["zeros"] >= 0.05 * result["size"], f"only {result['zeros']} of {result['size']} weights are 0"


# --- the cases ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rule", "options"), CASES)
def test_dense(rule: Rule, dtype: type, options: dict[str, float]) -> None:
    rng = np.random.default_rng(2011)
    param = (rng.standard_normal(DENSE_SIZE) * 0.5).astype(dtype)
    result = run_against_tensorflow(rule, param, dense_grads(rng, dtype), options)
    check_zeros(result, options)


@pytest.mark.parametrize(("index_mode", "duplicates"), INDEX_MODES)
@pytest.mark.parametrize("shape", SPARSE_SHAPES, ids=[f"{r}x{d}" for r, d in SPARSE_SHAPES])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("rule", "options"), CASES)
def test_sparse(
    rule: Rule, dtype: type, options: dict[str, float], shape: tuple[int, int], index_mode: str, duplicates: str
) -> None:
    rng = np.random.default_rng(2010 + shape[1])
    table = (rng.standard_normal(shape) * 0.5).astype(dtype)
    result = run_against_tensorflow(
        rule, table, sparse_grads(rng, shape, index_mode, dtype), options, duplicates=duplicates
    )
    check_zeros(result, options)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "options", [pytest.param(options, id=name) for rule, name, options in SETTINGS if isinstance(rule, DualAveraging)]
)
def test_dense_da_param_is_tensorflows_bit_for_bit(dtype: type, options: dict[str, float]) -> None:
    """Given the same two sums, dense DA's new param is TensorFlow's to the bit: the constants
    (t * l1, l2 * (t * lr)) and the operations are the same, so the runs above differ only through
    ``state_sum`` (ours one fma). After each TensorFlow step, our da_update with a zero gradient
    (which leaves both sums exactly as they are) recomputes the param from TensorFlow's sums."""
    rng = np.random.default_rng(16)
    rule = DualAveraging()
    theirs = [tf.Variable(a) for a in (np.zeros(DENSE_SIZE, dtype), *rule.initial_slots(np.zeros(DENSE_SIZE, dtype)))]
    zero = np.zeros(DENSE_SIZE, dtype)
    for t, grad in enumerate(dense_grads(rng, dtype), start=1):
        rule.theirs(theirs, grad, t, options)
        param, grad_sum, state_sum = (v.numpy() for v in theirs)
        sums = [grad_sum.copy(), state_sum.copy()]
        ours = np.empty_like(param)
        rule.ours([ours, *sums], zero, t, options, "sum")
        assert_same_bits(sums[0], grad_sum)
        assert_same_bits(sums[1], state_sum)
        assert_same_bits(ours, param)


# --- negative controls: the comparison must see a wrong convention ----------------------------------


def test_da_catches_an_off_by_one_step() -> None:
    """Our step t is TensorFlow's global_step t; passing t + 1 must fail the comparison."""
    rng = np.random.default_rng(7)
    param = rng.standard_normal(DENSE_SIZE).astype(np.float64)
    with pytest.raises(AssertionError):
        run_against_tensorflow(
            DualAveraging(), param, dense_grads(rng, np.float64), {"lr": 0.1, "l2": 0.1}, step_offset=1
        )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", RULES)
def test_summed_duplicates_differ_from_tensorflow(rule: Rule, dtype: type) -> None:
    """duplicates="sum" on repeated indices is not what TensorFlow's raw op does: it must fail."""
    rng = np.random.default_rng(8)
    shape = (200, 16)
    table = (rng.standard_normal(shape) * 0.5).astype(dtype)
    grads = sparse_grads(rng, shape, "repeats", dtype)
    with pytest.raises(AssertionError):
        run_against_tensorflow(rule, table, grads, {"lr": 0.1}, duplicates="sum")
