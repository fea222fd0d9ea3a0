"""AdagradDecay: DeepRec's published cases, native = reference bit for bit (dense, sparse, every ISA,
1 and 2 threads), lazy sparse rows = the dense run with zero grads, checkpoints, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import adagrad
from adagrad import reference
from conftest import assert_same_bits
from test_composite_bitwise import random_rows
from test_dense_bitwise import random_grad

DTYPES = [np.float32, np.float64]
# Decays every 3 steps, by a rate that reaches the floor within a few periods of no gradient.
DECAY = {"lr": 0.2, "accumulator_decay_step": 3, "accumulator_decay_rate": 0.6, "initial_accumulator_value": 0.05}


def test_deeprecs_basic_case() -> None:
    """DeepRec's adagrad_decay_test (testBasic, float64): lr 1, decay every 3 steps by 0.9 from 0.1,
    4 steps of constant grads; its expectations computed from the test's own formula."""
    var0, var1 = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    opt = adagrad.AdagradDecay([var0, var1], lr=1.0, accumulator_decay_step=3, accumulator_decay_rate=0.9)
    for _ in range(4):
        opt.step([np.full(2, 0.1), np.full(2, 0.2)])
    np.testing.assert_allclose(var0, [-0.16080623, 0.83919377], rtol=0, atol=5e-9)
    np.testing.assert_allclose(var1, [1.14252102, 2.14252102], rtol=0, atol=5e-9)
    np.testing.assert_allclose(opt.state[0]["sum"], [0.128, 0.128], rtol=1e-12)
    np.testing.assert_allclose(opt.state[1]["sum"], [0.242, 0.242], rtol=1e-12)
    assert int(opt.state[0]["decay_count"][0]) == 1


