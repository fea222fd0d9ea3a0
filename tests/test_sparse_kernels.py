"""The sparse row kernels (cpp/src/sparse_kernel.inl) against the reference, bit for bit: the row
lengths with kernels of their own (16, 32, 64, 128) and their neighbours, rows straddling cache
lines, every mode, ISA and thread count, and the shapes of index batches that exercise the
grouping: none, one id repeated, all distinct, a part owning every row."""

from __future__ import annotations

import functools
import itertools
from typing import Any

import numpy as np
import pytest

import adagrad
from adagrad import _core
from conftest import assert_same_bits, at_line_offset

FIXED_DIMS = [16, 32, 64, 128]
DIMS = sorted({d + delta for d in FIXED_DIMS for delta in (-1, 0, 1)} | {1, 2, 300})
ROWS = 97


def table_and_state(
    d: int, dtype: type, rowwise: bool, offset_bytes: int = 0, rows: int = ROWS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A table starting `offset_bytes` past a cache line (so its rows straddle lines) and its state."""
    rng = np.random.default_rng(seed)
    table = at_line_offset(rng.standard_normal((rows, d)).astype(dtype), offset_bytes)
    state = rng.uniform(0.0, 1.0, rows if rowwise else (rows, d)).astype(dtype)
    return table, state


def run_both(table: np.ndarray, state: np.ndarray, idx: np.ndarray, values: np.ndarray, **kwargs: Any) -> None:
    """sparse_update against the reference from the same start; both must give the same bits."""
    ref_table, ref_state = table.copy(), state.copy()
    adagrad.sparse_update(table, idx, values, state, step=1, **kwargs)
    adagrad.reference.sparse_update(ref_table, idx, values, ref_state, step=1, **kwargs)
    assert_same_bits(state, ref_state)
    assert_same_bits(table, ref_table)


MODES = [
    pytest.param(rowwise, duplicates, id=f"{'rowwise' if rowwise else 'elementwise'}-{duplicates}")
    for rowwise, duplicates in itertools.product([False, True], ["sum", "sequential"])
]


@pytest.mark.parametrize("rowwise, duplicates", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda t: t.__name__)
@pytest.mark.parametrize("d", DIMS)
def test_every_row_length_matches_the_reference(d: int, dtype: type, rowwise: bool, duplicates: str) -> None:
    rng = np.random.default_rng(d)
    table, state = table_and_state(d, dtype, rowwise, offset_bytes=np.dtype(dtype).itemsize)  # rows straddle lines
    idx = ((rng.zipf(1.3, size=400) - 1) % ROWS).astype(np.int64)
    values = rng.standard_normal((idx.size, d)).astype(dtype)
    run_both(table, state, idx, values, duplicates=duplicates, lr=0.05)


OPTION_SETS = {
    "weight-decay-maximize": {"weight_decay": 0.1, "maximize": True, "lr_decay": 0.05},
    "decoupled": {"weight_decay": 0.1, "decoupled_weight_decay": True},
    "eps-inside": {"eps_inside_sqrt": True, "eps": 1e-7},
    "grad-scale-divide": {"grad_scale": 3.0},
    "grad-scale-power-of-two": {"grad_scale": 1024.0},
}


@pytest.mark.parametrize("rowwise, duplicates", MODES)
@pytest.mark.parametrize("options", OPTION_SETS)
@pytest.mark.parametrize("d", FIXED_DIMS + [33])
def test_every_variant_at_the_fixed_row_lengths(d: int, options: str, rowwise: bool, duplicates: str) -> None:
    """Each fixed row length is its own instantiation for every variant of the update."""
    rng = np.random.default_rng(7)
    table, state = table_and_state(d, np.float32, rowwise)
    idx = ((rng.zipf(1.2, size=300) - 1) % ROWS).astype(np.int32)
    values = rng.standard_normal((idx.size, d)).astype(np.float32)
    run_both(table, state, idx, values, duplicates=duplicates, **OPTION_SETS[options])


@pytest.mark.parametrize("offset", [0, 4, 16, 60])
@pytest.mark.parametrize("d", [16, 64, 100])
def test_rows_straddling_cache_lines(d: int, offset: int, isa: str) -> None:
    rng = np.random.default_rng(offset)
    table, state = table_and_state(d, np.float32, rowwise=False, offset_bytes=offset)
    idx = rng.integers(0, ROWS, 500)
    values = rng.standard_normal((idx.size, d)).astype(np.float32)
    run_both(table, state, idx, values)


BATCH_ROWS = 4000


def batches(rng: np.random.Generator, rows: int) -> dict[str, np.ndarray]:
    """Index batches of every shape the grouping meets; k * 64 is above the inline threshold."""
    return {
        "one-id": np.full(1, rows - 1),
        "one-id-repeated": np.full(600, 5),
        "all-distinct": rng.permutation(rows)[: rows // 2],
        "zipf": (rng.zipf(1.1, size=1500) - 1) % rows,
        "two-alternating": np.tile([3, rows - 2], 300),
    }


@functools.cache
def batch_problem(d: int, kind: str, rowwise: bool, duplicates: str) -> tuple[np.ndarray, ...]:
    """(table, state, indices, values, expected table, expected state): the reference's result,
    computed once for all the ISAs and thread counts that are checked against it."""
    rng = np.random.default_rng(11)
    table, state = table_and_state(d, np.float32, rowwise, rows=BATCH_ROWS)
    idx = batches(rng, BATCH_ROWS)[kind].astype(np.int64)
    values = rng.standard_normal((idx.size, d)).astype(np.float32)
    expected = table.copy(), state.copy()
    adagrad.reference.sparse_update(expected[0], idx, values, expected[1], step=1, duplicates=duplicates)
    return table, state, idx, values, *expected


@pytest.mark.parametrize("rowwise, duplicates", MODES)
@pytest.mark.parametrize("kind", list(batches(np.random.default_rng(0), 10)))
@pytest.mark.parametrize("d", [16, 64, 65])
def test_batch_shapes_on_every_isa_and_thread_count(
    d: int, kind: str, rowwise: bool, duplicates: str, isa: str, threads: int
) -> None:
    """Large enough to be dealt to parts, one per thread (but the one-id batch)."""
    start_table, start_state, idx, values, expected_table, expected_state = batch_problem(d, kind, rowwise, duplicates)
    table, state = start_table.copy(), start_state.copy()
    adagrad.sparse_update(table, idx, values, state, step=1, duplicates=duplicates)
    assert_same_bits(state, expected_state)
    assert_same_bits(table, expected_table)


@pytest.mark.parametrize("parts", [3, 5, 8])
@pytest.mark.parametrize("rowwise, duplicates", MODES)
def test_more_parts_than_cpus_gives_the_same_bits(parts: int, rowwise: bool, duplicates: str) -> None:
    """The rows are dealt to as many parts as threads; any number of parts, the same bits."""
    rng = np.random.default_rng(parts)
    table, state = table_and_state(64, np.float32, rowwise=rowwise, rows=5000)
    idx = (rng.zipf(1.2, size=6000) - 1) % 5000
    values = rng.standard_normal((idx.size, 64)).astype(np.float32)
    before = adagrad.get_num_threads()
    try:
        adagrad.set_num_threads(parts)
        run_both(table, state, idx, values, duplicates=duplicates)
    finally:
        adagrad.set_num_threads(before)


def row_part(rows: np.ndarray, parts: int) -> np.ndarray:
    """kernels.hpp's row_part: the high bits of a multiplicative hash, scaled to the parts."""
    mixed = (rows.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)) >> np.uint64(32)
    return ((mixed * np.uint64(parts)) >> np.uint64(32)).astype(np.int64)


