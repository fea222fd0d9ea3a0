"""FTRL-Proximal: the native kernels against the reference bit for bit (every option, float32 and float64,
vector tails, unaligned views, every ISA, 1 and 2 threads, special values, sparse rows of every kernel
length in both duplicates modes), a first step worked out by hand, sparse "sum" equal to the dense update
of the touched rows, exact zeros exactly where |z| <= l1, and bad options and inputs refused by name with
nothing written (the native functions, optimizer and torch drop-in, and the reference)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import adagrad
from adagrad import reference
from conftest import assert_same_bits
from test_composite_bitwise import SIZES, SPECIAL, THREADED_SIZES, Rule, run_dense, run_sparse


class FtrlRule(Rule):
    """The composite tables' rule, with FTRL's states: n at 0.1 (TensorFlow's start), z random."""

    def initial_states(self, like: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        return [np.full_like(like, 0.1), (rng.standard_normal(like.shape) * 0.5).astype(like.dtype)]


FTRL = FtrlRule("ftrl", adagrad.ftrl_update, adagrad.sparse_ftrl_update, states=2, step=False)
DTYPES = [np.float32, np.float64]

# Every option, alone and together: lr_power's three branches (sqrt, 1, libm's pow), both z forms.
OPTIONS = [
    pytest.param({"lr": 0.1}, id="plain"),
    pytest.param({"lr": 0.1, "l1": 0.3}, id="l1"),
    pytest.param({"lr": 0.1, "l2": 0.05}, id="l2"),
    pytest.param({"lr": 0.1, "l2_shrinkage": 0.1}, id="shrinkage"),
    pytest.param({"lr": 0.1, "l1": 0.3, "beta": 0.5}, id="beta"),
    pytest.param({"lr": 0.1, "lr_power": -0.7, "l1": 0.2}, id="pow"),
    pytest.param({"lr": 0.1, "lr_power": 0.0, "l1": 0.2}, id="fixed-rate"),
    pytest.param({"lr": 0.1, "lr_power": -1.0, "l2": 0.1}, id="pow-integer"),
    pytest.param({"lr": 0.2, "l1": 0.3, "multiply_linear_by_lr": True}, id="by-lr"),
    pytest.param(
        {"lr": 0.3, "lr_power": -0.4, "l1": 0.2, "l2": 0.1, "l2_shrinkage": 0.05, "beta": 0.3,
         "multiply_linear_by_lr": True},
        id="everything",
    ),
]  # fmt: skip


@pytest.mark.parametrize("shift", [False, True], ids=["aligned", "unaligned"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("options", OPTIONS)
def test_dense_every_option_like_reference(options: dict[str, Any], dtype: type, shift: bool, isa: str) -> None:
    run_dense(FTRL, dtype, options, SIZES, steps=4, seed=21, shift=shift)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("options", [OPTIONS[1], OPTIONS[5], OPTIONS[-1]])
def test_dense_threaded_like_reference(options: dict[str, Any], dtype: type, isa: str, threads: int) -> None:
    run_dense(FTRL, dtype, options, THREADED_SIZES, steps=3, seed=23, shift=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_dense_many_steps_like_reference(dtype: type, isa: str) -> None:
    run_dense(FTRL, dtype, {"lr": 0.2, "l1": 0.5, "l2": 0.01}, [257, 64], steps=120, seed=22, shift=False)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("options", [OPTIONS[0], OPTIONS[5], OPTIONS[6], OPTIONS[-1]])
def test_special_values_like_reference(options: dict[str, Any], dtype: type, isa: str) -> None:
    """Non-finite, signed-zero, subnormal and huge grads; params of both signs and zero; n at 0 (a zero
    quadratic: 0 / 0 must give the weight 0) and at 0.1; z at 0 and negative."""
    n = len(SPECIAL)
    with np.errstate(all="ignore"):
        grads = np.array(SPECIAL * 6, dtype=dtype)
        params = np.repeat(np.array([1.0, -2.0, 0.0, -0.0, 1e-40, 3.0], dtype=dtype), n)
    states = [np.zeros_like(params), np.zeros_like(params)]
    states[0][: 3 * n] = 0.1
    states[1][n : 2 * n] = -0.5
    expected, expected_states = params.copy(), [s.copy() for s in states]
    for t in (1, 2):
        FTRL.call(True, params, grads, states, t, **options)
        FTRL.call(False, expected, grads, expected_states, t, **options)
    for s, es in zip(states, expected_states):
        assert_same_bits(s, es)
    assert_same_bits(params, expected)


@pytest.mark.parametrize("dim", [1, 5, 16, 32, 64, 128, 200])
@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("options", [OPTIONS[1], OPTIONS[5], OPTIONS[-1]])
def test_sparse_like_reference(options: dict[str, Any], dtype: type, duplicates: str, dim: int, isa: str) -> None:
    run_sparse(FTRL, dtype, options, dim, k=40, duplicates=duplicates, steps=3, seed=dim)


@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_sparse_threaded_like_reference(dtype: type, duplicates: str, isa: str, threads: int) -> None:
    run_sparse(FTRL, dtype, {"lr": 0.3, "l1": 0.3, "l2": 0.2}, 64, k=600, duplicates=duplicates, steps=2, seed=5)


def test_the_first_step_worked_by_hand() -> None:
    """One float64 step from w = 0.5, n = 0.1, z = 0, g = 0.3 (lr 0.1, l1 0.2, l2 0.25), in Python floats:
    n' = 0.19, sigma = (sqrt(0.19) - sqrt(0.1)) / 0.1, z = 0.3 - sigma * 0.5, w = (l1 - z) / q for z > l1."""
    w, n, z = np.array([0.5]), np.array([0.1]), np.array([0.0])
    assert adagrad.ftrl_update(w, np.array([0.3]), n, z, lr=0.1, l1=0.2, l2=0.25) is True
    n_new = 0.1 + 0.3 * 0.3
    sigma = (math.sqrt(n_new) - math.sqrt(0.1)) / 0.1
    z_new = 0.3 - sigma * 0.5
    quadratic = math.sqrt(n_new) / 0.1 + 2 * 0.25
    assert z_new < -0.2  # about -0.298: sign(z) * l1 - z = -0.2 - z
    expected = (-0.2 - z_new) / quadratic
    assert n[0] == pytest.approx(0.19, rel=1e-15)
    assert z[0] == pytest.approx(z_new, rel=1e-14)
    assert w[0] == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("options", [OPTIONS[1], OPTIONS[5], OPTIONS[-1]])
def test_sparse_sum_is_the_dense_update_of_the_touched_rows(options: dict[str, Any], dtype: type, isa: str) -> None:
    """duplicates="sum": each touched row gets the dense update of its summed grad, bit for bit; the
    untouched rows and their states keep every bit."""
    rng = np.random.default_rng(41)
    rows, dim = 50, 24
    table = (rng.standard_normal((rows, dim)) * 0.5).astype(dtype)
    n = np.full_like(table, 0.1)
    z = (rng.standard_normal((rows, dim)) * 0.5).astype(dtype)
    for _ in range(5):
        indices = rng.integers(0, rows, size=40)
        values = rng.standard_normal((40, dim)).astype(dtype)
        summed = np.zeros_like(table)
        np.add.at(summed, indices, values)  # in input order, as the kernel sums a row's repeats
        touched = np.unique(indices)
        dense = [a[touched].copy() for a in (table, n, z)]
        before = [a.copy() for a in (table, n, z)]
        adagrad.ftrl_update(dense[0], summed[touched], dense[1], dense[2], **options)
        adagrad.sparse_ftrl_update(table, indices, values, n, z, duplicates="sum", **options)
        untouched = np.setdiff1d(np.arange(rows), touched)
        for got, want, old in zip((table, n, z), dense, before):
            assert_same_bits(got[touched], want)
            assert_same_bits(got[untouched], old[untouched])


@pytest.mark.parametrize("options", [OPTIONS[1], OPTIONS[4], OPTIONS[5], OPTIONS[8]])
def test_weights_are_exactly_zero_exactly_where_z_is_within_l1(options: dict[str, Any]) -> None:
    """After every step, w == 0 (+0) wherever |z| <= l1 (l1 * lr with multiply_linear_by_lr), and
    nowhere else; both kinds are there."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal(5000)
    n, z = np.full(5000, 0.1), np.zeros(5000)
    threshold = options["l1"] * (options["lr"] if options.get("multiply_linear_by_lr") else 1.0)
    for _ in range(20):
        adagrad.ftrl_update(w, rng.standard_normal(5000) * 0.3, n, z, **options)
        inside = np.abs(z) <= threshold
        assert 0.05 < inside.mean() < 0.95
        assert np.all(w[inside] == 0) and not np.signbit(w[inside]).any()
        assert np.all(w[~inside] != 0)
        assert np.all(np.sign(w[~inside]) == -np.sign(z[~inside]))


def test_a_zero_accumulator_and_zero_grad_give_a_zero_weight_not_nan() -> None:
    """n = 0 (initial_accumulator_value=0, as TensorFlow and Keras allow) and g = 0: the quadratic is 0,
    the weight is 0 where |z| <= l1 (TensorFlow's select), and infinite beyond."""
    w, n, z = np.zeros(3), np.zeros(3), np.array([0.0, 0.1, -2.0])
    adagrad.ftrl_update(w, np.zeros(3), n, z, lr=0.1, l1=0.5)
    assert_same_bits(w, np.array([0.0, 0.0, np.inf]))


# -- bad options and inputs: refused by name, nothing written --------------------------------------

BAD_OPTIONS = [
    pytest.param({"lr": 0.0}, ValueError, "lr must be a finite number > 0", id="zero-lr"),
    pytest.param({"lr": -0.1}, ValueError, "lr must be a finite number > 0", id="negative-lr"),
    pytest.param({"lr_power": 0.5}, ValueError, "lr_power must be a finite number <= 0", id="positive-lr-power"),
    pytest.param({"lr_power": -math.inf}, ValueError, "lr_power must be a finite number <= 0", id="inf-lr-power"),
    pytest.param({"lr_power": math.nan}, ValueError, "lr_power must be a finite number <= 0", id="nan-lr-power"),
    pytest.param({"lr_power": "-0.5"}, TypeError, "lr_power must be a real number", id="str-lr-power"),
    pytest.param({"l1": -1.0}, ValueError, "l1 must be a finite number >= 0", id="negative-l1"),
    pytest.param({"l2": math.inf}, ValueError, "l2 must be a finite number >= 0", id="inf-l2"),
    pytest.param({"l2_shrinkage": -0.1}, ValueError, "l2_shrinkage must be a finite number >= 0", id="shrinkage"),
    pytest.param({"beta": math.nan}, ValueError, "beta must be a finite number >= 0", id="nan-beta"),
    pytest.param({"multiply_linear_by_lr": 1}, TypeError, "multiply_linear_by_lr must be a bool", id="int-flag"),
]
BAD_INITIAL = [
    pytest.param({"initial_accumulator_value": -0.1}, ValueError, "initial_accumulator_value must be", id="negative"),
    pytest.param({"initial_accumulator_value": math.inf}, ValueError, "initial_accumulator_value must be", id="inf"),
]


@pytest.mark.parametrize(("bad", "error", "message"), BAD_OPTIONS + BAD_INITIAL)
@pytest.mark.parametrize("cls", [adagrad.Ftrl, reference.Ftrl], ids=["native", "reference"])
def test_the_optimizers_refuse_a_bad_option_by_name(cls: type, bad: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        cls([np.ones(3)], **bad)
    with pytest.raises(error, match="param group 1: " + message):
        cls([{"params": [np.ones(3)]}, {"params": [np.ones(2)], **bad}])


@pytest.mark.parametrize(("bad", "error", "message"), BAD_OPTIONS)
@pytest.mark.parametrize("module", [adagrad, reference], ids=["native", "reference"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_the_functions_refuse_a_bad_option_by_name_and_write_nothing(
    module: Any, sparse: bool, bad: dict[str, Any], error: type, message: str
) -> None:
    table, n, z = np.ones((4, 2)), np.full((4, 2), 0.1), np.full((4, 2), 0.3)
    with pytest.raises(error, match=message):
        if sparse:
            module.sparse_ftrl_update(table, np.array([1, 1]), np.ones((2, 2)), n, z, **bad)
        else:
            module.ftrl_update(table, np.ones((4, 2)), n, z, **bad)
    assert np.all(table == 1) and np.all(n == 0.1) and np.all(z == 0.3)


def test_a_bad_option_set_at_the_step_writes_nothing() -> None:
    w = np.ones(4)
    opt = adagrad.Ftrl([w], lr=0.1)
    opt.param_groups[0]["lr_power"] = 1.0
    with pytest.raises(ValueError, match="param group 0: lr_power must be a finite number <= 0"):
        opt.step([np.ones(4)])
    assert np.all(w == 1) and int(opt.state[0]["step"]) == 0
    assert np.all(opt.state[0]["n"] == 0.1) and np.all(opt.state[0]["z"] == 0)


BAD_ARRAYS = [
    pytest.param(lambda w, g, n, z: adagrad.ftrl_update(w, g, n.astype(np.float32), z), TypeError, "accumulator",
                 id="accumulator-dtype"),
    pytest.param(lambda w, g, n, z: adagrad.ftrl_update(w, g, n, z[:3]), ValueError, "linear", id="linear-shape"),
    pytest.param(lambda w, g, n, z: adagrad.ftrl_update(w, g, n, n), ValueError, "overlap|share", id="aliased-states"),
    pytest.param(lambda w, g, n, z: adagrad.ftrl_update(w, g[:3], n, z), ValueError, "grad", id="grad-shape"),
    pytest.param(lambda w, g, n, z: adagrad.sparse_ftrl_update(w.reshape(2, 2), np.array([2]), g.reshape(2, 2)[:1],
                                                               n.reshape(2, 2), z.reshape(2, 2)),
                 ValueError, "out of range", id="sparse-index"),
    pytest.param(lambda w, g, n, z: adagrad.sparse_ftrl_update(w.reshape(2, 2), np.array([1]), g.reshape(2, 2)[:1],
                                                               n[:2], z.reshape(2, 2)),
                 ValueError, "row-wise state is Adagrad's alone", id="sparse-rowwise"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "message"), BAD_ARRAYS)
def test_bad_arrays_are_refused_by_name_and_nothing_is_written(call: Any, error: type, message: str) -> None:
    w, g, n, z = np.ones(4), np.full(4, 0.5), np.full(4, 0.1), np.full(4, 0.3)
    with pytest.raises(error, match=message):
        call(w, g, n, z)
    assert np.all(w == 1) and np.all(n == 0.1) and np.all(z == 0.3)


def test_the_torch_drop_in_refuses_ftrls_own_bad_options() -> None:
    torch = pytest.importorskip("torch")
    import adagrad.torch

    w = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="lr_power must be a finite number <= 0"):
        adagrad.torch.Ftrl([w], lr_power=0.5)
    with pytest.raises(ValueError, match=r"Invalid learning rate: 0\.0"):
        adagrad.torch.Ftrl([w], lr=0.0)