def test_deeprecs_floor_case() -> None:
    """testBaseline: rate 0.6 from 1.0: the decay at step 3 (1.02 * 0.6) is held at the floor 1.0."""
    var0, var1 = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    opt = adagrad.AdagradDecay(
        [var0, var1], lr=1.0, accumulator_decay_step=3, accumulator_decay_rate=0.6, initial_accumulator_value=1.0
    )
    for _ in range(4):
        opt.step([np.full(2, 0.1), np.full(2, 0.2)])
    np.testing.assert_allclose(opt.state[0]["sum"], [1.02, 1.02], rtol=1e-12)
    np.testing.assert_allclose(opt.state[1]["sum"], [1.08, 1.08], rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_dense_like_reference(dtype: type, isa: str, threads: int) -> None:
    rng = np.random.default_rng(21)
    sizes = [1, 7, 16, 17, 33, 1000, 2**16 + 3]
    params = [(rng.standard_normal(n) * 0.5).astype(dtype) for n in sizes] + [np.ones((40, 9), dtype)]
    copies = [p.copy() for p in params]
    native, ref = adagrad.AdagradDecay(params, **DECAY), reference.AdagradDecay(copies, **DECAY)
    for t in range(1, 11):
        grads = [random_grad(rng, p.shape, dtype) if t < 4 else np.zeros_like(p) for p in params]
        assert native.step(grads) is True and ref.step(grads) is True
    for i, (p, c) in enumerate(zip(params, copies)):
        assert_same_bits(p, c)
        assert_same_bits(native.state[i]["sum"], ref.state[i]["sum"])
        assert_same_bits(native.state[i]["decay_count"], ref.state[i]["decay_count"])
    assert np.all(native.state[0]["sum"] == dtype(0.05))  # three decays of no gradient: all at the floor


@pytest.mark.parametrize("dim", [1, 5, 16, 64, 128])
@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_sparse_like_reference(dtype: type, duplicates: str, dim: int, isa: str) -> None:
    check_sparse(dtype, duplicates, dim, k=40, steps=12, seed=dim)


@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
def test_sparse_threaded_like_reference(duplicates: str, isa: str, threads: int) -> None:
    check_sparse(np.float32, duplicates, 64, k=600, steps=7, seed=3)


def check_sparse(dtype: type, duplicates: str, dim: int, k: int, steps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = 3 * k
    table = (rng.standard_normal((rows, dim)) * 0.5).astype(dtype)
    expected = table.copy()
    state, counts = np.full((rows, dim), 0.05, dtype), np.zeros(rows, np.int64)
    expected_state, expected_counts = state.copy(), counts.copy()
    options = {**DECAY, "accumulator_decay_step": 2, "duplicates": duplicates}
    for t in range(1, steps + 1):
        indices, values = random_rows(rng, rows, k), random_grad(rng, (k, dim), dtype)
        assert adagrad.sparse_decay_update(table, indices, values, state, counts, step=t, **options) is True
        assert reference.sparse_decay_update(
            expected, indices, values, expected_state, expected_counts, step=t, **options
        )
    assert_same_bits(state, expected_state)
    assert_same_bits(table, expected)
    assert np.array_equal(counts, expected_counts)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_lazy_rows_equal_the_dense_run_with_zero_grads(dtype: type, isa: str) -> None:
    """A row untouched for many periods catches them all up when touched: the same bits as updating
    every row at every step, untouched rows with a zero gradient."""
    rng = np.random.default_rng(5)
    rows, dim = 50, 16
    sparse_table = (rng.standard_normal((rows, dim)) * 0.5).astype(dtype)
    dense_table = sparse_table.copy()
    options = {"lr": 0.1, "accumulator_decay_step": 2, "accumulator_decay_rate": 0.8, "initial_accumulator_value": 0.01}
    lazy = adagrad.AdagradDecay([sparse_table], **options)
    eager = adagrad.AdagradDecay([dense_table], **options)
    for t in range(1, 41):
        # Row 0 every step, rows 1-9 now and then, the rest only at steps 20 and 40, where every row
        # is touched (an untouched row's sums lag until its next touch: compared after it).
        if t % 20 == 0:
            ids = np.arange(rows, dtype=np.int64)
        else:
            ids = np.array([0, *rng.choice(np.arange(1, 10), size=3, replace=False)], np.int64)
        values = (rng.standard_normal((ids.size, dim)) * 3).astype(dtype)  # large: sums well above the floor
        lazy.step([adagrad.SparseGrad(ids, values)])
        dense = np.zeros((rows, dim), dtype)
        dense[ids] = values
        eager.step([dense])
    assert_same_bits(lazy.state[0]["sum"], eager.state[0]["sum"])
    assert_same_bits(sparse_table, dense_table)
    assert np.all(lazy.state[0]["decay_count"] == 20) and np.all(eager.state[0]["decay_count"] == 20)


def test_decay_keeps_the_rate_from_vanishing() -> None:
    """On a constant gradient Adagrad's step falls as 1 / sqrt(t); AdagradDecay's settles instead."""
    w_adagrad, w_decay = np.zeros(1), np.zeros(1)
    plain = adagrad.Adagrad([w_adagrad], lr=0.1, initial_accumulator_value=0.1)
    decay = adagrad.AdagradDecay([w_decay], lr=0.1, accumulator_decay_step=10, accumulator_decay_rate=0.5)
    steps = []
    for _ in range(2000):
        before = (w_adagrad.copy(), w_decay.copy())
        plain.step([np.ones(1)])
        decay.step([np.ones(1)])
        steps.append((before[0] - w_adagrad, before[1] - w_decay))
    last_plain, last_decay = steps[-1][0][0], steps[-1][1][0]
    assert last_decay > 5 * last_plain
    assert float(decay.state[0]["sum"][0]) < 25  # bounded: about 10 / (1 - 0.5) squared-grads per period


def test_checkpoint_resumes_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    table = rng.standard_normal((30, 8))
    opt = adagrad.AdagradDecay({"t": table}, **DECAY)
    grads = [{"t": adagrad.SparseGrad(rng.integers(0, 30, 6), rng.standard_normal((6, 8)))} for _ in range(14)]
    for g in grads[:7]:
        opt.step(g)
    opt.save(tmp_path / "decay.npz", params=True)
    for g in grads[7:]:
        opt.step(g)
    fresh = np.zeros_like(table)
    resumed = adagrad.AdagradDecay({"t": fresh}, lr=1.0)
    resumed.load(tmp_path / "decay.npz")
    assert resumed.param_groups[0]["accumulator_decay_step"] == 3
    for g in grads[7:]:
        resumed.step(g)
    assert_same_bits(fresh, table)
    assert np.array_equal(resumed.state["t"]["decay_count"], opt.state["t"]["decay_count"])


BAD = [
    pytest.param({"lr": -1.0}, ValueError, "lr must be a finite number >= 0", id="lr"),
    pytest.param(
        {"lr": 0.1, "accumulator_decay_step": 0}, ValueError, "accumulator_decay_step must be an int >= 1", id="step0"
    ),
    pytest.param(
        {"lr": 0.1, "accumulator_decay_step": 2.5}, TypeError, "accumulator_decay_step must be an int", id="step-float"
    ),
    pytest.param(
        {"lr": 0.1, "accumulator_decay_rate": 1.0}, ValueError, "accumulator_decay_rate must be > 0 and < 1", id="rate1"
    ),
    pytest.param(
        {"lr": 0.1, "accumulator_decay_rate": 0.0}, ValueError, "accumulator_decay_rate must be > 0 and < 1", id="rate0"
    ),
    pytest.param(
        {"lr": 0.1, "initial_accumulator_value": 0.0},
        ValueError,
        "initial_accumulator_value must be a finite number > 0",
        id="initial0",
    ),
    pytest.param({"lr": 0.1, "duplicates": "x"}, ValueError, "duplicates must be", id="duplicates"),
]


@pytest.mark.parametrize("options, error, message", BAD)
def test_bad_options_raise(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        adagrad.AdagradDecay([np.ones(3)], **options)


def test_bad_decay_counts_write_nothing() -> None:
    table, state = np.ones((4, 2)), np.full((4, 2), 0.1)
    for counts, error, message in [
        (np.zeros(3, np.int64), ValueError, r"shape \(4,\)"),
        (np.zeros(4, np.int32), TypeError, "int64"),
        (None, ValueError, "required by AdagradDecay"),
    ]:
        with pytest.raises(error, match=message):
            adagrad.sparse_decay_update(table, np.array([1]), np.ones((1, 2)), state, counts, step=1, lr=0.1)  # type: ignore[arg-type]
        assert np.all(table == 1) and np.all(state == 0.1)


@pytest.mark.parametrize("shape", [(0,), (0, 4), (3, 0)])
def test_an_empty_param_counts_its_decays_like_the_reference(shape: tuple[int, ...]) -> None:
    param = np.zeros(shape)
    counts = np.zeros(shape[0] if len(shape) == 2 and shape[0] > 0 else 1, np.int64)
    expected = counts.copy()
    adagrad.decay_update(param, param.copy(), np.full(shape, 0.1), counts, step=6, lr=0.1, accumulator_decay_step=2)
    reference.decay_update(param, param.copy(), np.full(shape, 0.1), expected, step=6, lr=0.1, accumulator_decay_step=2)
    assert np.array_equal(counts, expected) and np.all(counts == 3)
