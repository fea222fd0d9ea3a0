"""Sparse (row-indexed) Adagrad: native vs reference bit for bit, coalesced == dense-equivalent,
torch's sparse path within a few ulp, and bad input leaving everything untouched."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import adagrad
from conftest import assert_same_bits

ROWS = 300
DIMS = [1, 3, 8, 16, 17, 64, 300]
OPTIONS = {
    "default": {},
    "wd-max-decay": {"weight_decay": 0.1, "maximize": True, "lr_decay": 0.05, "lr": 0.05},
    "inside-sqrt": {"eps_inside_sqrt": True, "eps": 1e-7, "lr": 0.2},
}


def zipf_indices(rng: np.random.Generator, k: int, dtype: type, heavy: bool) -> np.ndarray:
    """Zipf(1.2) row ids (many repeats) or distinct ones (none)."""
    if heavy:
        return ((rng.zipf(1.2, size=k) - 1) % ROWS).astype(dtype)
    return rng.permutation(ROWS)[:k].astype(dtype)


def problem(d: int, dtype: type, rowwise: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((ROWS, d)).astype(dtype)
    state = (np.full(ROWS, 0.1) if rowwise else np.full((ROWS, d), 0.1)).astype(dtype)
    return table, state


CASES = [
    pytest.param(
        d,
        dtype,
        rowwise,
        duplicates,
        idx_dtype,
        heavy,
        opt,
        id=f"D{d}-{dtype.__name__}-{'rowwise' if rowwise else 'elementwise'}-{duplicates}-"
        f"{idx_dtype.__name__}-{'zipf' if heavy else 'distinct'}-{opt}",
    )
    for d, (dtype, idx_dtype), rowwise, duplicates, heavy, opt in itertools.product(
        DIMS,
        [(np.float32, np.int32), (np.float64, np.int64), (np.float32, np.int64)],
        [False, True],
        ["sum", "sequential"],
        [True, False],
        OPTIONS,
    )
    if not (heavy is False and duplicates == "sequential")  # without repeats the two modes coincide
    and not (idx_dtype == np.int64 and dtype == np.float32 and opt != "default")  # the pairing is enough
]


@pytest.mark.parametrize("d, dtype, rowwise, duplicates, idx_dtype, heavy, opt", CASES)
def test_native_matches_reference(
    d: int, dtype: type, rowwise: bool, duplicates: str, idx_dtype: type, heavy: bool, opt: str
) -> None:
    rng = np.random.default_rng(d)
    table, state = problem(d, dtype, rowwise)
    ref_table, ref_state = table.copy(), state.copy()
    for step in (1, 2):
        idx = zipf_indices(rng, 120, idx_dtype, heavy)
        values = rng.standard_normal((idx.size, d)).astype(dtype)
        kwargs: dict[str, Any] = {"step": step, "duplicates": duplicates, **OPTIONS[opt]}
        adagrad.sparse_update(table, idx, values, state, **kwargs)
        adagrad.reference.sparse_update(ref_table, idx, values, ref_state, **kwargs)
    assert_same_bits(state, ref_state)
    assert_same_bits(table, ref_table)


@pytest.mark.parametrize("rowwise", [False, True], ids=["elementwise", "rowwise"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
def test_every_isa_and_thread_count(rowwise: bool, dtype: type, isa: str, threads: int) -> None:
    """Large enough to be split over the threads; the bits may not depend on either."""
    rng = np.random.default_rng(5)
    table, state = problem(64, dtype, rowwise)
    big_table = np.tile(table, (40, 1))
    big_state = np.tile(state, 40) if rowwise else np.tile(state, (40, 1))
    ref_table, ref_state = big_table.copy(), big_state.copy()
    idx = ((rng.zipf(1.2, size=4000) - 1) % big_table.shape[0]).astype(np.int64)
    values = rng.standard_normal((idx.size, 64)).astype(dtype)
    adagrad.sparse_update(big_table, idx, values, big_state, step=1, weight_decay=0.01)
    adagrad.reference.sparse_update(ref_table, idx, values, ref_state, step=1, weight_decay=0.01)
    assert_same_bits(big_state, ref_state)
    assert_same_bits(big_table, ref_table)


@pytest.mark.parametrize("opt", OPTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
def test_coalesced_equals_dense_update_of_touched_rows(dtype: type, opt: str) -> None:
    rng = np.random.default_rng(1)
    table, state = problem(17, dtype, rowwise=False)
    idx = zipf_indices(rng, 500, np.int64, heavy=True)
    values = rng.standard_normal((idx.size, 17)).astype(dtype)
    dense_grad = np.zeros_like(table)
    np.add.at(dense_grad, idx, values)  # input order, from +0
    touched = np.unique(idx)
    expected_rows, expected_state = table[touched].copy(), state[touched].copy()
    adagrad.update(expected_rows, dense_grad[touched], expected_state, step=1, **OPTIONS[opt])
    untouched = np.setdiff1d(np.arange(ROWS), touched)
    before_untouched = table[untouched].copy(), state[untouched].copy()

    adagrad.sparse_update(table, idx, values, state, step=1, **OPTIONS[opt])
    assert_same_bits(table[touched], expected_rows)
    assert_same_bits(state[touched], expected_state)
    assert_same_bits(table[untouched], before_untouched[0])
    assert_same_bits(state[untouched], before_untouched[1])


@pytest.mark.parametrize("rowwise", [False, True], ids=["elementwise", "rowwise"])
def test_empty_gradient_changes_nothing(rowwise: bool) -> None:
    table, state = problem(8, np.float32, rowwise)
    before = table.copy(), state.copy()
    adagrad.sparse_update(table, np.zeros(0, np.int64), np.zeros((0, 8), np.float32), state, step=1, weight_decay=0.5)
    assert_same_bits(table, before[0])
    assert_same_bits(state, before[1])


def test_rowwise_accumulates_the_mean_square() -> None:
    """By hand: one row, g = (3, 4): s += (9 + 16) / 2, theta -= lr * g / sqrt(s)."""
    table = np.zeros((2, 2))
    state = np.zeros(2)
    adagrad.sparse_update(table, np.array([1]), np.array([[3.0, 4.0]]), state, step=1, lr=1.0, eps=0.0)
    assert state.tolist() == [0.0, 12.5]
    np.testing.assert_allclose(table[1], [-3 / np.sqrt(12.5), -4 / np.sqrt(12.5)], rtol=1e-15)
    assert table[0].tolist() == [0.0, 0.0]


try:
    import torch
except ImportError:
    torch = None


@pytest.mark.skipif(torch is None, reason="torch is not installed")
@pytest.mark.parametrize("heavy", [False, True], ids=["distinct", "zipf"])
@pytest.mark.parametrize("module", ["Embedding", "EmbeddingBag"])
def test_close_to_torch_sparse_adagrad(module: str, heavy: bool) -> None:
    """torch's sparse path is not correctly rounded (it squares without fma and divides before
    scaling), so each step is compared from the same starting point. Distinct indices: a few ulp
    (the state sum itself; each weight to a few ulp of its update plus the rounding of the
    result). Repeated indices: torch's coalesce() adds the repeats in its own order, we add them in
    input order, and with cancellation that moves the sum by more than a few ulp: 1e-5 relative."""
    assert torch is not None
    rng = np.random.default_rng(3)
    table, _ = problem(16, np.float32, rowwise=False)
    state = np.zeros_like(table)
    layer = (torch.nn.Embedding if module == "Embedding" else torch.nn.EmbeddingBag)(ROWS, 16, sparse=True)
    if module == "EmbeddingBag":
        layer.mode = "sum"
    opt = torch.optim.Adagrad(layer.parameters(), lr=0.1)
    torch.sparse.check_sparse_tensor_invariants.disable()  # explicit, as torch asks; the indices are valid
    for step in range(1, 11):
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(table))
        if step > 1:
            opt.state[layer.weight]["sum"].copy_(torch.from_numpy(state))
        idx = zipf_indices(rng, 64, np.int64, heavy=heavy)
        upstream = rng.standard_normal((idx.size, 16)).astype(np.float32)
        opt.zero_grad()
        if module == "Embedding":
            out = layer(torch.from_numpy(idx))
        else:
            out = layer(torch.from_numpy(idx), torch.arange(idx.size))  # one index per bag
        (out * torch.from_numpy(upstream)).sum().backward()
        opt.step()
        before = table.copy()
        adagrad.sparse_update(table, idx, upstream, state, step=step, lr=0.1)
        theirs_state, theirs = opt.state[layer.weight]["sum"].numpy(), layer.weight.detach().numpy()
        delta = table.astype(np.float64) - before
        assert (delta != 0).any()
        if heavy:
            np.testing.assert_allclose(state, theirs_state, rtol=1e-5, atol=0)
            np.testing.assert_allclose(table, theirs, rtol=1e-5, atol=1e-7)
        else:
            np.testing.assert_array_max_ulp(state, theirs_state, maxulp=4)
            allowed = 4 * np.spacing(np.abs(delta).astype(np.float32)) + np.spacing(np.abs(table))
            assert (np.abs(table.astype(np.float64) - theirs) <= allowed).all()


def good_inputs() -> dict[str, Any]:
    table = np.zeros((10, 4), np.float32)
    return {
        "table": table,
        "indices": np.array([1, 9, 1]),
        "values": np.ones((3, 4), np.float32),
        "state": np.zeros((10, 4), np.float32),
    }


BAD_INPUTS = [
    pytest.param({"indices": np.array([1, 10, 2])}, ValueError, r"indices\[1\] = 10 is out of range", id="index-R"),
    pytest.param(
        {"indices": np.array([1, 2, -1])}, ValueError, r"indices\[2\] = -1 is out of range", id="index-negative"
    ),
    pytest.param(
        {"indices": np.array([1.0, 2.0, 3.0])}, TypeError, "indices must have dtype int32 or int64", id="float-indices"
    ),
    pytest.param(
        {"indices": np.array([True, False, True])},
        TypeError,
        "indices must have dtype int32 or int64",
        id="bool-indices",
    ),
    pytest.param({"indices": [1, 2, 3]}, TypeError, "indices must be a 1-D numpy.ndarray", id="list-indices"),
    pytest.param({"indices": np.array([[1, 2, 3]])}, ValueError, "indices must be 1-D", id="2d-indices"),
    pytest.param(
        {"indices": np.array([1, 2])},
        ValueError,
        r"values must be C-contiguous of shape \(len\(indices\)",
        id="length-mismatch",
    ),
    pytest.param(
        {"values": np.ones((3, 5), np.float32)}, ValueError, "values must be C-contiguous of shape", id="values-dim"
    ),
    pytest.param(
        {"values": np.ones((3, 4), np.float64)}, TypeError, "values must have the dtype of table", id="values-dtype"
    ),
    pytest.param(
        {"values": np.ones((3, 4), np.int32)},
        TypeError,
        "values must have dtype float32, float64, float16 or bfloat16",
        id="values-int",
    ),
    pytest.param(
        {"state": np.zeros((10, 3), np.float32)}, ValueError, r"state must have shape \(rows, dim\)", id="state-shape"
    ),
    pytest.param({"state": np.zeros(9, np.float32)}, ValueError, r"state must have shape", id="rowwise-state-length"),
    pytest.param(
        {"state": np.zeros((10, 4), np.float64)}, TypeError, "state must have the dtype of table", id="state-dtype"
    ),
    pytest.param(
        {"table": np.zeros(40, np.float32)}, ValueError, "table must be a 2-D C-contiguous array", id="table-1d"
    ),
    pytest.param(
        {"table": np.zeros((4, 10), np.float32).T}, ValueError, "table must be a 2-D C-contiguous", id="table-fortran"
    ),
    pytest.param({"duplicates": "mean"}, ValueError, "duplicates must be 'sum' or 'sequential'", id="mode"),
    pytest.param({"lr": -1.0}, ValueError, "lr must be a finite number >= 0", id="lr"),
    pytest.param({"step": 0}, ValueError, "step must be >= 1", id="step"),
]


@pytest.mark.parametrize("change, error, message", BAD_INPUTS)
def test_bad_input_raises_and_changes_nothing(change: dict[str, Any], error: type, message: str) -> None:
    inputs = good_inputs()
    inputs["table"][:] = 1.0
    kwargs: dict[str, Any] = {"step": 1}
    for key, value in change.items():
        (inputs if key in inputs else kwargs).__setitem__(key, value)
    snapshots = {k: v.copy() for k, v in inputs.items() if isinstance(v, np.ndarray)}
    with pytest.raises(error, match=message):
        adagrad.sparse_update(inputs["table"], inputs["indices"], inputs["values"], inputs["state"], **kwargs)
    for key, before in snapshots.items():
        assert_same_bits(inputs[key], before) if before.dtype.kind == "f" else np.testing.assert_array_equal(
            inputs[key], before
        )


def test_values_aliasing_the_table_is_refused() -> None:
    table = np.zeros((10, 4), np.float32)
    with pytest.raises(ValueError, match="share memory"):
        adagrad.sparse_update(table, np.array([0, 1]), table[2:4], np.zeros_like(table), step=1)
