"""Sparse gradients through adagrad.Adagrad: mixed with dense ones in one all-or-nothing step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import adagrad
from conftest import assert_same_bits

ROWS, DIM = 500, 16


def model(dtype: type = np.float32) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "emb": rng.standard_normal((ROWS, DIM)).astype(dtype),
        "rw": rng.standard_normal((ROWS, DIM)).astype(dtype),
        "w": rng.standard_normal(DIM).astype(dtype),
    }


def groups(params: dict[str, np.ndarray], duplicates: str = "sum") -> list[dict[str, Any]]:
    return [
        {"params": {"emb": params["emb"]}, "duplicates": duplicates, "lr_decay": 0.1},
        {"params": {"rw": params["rw"]}, "rowwise": True, "weight_decay": 0.01},
        {"params": {"w": params["w"]}, "lr": 0.05},
    ]


def batch(rng: np.random.Generator, dtype: type, grad_type: type = adagrad.SparseGrad) -> list[dict[str, Any]]:
    ids = (rng.zipf(1.3, size=64) - 1) % ROWS
    rows = rng.standard_normal((64, DIM)).astype(dtype)
    return [
        {"emb": grad_type(ids, rows)},
        {"rw": grad_type(ids[::-1].copy(), rows[::-1].copy())},
        {"w": rng.standard_normal(DIM).astype(dtype)},
    ]


@pytest.mark.parametrize("grad_type", [adagrad.SparseGrad, tuple], ids=["SparseGrad", "tuple"])
@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
def test_mixed_step_matches_the_functional_calls(dtype: type, duplicates: str, grad_type: Any) -> None:
    params, expected = model(dtype), model(dtype)
    opt = adagrad.Adagrad(groups(params, duplicates), lr=0.1)
    sums = {"emb": np.zeros((ROWS, DIM), dtype), "rw": np.zeros(ROWS, dtype), "w": np.zeros(DIM, dtype)}
    rng = np.random.default_rng(1)
    for t in range(1, 4):
        grads = batch(rng, dtype, (lambda i, v: (i, v)) if grad_type is tuple else grad_type)
        opt.step(grads)
        (emb_ids, emb_rows), (rw_ids, rw_rows), w_grad = grads[0]["emb"], grads[1]["rw"], grads[2]["w"]
        adagrad.sparse_update(
            expected["emb"], emb_ids, emb_rows, sums["emb"], step=t, lr=0.1, lr_decay=0.1, duplicates=duplicates
        )
        adagrad.sparse_update(expected["rw"], rw_ids, rw_rows, sums["rw"], step=t, lr=0.1, weight_decay=0.01)
        adagrad.update(expected["w"], w_grad, sums["w"], step=t, lr=0.05)
    for name in params:
        assert_same_bits(params[name], expected[name])
        assert_same_bits(opt.state[name]["sum"], sums[name])
        assert int(opt.state[name]["step"]) == 3
    assert opt.state["rw"]["sum"].shape == (ROWS,)


def test_native_and_reference_optimizers_agree(isa: str, threads: int) -> None:
    params, ref_params = model(), model()
    native = adagrad.Adagrad(groups(params), lr=0.1)
    reference = adagrad.reference.Adagrad(groups(ref_params), lr=0.1)
    rng = np.random.default_rng(2)
    for _ in range(3):
        grads = batch(rng, np.float32)
        native.step(grads)
        reference.step(grads)
    for name in params:
        assert_same_bits(params[name], ref_params[name])
        assert_same_bits(native.state[name]["sum"], reference.state[name]["sum"])


BAD_SPARSE = [
    pytest.param(
        lambda ids, rows: adagrad.SparseGrad(np.append(ids[:-1], ROWS), rows),
        ValueError,
        r"grad indices of 'rw'\[63\] = 500 is out of range",
        id="index-out-of-range",
    ),
    pytest.param(
        lambda ids, rows: adagrad.SparseGrad(ids.astype(np.float32), rows),
        TypeError,
        "grad indices of 'rw' must have dtype int32 or int64",
        id="float-indices",
    ),
    pytest.param(
        lambda ids, rows: adagrad.SparseGrad(ids, np.ascontiguousarray(rows[:, :3])),
        ValueError,
        r"grad of 'rw' must be C-contiguous of shape \(len\(indices\), dim\)",
        id="values-shape",
    ),
    pytest.param(
        lambda ids, rows: (ids, rows, rows), ValueError, "must be an array, or \\(indices, values\\)", id="three-tuple"
    ),
    pytest.param(
        lambda ids, rows: np.zeros((ROWS, DIM), np.float32),
        ValueError,
        "param 'rw' keeps row-wise state",
        id="dense-grad-for-rowwise-param",
    ),
]


@pytest.mark.parametrize("make_bad, error, message", BAD_SPARSE)
def test_a_bad_sparse_grad_changes_nothing(make_bad: Any, error: type, message: str) -> None:
    params = model()
    opt = adagrad.Adagrad(groups(params), lr=0.1)
    rng = np.random.default_rng(3)
    opt.step(batch(rng, np.float32))
    before = {k: v.copy() for k, v in params.items()}
    state_before = {k: (v["sum"].copy(), int(v["step"])) for k, v in opt.state.items()}
    grads = batch(rng, np.float32)
    ids, rows = grads[1]["rw"]
    grads[1]["rw"] = make_bad(ids, rows)
    with pytest.raises(error, match=message):
        opt.step(grads)
    for name in params:
        assert_same_bits(params[name], before[name])
        assert_same_bits(opt.state[name]["sum"], state_before[name][0])
        assert int(opt.state[name]["step"]) == state_before[name][1]


@pytest.mark.parametrize(
    "group, error, message",
    [
        pytest.param(
            {"params": [np.zeros(5, np.float32)], "rowwise": True},
            ValueError,
            "rowwise=True needs 2-D params",
            id="rowwise-1d",
        ),
        pytest.param(
            {"params": [np.zeros((5, 2), np.float32)], "rowwise": 1},
            TypeError,
            "rowwise must be a bool",
            id="rowwise-int",
        ),
        pytest.param(
            {"params": [np.zeros((5, 2), np.float32)], "duplicates": "mean"},
            ValueError,
            "duplicates must be 'sum' or 'sequential'",
            id="duplicates",
        ),
    ],
)
def test_bad_sparse_options(group: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        adagrad.Adagrad([group])


def test_rowwise_state_round_trips_through_state_dict() -> None:
    params, copies = model(), model()
    opt = adagrad.Adagrad(groups(params), lr=0.1)
    rng = np.random.default_rng(4)
    opt.step(batch(rng, np.float32))
    twin = adagrad.Adagrad(groups(copies), lr=0.1)
    twin.load_state_dict(opt.state_dict())
    for name in params:
        copies[name][...] = params[name]
    grads = batch(rng, np.float32)
    opt.step(grads)
    twin.step(grads)
    for name in params:
        assert_same_bits(params[name], copies[name])
        assert_same_bits(opt.state[name]["sum"], twin.state[name]["sum"])


# --- 1-D params: one row per element (a hashed weight vector) ------------------------------------

VECTOR_RULES = [
    pytest.param(adagrad.Adagrad, adagrad.reference.Adagrad, {"lr": 0.1, "lr_decay": 0.01}, id="Adagrad"),
    pytest.param(adagrad.ProximalAdagrad, adagrad.reference.ProximalAdagrad, {"lr": 0.1, "l1": 0.01}, id="Proximal"),
    pytest.param(adagrad.AdagradDA, adagrad.reference.AdagradDA, {"lr": 0.1, "l2": 0.01}, id="AdagradDA"),
    pytest.param(adagrad.Ftrl, adagrad.reference.Ftrl, {"lr": 0.1, "l1": 0.01}, id="Ftrl"),
]


@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("native_class, reference_class, options", VECTOR_RULES)
def test_a_1d_param_takes_sparse_grads_as_one_row_per_element(
    native_class: Any, reference_class: Any, options: dict[str, Any], duplicates: str
) -> None:
    """The 1-D weight vector and its bias (dense) against the reference over the same weights as a
    (n, 1) table, whose sparse updates the reference knows; repeated ids included."""
    rng = np.random.default_rng(5)
    weights, bias = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    table, table_bias = weights.reshape(1000, 1).copy(), bias.copy()
    opt = native_class({"w": weights, "b": bias}, duplicates=duplicates, **options)
    reference = reference_class({"w": table, "b": table_bias}, duplicates=duplicates, **options)
    for _ in range(3):
        ids = rng.integers(0, 1000, size=40)
        ids[1] = ids[0]
        values = rng.standard_normal(40).astype(np.float32)
        dense = rng.standard_normal(3).astype(np.float32)
        assert opt.step({"w": adagrad.SparseGrad(ids, values), "b": dense})
        reference.step({"w": adagrad.reference.SparseGrad(ids, values.reshape(40, 1)), "b": dense})
    assert_same_bits(weights, table.reshape(1000))
    assert_same_bits(bias, table_bias)
    for name in opt.STATE_NAMES:
        assert opt.state["w"][name].shape == (1000,)
        assert_same_bits(opt.state["w"][name], reference.state["w"][name].reshape(1000))
    assert int(opt.state["w"]["step"]) == 3


def test_a_1d_param_takes_a_plain_tuple_and_two_dimensional_values() -> None:
    w, twin = np.zeros(10), np.zeros(10)
    opt, other = adagrad.Adagrad([w], lr=0.5, eps=0.0), adagrad.Adagrad([twin], lr=0.5, eps=0.0)
    ids = np.array([3, 7, 3])
    opt.step([(ids, np.array([1.0, 2.0, 3.0]))])
    other.step([adagrad.SparseGrad(ids, np.array([[1.0], [2.0], [3.0]]))])
    assert_same_bits(w, twin)
    # by hand: element 3 takes g = 4 (summed): -0.5 * 4 / sqrt(16); element 7: -0.5 * 2 / sqrt(4)
    assert w.tolist() == [0, 0, 0, -0.5, 0, 0, 0, -0.5, 0, 0]


@pytest.mark.parametrize(
    "make_grad, error, message",
    [
        pytest.param(
            lambda: adagrad.SparseGrad(np.array([1, 10]), np.ones(2)),
            ValueError,
            r"grad indices of params\[0\]\[1\] = 10 is out of range for a table of 10 rows",
            id="index-out-of-range",
        ),
        pytest.param(
            lambda: adagrad.SparseGrad(np.array([1, 2]), np.ones(3)),
            ValueError,
            r"grad of params\[0\] must be C-contiguous of shape \(len\(indices\), dim\) = \(2, 1\)",
            id="values-length",
        ),
    ],
)
def test_a_bad_sparse_grad_of_a_1d_param_changes_nothing(make_grad: Any, error: type, message: str) -> None:
    w = np.ones(10)
    opt = adagrad.Adagrad([w], lr=0.5)
    with pytest.raises(error, match=message):
        opt.step([make_grad()])
    assert w.tolist() == [1.0] * 10 and opt.state[0]["sum"].tolist() == [0.0] * 10 and int(opt.state[0]["step"]) == 0


def test_adagrad_decay_refuses_sparse_grads_of_a_1d_param_by_name() -> None:
    """Its decay counts are per row of a 2-D param; a 1-D param keeps one (as the torch drop-in)."""
    w = np.ones(10)
    opt = adagrad.AdagradDecay({"w": w}, lr=0.5)
    with pytest.raises(ValueError, match="'w': AdagradDecay takes sparse grads of a 2-D param"):
        opt.step({"w": adagrad.SparseGrad(np.array([1]), np.ones(1))})
    assert w.tolist() == [1.0] * 10 and int(opt.state["w"]["step"]) == 0