def test_a_part_owning_every_row_grows_its_hash_table() -> None:
    """Each part's hash table is sized for its share of the ids and grows when one part owns them
    all: every id here belongs to part 0 of 2."""
    rows = 200_000
    candidates = np.arange(rows)
    owned = candidates[row_part(candidates, 2) == 0]
    rng = np.random.default_rng(2)
    idx = rng.permutation(owned)[:20_000]
    idx = np.concatenate([idx, idx[::7]])  # and some repeats
    table, state = table_and_state(16, np.float32, rowwise=False, rows=rows)
    values = rng.standard_normal((idx.size, 16)).astype(np.float32)
    before = adagrad.get_num_threads()
    try:
        adagrad.set_num_threads(2)
        run_both(table, state, idx, values)
    finally:
        adagrad.set_num_threads(before)


@pytest.mark.parametrize("d", FIXED_DIMS + [5, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda t: t.__name__)
def test_sum_equals_the_dense_update_of_the_touched_rows(d: int, dtype: type) -> None:
    """duplicates='sum' is adagrad.update on the rows of the dense-equivalent gradient."""
    rng = np.random.default_rng(d)
    table, state = table_and_state(d, dtype, rowwise=False)
    idx = (rng.zipf(1.2, size=500) - 1) % ROWS
    values = rng.standard_normal((idx.size, d)).astype(dtype)
    # A row's sum starts from +0, as np.add.at's does: a lone -0 value row sums to +0, which keeps
    # a -0 weight at -0 (-0 - (+0)), where -0 would have made it +0.
    values = np.vstack([values[idx != ROWS - 1], np.full((1, d), -0.0, dtype)])
    idx = np.append(idx[idx != ROWS - 1], ROWS - 1)
    table[ROWS - 1] = -0.0
    dense = np.zeros_like(table)
    np.add.at(dense, idx, values)
    touched = np.unique(idx)
    rows, sums = table[touched].copy(), state[touched].copy()
    adagrad.update(rows, dense[touched], sums, step=1)
    untouched = np.setdiff1d(np.arange(ROWS), touched)
    kept = table[untouched].copy(), state[untouched].copy()
    adagrad.sparse_update(table, idx, values, state, step=1)
    assert_same_bits(table[touched], rows)
    assert_same_bits(state[touched], sums)
    assert_same_bits(table[untouched], kept[0])
    assert_same_bits(state[untouched], kept[1])


@pytest.mark.parametrize("d", [16, 64, 7])
def test_sequential_is_one_dense_update_per_occurrence_in_input_order(d: int) -> None:
    rng = np.random.default_rng(3)
    table, state = table_and_state(d, np.float32, rowwise=False)
    idx = np.array([4, 9, 4, 4, 0, 9])
    values = rng.standard_normal((idx.size, d)).astype(np.float32)
    expected_table, expected_state = table.copy(), state.copy()
    for i, r in enumerate(idx):
        adagrad.update(expected_table[r], values[i], expected_state[r], step=1)
    adagrad.sparse_update(table, idx, values, state, step=1, duplicates="sequential")
    assert_same_bits(table, expected_table)
    assert_same_bits(state, expected_state)


@pytest.mark.parametrize("read_values", [False, True])
@pytest.mark.parametrize("d", [16, 64, 9])
def test_the_floors_touch_the_listed_rows_and_keep_every_value(d: int, read_values: bool, threads: int) -> None:
    """x + 0 on each listed row of table and state: every value kept (none is -0 here)."""
    rng = np.random.default_rng(4)
    table, state = table_and_state(d, np.float32, rowwise=False, rows=3000)
    rows = rng.permutation(3000)[:1500]
    values = rng.standard_normal((4000 if read_values else rows.size, d)).astype(np.float32)
    before = table.copy(), state.copy()
    _core.sparse_floor(table, rows, values, state, read_values)
    assert_same_bits(table, before[0])
    assert_same_bits(state, before[1])


@pytest.mark.parametrize("d", FIXED_DIMS + [5])
def test_the_ceiling_adds_the_summed_rows_at_every_row_length(d: int) -> None:
    rng = np.random.default_rng(d)
    table = rng.integers(-50, 50, (40, d)).astype(np.float32)  # small integers: every sum exact
    state = rng.integers(0, 50, (40, d)).astype(np.float32)
    idx = np.array([3, 7, 3, 39, 0, 3])
    values = rng.integers(-9, 9, (idx.size, d)).astype(np.float32)
    summed = np.zeros_like(table)
    np.add.at(summed, idx, values)
    expected = table + summed, state + summed
    _core.sparse_stream_ceiling(table, idx, values, state)
    np.testing.assert_array_equal(table, expected[0])
    np.testing.assert_array_equal(state, expected[1])


def fbgemm_rowwise_by_hand(row: np.ndarray, s: np.float32, g: np.ndarray, lr: float, eps: float) -> tuple:
    """FBGEMM's row-wise step written out element by element in float32 (src/SparseAdagrad.cc's JIT:
    vmulps then vaddps into 8 lanes, two vhaddps and an addss, divss by d, one float_step)."""
    f = np.float32
    lanes = [f(0)] * 8
    for j, x in enumerate(g):
        lanes[j % 8] = f(lanes[j % 8] + f(x * x))
    total = f(f(f(lanes[0] + lanes[1]) + f(lanes[2] + lanes[3])) + f(f(lanes[4] + lanes[5]) + f(lanes[6] + lanes[7])))
    s = f(s + f(total / f(g.size)))
    step = f(f(lr) / f(np.sqrt(s) + f(eps)))
    return np.array([f(p - f(step * x)) for p, x in zip(row, g)], np.float32), s


@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("d", [3, 16, 21, 64])
def test_rowwise_is_fbgemms_formula_written_out(d: int, duplicates: str, isa: str) -> None:
    """docs/semantics.md section 3: one multiplier per row, the squares rounded before the lanes."""
    rng = np.random.default_rng(d)
    table = rng.standard_normal((4, d)).astype(np.float32)
    state = rng.uniform(0.0, 1.0, 4).astype(np.float32)
    g = rng.standard_normal((1, d)).astype(np.float32)
    expected_row, expected_s = fbgemm_rowwise_by_hand(table[2], state[2], g[0], 0.05, 1e-3)
    adagrad.sparse_update(table, np.array([2]), g, state, step=1, lr=0.05, eps=1e-3, duplicates=duplicates)
    assert_same_bits(state[2:3], np.array([expected_s]))
    assert_same_bits(table[2], expected_row)


@pytest.mark.parametrize("d", [64, 100])
def test_rowwise_sum_past_the_held_sums_walks_the_chains(d: int) -> None:
    """A call whose sums exceed the workspace's budget (sparse.cpp, kRowwiseSumsBytes: 16 MiB) sums
    along each row's chain instead: the same bits as the reference."""
    rng = np.random.default_rng(5)
    k = (16 << 20) // (d * 4) + 100
    table, state = table_and_state(d, np.float32, True, rows=40)
    idx = rng.integers(0, 40, k)
    values = rng.standard_normal((k, d)).astype(np.float32)
    run_both(table, state, idx, values, duplicates="sum", lr=0.05)
