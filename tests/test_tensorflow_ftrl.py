"""FTRL-Proximal against TensorFlow's raw ops (``ResourceApplyFtrlV2``, ``ResourceSparseApplyFtrlV2``),
50 steps at a time, and against Keras's formula for ``beta``.

The harness is test_tensorflow_ops.py's (same start, same grads, every array compared after every step,
relative 1e-6 in float32 and 1e-12 in float64 with a floor of that figure times the array's largest
magnitude, exact zeros in TensorFlow's places). Every option: lr_power -0.5 (TensorFlow's sqrt branch),
-0.7 (its pow branch) and 0, l1, l2, l2_shrinkage, multiply_linear_by_lr, and beta as Keras hands it to
the op (l2 + beta / (2 * lr), formed in the variables' dtype).

Why the bits differ at all: ``n`` is Adagrad's sum, one fma (TensorFlow: ``n + g * g``, two roundings:
up to 3 ulps apart after 50 steps), and at ``lr_power`` other than -0.5 and 0 TensorFlow takes the power
through Eigen's ``pow`` (its own vectorized one in the dense op) where ours is libm's in double, rounded
once. Every other operation is TensorFlow's, in its order: from TensorFlow's own ``n`` and
``z`` our param is TensorFlow's to the bit (the test below), and at ``lr_power`` 0, where ``n`` does not
enter, the 50-step runs are bit for bit TensorFlow's. Measured with tensorflow-cpu 2.21.0 on an AMD EPYC
(Zen 4, AVX-512) over every option set, dense and sparse: the largest difference of any array after any step was
7.0e-7 (float32) and 1.3e-15 (float64) of the array's largest magnitude; per element, away from exact
zeros, 5.2e-12 in float64 (an element near the l1 threshold is the difference of near-equal l1 and |z|,
near zero a difference of larger terms, so its error scales with the array, not with itself).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import adagrad
from conftest import assert_same_bits

tf_ops = pytest.importorskip("test_tensorflow_ops")  # skips cleanly without TensorFlow
tf = tf_ops.tf

DTYPES = tf_ops.DTYPES
INITIAL_ACCUMULATOR = 0.1


def _keras_l2(options: dict[str, Any], dtype: Any) -> Any:
    """Keras's l2 for the op: l2 + beta / (2 * lr), in the variables' dtype."""
    t = np.dtype(dtype).type
    l2, beta, lr = t(options.get("l2", 0.0)), t(options.get("beta", 0.0)), t(options["lr"])
    return l2 + beta / (t(2) * lr) if beta > 0 else l2


class Ftrl(tf_ops.Rule):
    name = "ftrl"
    slots = ("accum", "linear")

    def initial_slots(self, param: np.ndarray) -> list[np.ndarray]:
        return [np.full_like(param, INITIAL_ACCUMULATOR), np.zeros_like(param)]

    def ours(self, arrays: list[np.ndarray], grad: Any, t: int, options: dict[str, Any], duplicates: str) -> None:
        param, accum, linear = arrays
        if isinstance(grad, tuple):
            applied = adagrad.sparse_ftrl_update(param, *grad, accum, linear, duplicates=duplicates, **options)
        else:
            applied = adagrad.ftrl_update(param, grad, accum, linear, **options)
        assert applied is True

    def theirs(self, variables: list[Any], grad: Any, t: int, options: dict[str, Any]) -> None:
        var, accum, linear = variables
        dtype = var.dtype.as_numpy_dtype
        common = {
            "var": var.handle,
            "accum": accum.handle,
            "linear": linear.handle,
            "lr": tf.constant(options["lr"], dtype=var.dtype),
            "l1": tf.constant(options.get("l1", 0.0), dtype=var.dtype),
            "l2": tf.constant(_keras_l2(options, dtype), dtype=var.dtype),
            "l2_shrinkage": tf.constant(options.get("l2_shrinkage", 0.0), dtype=var.dtype),
            "lr_power": tf.constant(options.get("lr_power", -0.5), dtype=var.dtype),
            "multiply_linear_by_lr": options.get("multiply_linear_by_lr", False),
        }
        if isinstance(grad, tuple):
            indices, values = grad
            tf.raw_ops.ResourceSparseApplyFtrlV2(grad=tf.constant(values), indices=tf.constant(indices), **common)
        else:
            tf.raw_ops.ResourceApplyFtrlV2(grad=tf.constant(grad), **common)


# The l1 values leave a fair share of exact zeros after 50 steps (|z| grows like the root of the steps).
SETTINGS = [
    ("plain", {"lr": 0.1}),
    ("l1", {"lr": 0.1, "l1": 3.0}),
    ("l2", {"lr": 0.1, "l2": 0.1}),
    ("l1-l2-shrinkage", {"lr": 0.3, "l1": 2.0, "l2": 0.2, "l2_shrinkage": 0.05}),
    ("pow", {"lr": 0.1, "lr_power": -0.7, "l1": 2.0, "l2": 0.1}),
    ("fixed-rate", {"lr": 0.05, "lr_power": 0.0, "l1": 1.0}),
    ("by-lr", {"lr": 0.1, "l1": 2.0, "l2": 0.1, "l2_shrinkage": 0.05, "multiply_linear_by_lr": True}),
    ("by-lr-pow", {"lr": 0.2, "lr_power": -0.3, "l1": 1.0, "multiply_linear_by_lr": True}),
    ("beta", {"lr": 0.1, "l1": 2.0, "l2": 0.05, "beta": 0.5}),
]
CASES = [pytest.param(options, id=name) for name, options in SETTINGS]


def _ulps(ours: np.ndarray, theirs: np.ndarray) -> int:
    """The largest distance in units in the last place, over the elements neither run put at 0."""
    keep = (ours != 0) & (theirs != 0)
    if not keep.any():
        return 0
    kind = np.int32 if ours.dtype == np.float32 else np.int64
    a, b = ours[keep].view(kind).astype(np.int64), theirs[keep].view(kind).astype(np.int64)
    return int(np.max(np.abs(a - b)))


def _run(param: np.ndarray, grads: Iterator[Any], options: dict[str, Any], duplicates: str = "sum") -> dict[str, Any]:
    result: dict[str, Any] = tf_ops.run_against_tensorflow(Ftrl(), param, grads, options, duplicates=duplicates)
    tf_ops.check_zeros(result, options)
    return result


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", CASES)
def test_dense(dtype: type, options: dict[str, Any]) -> None:
    rng = np.random.default_rng(2013)
    param = (rng.standard_normal(tf_ops.DENSE_SIZE) * 0.5).astype(dtype)
    _run(param, tf_ops.dense_grads(rng, dtype), options)


@pytest.mark.parametrize(("index_mode", "duplicates"), tf_ops.INDEX_MODES)
@pytest.mark.parametrize("shape", tf_ops.SPARSE_SHAPES, ids=[f"{r}x{d}" for r, d in tf_ops.SPARSE_SHAPES])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", CASES)
def test_sparse(dtype: type, options: dict[str, Any], shape: tuple[int, int], index_mode: str, duplicates: str) -> None:
    rng = np.random.default_rng(2012 + shape[1])
    table = (rng.standard_normal(shape) * 0.5).astype(dtype)
    _run(table, tf_ops.sparse_grads(rng, shape, index_mode, dtype), options, duplicates)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", CASES)
def test_dense_param_is_tensorflows_bit_for_bit_from_its_states(dtype: type, options: dict[str, Any]) -> None:
    """Given TensorFlow's n and z, our param is TensorFlow's to the bit: the runs above differ through n
    alone (ours one fma). After each TensorFlow step, our ftrl_update with a zero grad on a zero param
    (n' = n, r(n') - r(n) = 0, g' = 0: z stays as it is) recomputes the param from TensorFlow's states.
    lr_power other than -0.5 and 0 is left out: TensorFlow's dense op takes the power through Eigen's
    own vectorized pow (a few ulps from libm's, which ours calls; 41 of 1000 params differed in float64)."""
    if options.get("lr_power", -0.5) not in (-0.5, 0.0):
        pytest.skip("pow: Eigen's vectorized pow in TensorFlow's dense op against libm's in ours")
    rng = np.random.default_rng(17)
    rule = Ftrl()
    start = (rng.standard_normal(tf_ops.DENSE_SIZE) * 0.5).astype(dtype)
    theirs = [tf.Variable(a) for a in (start, *rule.initial_slots(start))]
    for t, grad in enumerate(tf_ops.dense_grads(rng, dtype), start=1):
        rule.theirs(theirs, grad, t, options)
        param, accum, linear = (v.numpy() for v in theirs)
        ours = [np.zeros_like(param), accum.copy(), linear.copy()]
        rule.ours(ours, np.zeros_like(param), t, options, "sum")
        assert_same_bits(ours[1], accum)
        assert_same_bits(ours[2], linear)
        assert_same_bits(ours[0], param)


def test_summed_duplicates_differ_from_tensorflow() -> None:
    """A negative control: duplicates="sum" on repeated indices is not TensorFlow's per-occurrence op."""
    rng = np.random.default_rng(8)
    table = (rng.standard_normal((200, 16)) * 0.5).astype(np.float64)
    with pytest.raises(AssertionError):
        tf_ops.run_against_tensorflow(
            Ftrl(), table, tf_ops.sparse_grads(rng, (200, 16), "repeats", np.float64), {"lr": 0.1}, duplicates="sum"
        )


def keras_ftrl_step(
    w: np.ndarray, g: np.ndarray, n: np.ndarray, z: np.ndarray, *, lr: float, l1: float, l2: float, beta: float
) -> None:
    """Keras 3's Ftrl update, written from its documentation (lr_power -0.5, no shrinkage), in float64:
    n' = n + g^2;  z += g - (sqrt(n') - sqrt(n)) / lr * w;  q = sqrt(n') / lr + 2 * (l2 + beta / (2 * lr));
    w = (clip(z, -l1, l1) - z) / q;  n = n'."""
    n_new = n + g * g
    z += g - (np.sqrt(n_new) - np.sqrt(n)) / lr * w
    quadratic = np.sqrt(n_new) / lr + 2 * (l2 + beta / (2 * lr))
    w[:] = (np.clip(z, -l1, l1) - z) / quadratic
    n[:] = n_new


@pytest.mark.parametrize("beta", [0.0, 0.5, 3.0])
def test_beta_is_keras(beta: float) -> None:
    """beta against Keras's own formula (no TensorFlow op involved), 50 steps in float64."""
    rng = np.random.default_rng(31)
    options = {"lr": 0.1, "l1": 1.5, "l2": 0.05, "beta": beta}
    w = rng.standard_normal(1000) * 0.5
    n, z = np.full(1000, INITIAL_ACCUMULATOR), np.zeros(1000)
    kw, kn, kz = w.copy(), n.copy(), z.copy()
    for _ in range(tf_ops.STEPS):
        g = rng.standard_normal(1000)
        adagrad.ftrl_update(w, g, n, z, **options)
        keras_ftrl_step(kw, g, kn, kz, **options)
        tf_ops.assert_close(w, kw, 1e-12, "param")
        tf_ops.assert_close(z, kz, 1e-12, "linear")
        tf_ops.assert_same_zeros(w, kw, "param")
    assert np.count_nonzero(w == 0) > 50
