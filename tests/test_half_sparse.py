"""Sparse updates of float16 and bfloat16 tables (element-wise or row-wise state, of the table's
dtype or float32), held to the reference bit for bit: both duplicates modes, the fixed row
lengths and others, repeated rows, every ISA, 1 and 2 threads, every option; the optimizer with
SparseGrad; what 16-bit tables refuse."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import adagrad
from adagrad import reference as ref
from conftest import F16, HALF_PAIRS, assert_same_bits

PAIRS = HALF_PAIRS
DIMS = [1, 5, 16, 32, 64, 128, 200]  # 16..128: the fixed-length kernels of the sum mode
OPTIONS = [
    pytest.param({"lr": 0.1}, id="plain"),
    pytest.param({"lr": 0.1, "weight_decay": 0.01, "lr_decay": 0.05}, id="wd-decay"),
    pytest.param({"lr": 0.1, "grad_scale": 4.0}, id="scale-pow2"),
    pytest.param({"lr": 0.1, "grad_scale": 3.0}, id="scale-divide"),
]


def problem(rows: int, dim: int, k: int, dtype: Any, state_dtype: Any, rowwise: bool, seed: int) -> tuple[Any, ...]:
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((rows, dim)).astype(dtype)
    state = (rng.random(rows if rowwise else (rows, dim)) * 2).astype(state_dtype)
    ids = rng.integers(0, rows, size=k)  # repeats: k > rows
    values = rng.standard_normal((k, dim)).astype(dtype)
    return table, state, ids, values


# The reference's results per case, computed once and compared on every ISA and thread count (its
# Python loop over rows is most of this module's time).
_REFERENCE: dict[Any, list[tuple[Any, Any]]] = {}


def run_both(
    key: Any, table: Any, state: Any, batches: list[tuple[Any, Any]], duplicates: str, options: dict[str, Any]
) -> None:
    if key not in _REFERENCE:
        t_ref, s_ref, after = table.copy(), state.copy(), []
        for step, (ids, values) in enumerate(batches, start=1):
            ref.sparse_update(t_ref, ids, values, s_ref, step=step, duplicates=duplicates, **options)
            after.append((t_ref.copy(), s_ref.copy()))
        _REFERENCE[key] = after
    for step, ((ids, values), (t_ref, s_ref)) in enumerate(zip(batches, _REFERENCE[key]), start=1):
        adagrad.sparse_update(table, ids, values, state, step=step, duplicates=duplicates, **options)
        assert_same_bits(table, t_ref)
        assert_same_bits(state, s_ref)


@pytest.mark.parametrize(("dtype", "state_dtype"), PAIRS)
@pytest.mark.parametrize("rowwise", [False, True], ids=["elementwise", "rowwise"])
@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("options", OPTIONS)
def test_sparse_16bit_is_reference(
    dtype: Any, state_dtype: Any, rowwise: bool, duplicates: str, dim: int, options: dict[str, Any], isa: str
) -> None:
    table, state, _ids, _values = problem(30, dim, 60, dtype, state_dtype, rowwise, dim)
    batches = [problem(30, dim, 60, dtype, state_dtype, rowwise, 100 * dim + s)[2:] for s in range(2)]
    key = ("small", dtype, state_dtype, rowwise, duplicates, dim, tuple(sorted(options.items())))
    run_both(key, table, state, batches, duplicates, options)


@pytest.mark.parametrize(("dtype", "state_dtype"), PAIRS)
@pytest.mark.parametrize("rowwise", [False, True], ids=["elementwise", "rowwise"])
@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("dim", [32, 37])
def test_threaded_sparse_16bit_is_reference(
    dtype: Any, state_dtype: Any, rowwise: bool, duplicates: str, dim: int, isa: str, threads: int
) -> None:
    """k * dim above the parallel threshold: the rows dealt to parts, the same bits."""
    k = 2 * adagrad.cpu_info()["parallel_threshold"] // dim
    table, state, ids, values = problem(500, dim, k, dtype, state_dtype, rowwise, 7)
    key = ("threaded", dtype, state_dtype, rowwise, duplicates, dim)
    run_both(key, table, state, [(ids, values)], duplicates, {"lr": 0.05, "weight_decay": 0.01})


@pytest.mark.parametrize(("dtype", "state_dtype"), PAIRS)
def test_lazy_rows_are_the_dense_update_with_summed_grads(dtype: Any, state_dtype: Any) -> None:
    """Unique rows: the sparse step on those rows is the dense step on the table with their
    grads there and the other rows untouched (sums in float32 make repeats a float32 sum)."""
    table, state, _ids, _values = problem(40, 8, 1, dtype, state_dtype, False, 3)
    ids = np.array([3, 17, 29, 0])
    values = np.random.default_rng(4).standard_normal((4, 8)).astype(dtype)
    dense_p, dense_s = table[ids].copy(), state[ids].copy()
    untouched = np.setdiff1d(np.arange(40), ids)
    before = table[untouched].copy()
    adagrad.sparse_update(table, ids, values, state, step=1, lr=0.1)
    adagrad.update(dense_p, values.copy(), dense_s, step=1, lr=0.1)
    assert_same_bits(table[ids], dense_p)
    assert_same_bits(state[ids], dense_s)
    assert_same_bits(table[untouched], before)


@pytest.mark.parametrize(("dtype", "state_dtype"), PAIRS)
@pytest.mark.parametrize("rowwise", [False, True], ids=["elementwise", "rowwise"])
def test_optimizer_with_sparse_grads_is_reference(dtype: Any, state_dtype: Any, rowwise: bool) -> None:
    state_option = None if state_dtype == dtype else "float32"
    rng = np.random.default_rng(5)
    table, dense = rng.standard_normal((50, 12)).astype(dtype), rng.standard_normal(33).astype(dtype)
    twins = [table.copy(), dense.copy()]
    groups = [{"params": [table], "rowwise": rowwise}, {"params": [dense]}]
    twin_groups = [{"params": [twins[0]], "rowwise": rowwise}, {"params": [twins[1]]}]
    ours = adagrad.Adagrad(groups, lr=0.1, state_dtype=state_option)
    theirs = ref.Adagrad(twin_groups, lr=0.1, state_dtype=state_option)
    for _ in range(3):
        ids = rng.integers(0, 50, size=20)
        grads = [
            [adagrad.SparseGrad(ids, rng.standard_normal((20, 12)).astype(dtype))],
            [rng.standard_normal(33).astype(dtype)],
        ]
        ours.step(grads)
        theirs.step(grads)
    assert ours.state[0]["sum"].dtype == state_dtype
    assert_same_bits(table, twins[0])
    assert_same_bits(dense, twins[1])


# What 16-bit tables refused while each option was a compiled variant (their kernels' compile time):
# now runtime switches of the one kernel body, held to the reference like the others.
FORMERLY_REFUSED = [
    pytest.param({"lr": 0.1, "maximize": True}, id="maximize"),
    pytest.param({"lr": 0.1, "weight_decay": 0.1, "decoupled_weight_decay": True}, id="decoupled"),
    pytest.param({"lr": 0.1, "clip_value": 0.5}, id="clip-value"),
    pytest.param({"lr": 0.1, "eps_inside_sqrt": True, "eps": 1e-3}, id="eps-inside"),
    pytest.param({"lr": 0.1, "max_grad_norm": 1.0}, id="norm-clip"),
]


@pytest.mark.parametrize(("dtype", "state_dtype"), PAIRS)
@pytest.mark.parametrize("rowwise", [False, True], ids=["elementwise", "rowwise"])
@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("dim", [16, 37])
@pytest.mark.parametrize("options", FORMERLY_REFUSED)
def test_16bit_tables_take_the_variants_they_refused(
    dtype: Any, state_dtype: Any, rowwise: bool, duplicates: str, dim: int, options: dict[str, Any], isa: str
) -> None:
    table, state, _ids, _values = problem(30, dim, 60, dtype, state_dtype, rowwise, dim)
    batches = [problem(30, dim, 60, dtype, state_dtype, rowwise, 100 * dim + s)[2:] for s in range(2)]
    key = ("formerly refused", dtype, state_dtype, rowwise, duplicates, dim, tuple(sorted(options.items())))
    run_both(key, table, state, batches, duplicates, options)


def test_16bit_tables_refuse_mismatched_dtypes() -> None:
    table, state, ids, values = problem(10, 4, 6, F16, F16, False, 0)
    with pytest.raises(TypeError, match="must have the dtype of"):
        adagrad.sparse_update(table, ids, values.astype(np.float32), state, step=1)
    with pytest.raises(TypeError, match="or float32"):
        adagrad.sparse_update(table, ids, values, state.astype(np.float64), step=1)
