"""adagrad.ProximalAdagrad, adagrad.AdagradDA and adagrad.Ftrl: TensorFlow's published numbers, the
optimizer against the reference, exact zeros, state_dict and checkpoints, bad input."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import adagrad
from adagrad import reference
from conftest import assert_same_bits
from test_dense_bitwise import random_grad

# TensorFlow's own tests (proximal_adagrad_test.py in float32, adagrad_da_test.py in float32 and
# float64): lr 3.0, initial accumulators 0.1, var0 with grads [0.1, 0.2] and var1 with [0.01, 0.02]
# at every step.
F32, BOTH = [np.float32], [np.float32, np.float64]
TF_ORACLES = [
    pytest.param(
        adagrad.ProximalAdagrad,
        F32,
        {},
        [0, 0],
        [0, 0],
        3,
        [-2.60260963, -4.29698515],
        [-0.28432083, -0.56694895],
        id="prox-plain",
    ),
    pytest.param(
        adagrad.ProximalAdagrad,
        F32,
        {},
        [1, 2],
        [4, 3],
        3,
        [-1.60261, -2.296985],
        [3.715679, 2.433051],
        id="prox-plain-2",
    ),
    pytest.param(
        adagrad.ProximalAdagrad,
        F32,
        {"l1": 0.001},
        [1, 2],
        [4, 3],
        10,
        [-6.663634, -9.190331],
        [2.959304, 1.029232],
        id="prox-l1",
    ),
    pytest.param(
        adagrad.ProximalAdagrad,
        F32,
        {"l1": 0.001, "l2": 2.0},
        [1, 2],
        [4, 3],
        10,
        [-0.0495, -0.0995],
        [-0.0045, -0.0095],
        id="prox-l1-l2",
    ),
    pytest.param(
        adagrad.AdagradDA, BOTH, {}, [1, 2], [4, 3], 1, [-0.904534, -1.603567], [-0.094821, -0.189358], id="da-plain"
    ),
    pytest.param(
        adagrad.AdagradDA,
        BOTH,
        {"l1": 0.001},
        [1, 2],
        [4, 3],
        1,
        [-0.895489, -1.59555],
        [-0.085339, -0.17989],
        id="da-l1",
    ),
    pytest.param(
        adagrad.AdagradDA,
        BOTH,
        {"l1": 0.001, "l2": 2.0},
        [1, 2],
        [4, 3],
        1,
        [-0.046907, -0.093659],
        [-0.004275, -0.009023],
        id="da-l1-l2",
    ),
]


@pytest.mark.parametrize("cls, dtypes, options, start0, start1, steps, expected0, expected1", TF_ORACLES)
def test_tensorflows_published_numbers(
    cls: type,
    dtypes: list[type],
    options: dict[str, float],
    start0: list[float],
    start1: list[float],
    steps: int,
    expected0: list[float],
    expected1: list[float],
) -> None:
    for dtype in dtypes:
        check_oracle(cls, dtype, options, start0, start1, steps, expected0, expected1)


def check_oracle(
    cls: type,
    dtype: type,
    options: dict[str, float],
    start0: list[float],
    start1: list[float],
    steps: int,
    expected0: list[float],
    expected1: list[float],
) -> None:
    w0, w1 = np.array(start0, dtype), np.array(start1, dtype)
    opt = cls([w0, w1], lr=3.0, **options)
    for _ in range(steps):
        assert opt.step([np.array([0.1, 0.2], dtype), np.array([0.01, 0.02], dtype)]) is True
    # The published values are rounded to 4-9 decimals: equal to the last decimal given, give or
    # take 4 units in the last place of the dtype (TensorFlow's rsqrt is not correctly rounded).
    for got, want in ((w0, expected0), (w1, expected1)):
        for g, v in zip(got, want):
            decimals = len(f"{abs(v):.9g}".split(".")[1])
            assert abs(float(g) - v) <= 0.5 * 10.0**-decimals + 4 * abs(float(np.spacing(dtype(v)))), (g, v)


CLASSES = [
    pytest.param(adagrad.ProximalAdagrad, reference.ProximalAdagrad, id="proximal"),
    pytest.param(adagrad.AdagradDA, reference.AdagradDA, id="da"),
    pytest.param(adagrad.Ftrl, reference.Ftrl, id="ftrl"),
]


def make_params(rng: np.random.Generator, dtype: type) -> dict[str, np.ndarray]:
    return {
        "w": (rng.standard_normal(1031) * 0.3).astype(dtype),
        "bias": np.zeros(1, dtype),
        "emb": (rng.standard_normal((50, 16)) * 0.1).astype(dtype),
        "emb_odd": (rng.standard_normal((30, 5)) * 0.1).astype(dtype),
    }


def grads_for(rng: np.random.Generator, params: dict[str, np.ndarray], t: int) -> dict[str, Any]:
    dtype = params["w"].dtype
    ids = np.minimum(rng.zipf(1.4, size=20) - 1, 49)
    odd_ids = rng.integers(0, 30, size=7).astype(np.int32)
    return {
        "w": random_grad(rng, params["w"].shape, dtype),
        "bias": None if t % 3 == 0 else random_grad(rng, (1,), dtype),  # skipped now and then
        "emb": adagrad.SparseGrad(ids, random_grad(rng, (20, 16), dtype)),
        "emb_odd": (odd_ids, random_grad(rng, (7, 5), dtype)),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("native_cls, reference_cls", CLASSES)
def test_optimizer_matches_reference_bit_for_bit(
    native_cls: type, reference_cls: type, dtype: type, threads: int
) -> None:
    """Two param groups (one sequential duplicates), dense and sparse grads, a skipped param."""
    rng = np.random.default_rng(7)
    params = make_params(rng, dtype)
    copies = {k: v.copy() for k, v in params.items()}

    def groups(p: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        return [
            {"params": {"w": p["w"], "bias": p["bias"]}, "l1": 0.002, "l2": 0.01},
            {"params": {"emb": p["emb"], "emb_odd": p["emb_odd"]}, "lr": 0.05, "duplicates": "sequential"},
        ]

    native, ref = native_cls(groups(params), lr=0.2, l1=0.001), reference_cls(groups(copies), lr=0.2, l1=0.001)
    for t in range(1, 26):
        grads = grads_for(rng, params, t)
        split = [{"w": grads["w"], "bias": grads["bias"]}, {"emb": grads["emb"], "emb_odd": grads["emb_odd"]}]
        assert native.step(split) is True
        assert ref.step(split) is True
    for key in params:
        assert_same_bits(params[key], copies[key])
        for name in native.STATE_NAMES:
            assert_same_bits(native.state[key][name], ref.state[key][name])
        assert int(native.state[key]["step"]) == int(ref.state[key]["step"])
    assert int(native.state["bias"]["step"]) == 25 - 8  # None at t = 3, 6, ..., 24


def test_dual_averaging_zeroes_exactly_the_weights_whose_average_gradient_is_within_l1() -> None:
    """Grads on a grid of 1/64: every grad sum is exact, so the zero set is known independently."""
    rng = np.random.default_rng(3)
    n, l1, steps = 4000, 0.05, 30
    w = rng.standard_normal(n)
    opt = adagrad.AdagradDA([w], lr=0.5, l1=l1)
    total = np.zeros(n)
    bias = rng.uniform(-0.12, 0.12, size=n)  # each weight's mean gradient
    for _ in range(steps):
        g = np.round((bias + rng.normal(0, 0.05, size=n)) * 64) / 64
        total += g
        opt.step([g])
    assert_same_bits(opt.state[0]["grad_sum"], total)
    zero = np.abs(total) <= l1 * steps
    assert 0.2 < zero.mean() < 0.8  # both kinds are there
    assert np.all(w[zero] == 0)
    assert np.all(w[~zero] != 0)
    assert np.all(np.sign(w[~zero]) == -np.sign(total[~zero]))


def test_proximal_keeps_weights_with_small_gradients_at_exactly_zero() -> None:
    """From 0, a weight whose every |g| < l1 lands within eta * l1 of 0 at each step: exactly 0."""
    rng = np.random.default_rng(4)
    n, l1 = 3000, 0.1
    relevant = rng.random(n) < 0.3
    w = np.zeros(n)
    opt = adagrad.ProximalAdagrad([w], lr=0.3, l1=l1)
    for _ in range(40):
        g = np.where(relevant, 0.5, rng.uniform(-0.099, 0.099, size=n))
        opt.step([g])
    assert np.all(w[~relevant] == 0)
    assert np.all(w[relevant] < 0)
    plain = np.zeros(n)
    unregularized = adagrad.ProximalAdagrad([plain], lr=0.3)
    unregularized.step([np.full(n, 0.05)])
    assert np.all(plain != 0)  # without l1 nothing is zero


@pytest.mark.parametrize("native_cls, reference_cls", CLASSES)
def test_state_dict_and_checkpoint_resume_bit_for_bit(native_cls: type, reference_cls: type, tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    params = make_params(rng, np.float32)
    opt = native_cls(params, lr=0.1, l1=0.001, l2=0.01)
    for t in range(1, 6):
        opt.step(grads_for(rng, params, t))
    saved_state = opt.state_dict()
    opt.save(tmp_path / "ckpt.npz", params=True)
    later = [grads_for(rng, params, t) for t in range(6, 10)]
    for g in later:
        opt.step(g)
    expected = {k: v.copy() for k, v in params.items()}

    # Resumed from the file, into fresh arrays: the same bits as never stopping.
    fresh = {k: np.zeros_like(v) for k, v in params.items()}
    resumed = native_cls(fresh, lr=0.5)  # hyper-parameters come from the file
    resumed.load(tmp_path / "ckpt.npz")
    assert resumed.param_groups[0]["l1"] == 0.001 and resumed.param_groups[0]["lr"] == 0.1
    for g in later:
        resumed.step(g)
    for k in params:
        assert_same_bits(fresh[k], expected[k])

    # From the state_dict, into the arrays as they were.
    again = {k: v.copy() for k, v in params.items()}
    other = native_cls(again, lr=0.1, l1=0.001, l2=0.01)
    other.load_state_dict(saved_state)
    assert set(other.state["w"]) == {*native_cls.STATE_NAMES, "step"}
    assert int(other.state["w"]["step"]) == 5


def test_a_checkpoint_of_another_rule_is_refused(tmp_path: Path) -> None:
    w = np.ones(4)
    adagrad.ProximalAdagrad([w], lr=0.1).save(tmp_path / "p.npz")
    adagrad.Adagrad([w]).save(tmp_path / "a.npz")
    da = adagrad.AdagradDA([w], lr=0.1)
    before = da.state_dict()
    for name in ("p.npz", "a.npz"):
        with pytest.raises(ValueError, match=re.escape("expected 'adagrad.AdagradDA checkpoint'")):
            da.load(tmp_path / name)
    assert_same_bits(da.state[0]["sum"], before["state"][0]["sum"])
    with pytest.raises(ValueError, match=re.escape("expected 'adagrad.Adagrad checkpoint'")):
        adagrad.Adagrad([w]).load(tmp_path / "p.npz")


@pytest.mark.parametrize("nonfinite", ["skip", "raise"])
@pytest.mark.parametrize("native_cls, reference_cls", CLASSES)
def test_nonfinite_grads_change_nothing(native_cls: type, reference_cls: type, nonfinite: str) -> None:
    table, w = np.ones((5, 3)), np.ones(7)
    opt = native_cls({"table": table, "w": w}, lr=0.1, nonfinite=nonfinite)
    before = opt.state_dict()
    bad = np.ones((2, 3))
    bad[1, 2] = np.nan
    grads = {"table": (np.array([0, 3]), bad), "w": np.ones(7)}
    if nonfinite == "skip":
        assert opt.step(grads) is False
    else:
        with pytest.raises(
            adagrad.NonFiniteGradError, match=r"grad of 'table' holds a non-finite value \(nan at index \(1, 2\)\)"
        ):
            opt.step(grads)
    assert np.all(table == 1) and np.all(w == 1)
    for key in ("table", "w"):
        assert int(opt.state[key]["step"]) == 0
        for name in native_cls.STATE_NAMES:
            assert_same_bits(opt.state[key][name], before["state"][key][name])


BAD_OPTIONS = [
    # FTRL divides by lr: its lr must be > 0
    pytest.param({"lr": -0.1}, ValueError, "lr must be a finite number >=? 0", id="negative-lr"),
    pytest.param({"lr": float("nan")}, ValueError, "lr must be a finite number >=? 0", id="nan-lr"),
    pytest.param({"lr": 0.1, "l1": -1e-3}, ValueError, "l1 must be a finite number >= 0", id="negative-l1"),
    pytest.param({"lr": 0.1, "l1": float("inf")}, ValueError, "l1 must be a finite number >= 0", id="inf-l1"),
    pytest.param({"lr": 0.1, "l2": -2.0}, ValueError, "l2 must be a finite number >= 0", id="negative-l2"),
    pytest.param({"lr": 0.1, "l2": "0.5"}, TypeError, "l2 must be a real number", id="str-l2"),
    pytest.param(
        {"lr": 0.1, "duplicates": "max"}, ValueError, "duplicates must be 'sum' or 'sequential'", id="duplicates"
    ),
]


@pytest.mark.parametrize("options, error, message", BAD_OPTIONS)
@pytest.mark.parametrize("native_cls, reference_cls", CLASSES)
def test_bad_options_raise(
    native_cls: type, reference_cls: type, options: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        native_cls([np.ones(3)], **options)
    with pytest.raises(error, match="param group 1: " + message):
        native_cls([{"params": [np.ones(3)]}, {"params": [np.ones(2)], **options}], lr=0.1)


@pytest.mark.parametrize(
    "cls, name",
    [
        (adagrad.ProximalAdagrad, "initial_accumulator_value"),
        (adagrad.AdagradDA, "initial_gradient_squared_accumulator_value"),
    ],
)
@pytest.mark.parametrize("value", [0.0, -0.1, float("nan")])
def test_initial_accumulator_must_be_positive(cls: type, name: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{name} must be a finite number > 0"):
        cls([np.ones(3)], lr=0.1, **{name: value})


def test_a_changed_group_option_is_checked_at_the_step_with_nothing_written() -> None:
    w = np.ones(4)
    opt = adagrad.AdagradDA([w], lr=0.1)
    opt.param_groups[0]["l1"] = -1.0
    with pytest.raises(ValueError, match="param group 0: l1 must be a finite number >= 0"):
        opt.step([np.ones(4)])
    assert np.all(w == 1) and int(opt.state[0]["step"]) == 0
    assert np.all(opt.state[0]["grad_sum"] == 0)


FUNCTIONAL_BAD = [
    pytest.param(lambda p, g, s: adagrad.proximal_update(p, g, s, lr=-1.0), ValueError, "lr must be", id="prox-lr"),
    pytest.param(
        lambda p, g, s: adagrad.proximal_update(p, g, s.astype(np.float32), lr=0.1), TypeError, "dtype", id="prox-dtype"
    ),
    pytest.param(lambda p, g, s: adagrad.proximal_update(p, g[:3], s, lr=0.1), ValueError, "shape", id="prox-shape"),
    pytest.param(
        lambda p, g, s: adagrad.da_update(p, g, s.copy(), s, step=0, lr=0.1),
        ValueError,
        "step must be >= 1",
        id="da-step",
    ),
    pytest.param(
        lambda p, g, s: adagrad.da_update(p, g, p, s, step=1, lr=0.1), ValueError, "overlap|share", id="da-alias"
    ),
    pytest.param(
        lambda p, g, s: adagrad.da_update(p, g, np.zeros(5), s, step=1, lr=0.1),
        ValueError,
        "grad_sum has shape",
        id="da-grad-sum-shape",
    ),
    pytest.param(
        lambda p, g, s: adagrad.sparse_proximal_update(
            p.reshape(2, 2), np.array([2]), g.reshape(2, 2)[:1], s.reshape(2, 2), lr=0.1
        ),
        ValueError,
        "out of range",
        id="sparse-index",
    ),
    pytest.param(
        lambda p, g, s: adagrad.sparse_proximal_update(
            p.reshape(2, 2), np.array([1]), g.reshape(2, 2)[:1], s[:2], lr=0.1
        ),
        ValueError,
        "row-wise state is Adagrad's alone",
        id="sparse-rowwise",
    ),
    pytest.param(
        lambda p, g, s: adagrad.sparse_da_update(
            p.reshape(2, 2),
            np.array([0]),
            g.reshape(2, 2)[:1],
            s.reshape(2, 2).copy(),
            s.reshape(2, 2),
            step=1,
            lr=0.1,
            l1=-1.0,
        ),
        ValueError,
        "l1 must be",
        id="sparse-da-l1",
    ),
]


@pytest.mark.parametrize("call, error, message", FUNCTIONAL_BAD)
def test_functional_bad_input_writes_nothing(call: Any, error: type, message: str) -> None:
    p, g, s = np.ones(4), np.full(4, 0.5), np.full(4, 0.1)
    with pytest.raises(error, match=message):
        call(p, g, s)
    assert np.all(p == 1) and np.all(s == 0.1)
