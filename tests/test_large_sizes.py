"""64-bit sizes and offsets: arrays of more than 2**31 and 2**32 elements.

- Sparse updates of rows whose offset row * dim is beyond 2**31 and 2**32 elements, on tables of
  that size. The tables come from np.zeros, which the OS maps lazily: only the pages of the rows
  touched cost memory (a few KiB of the 8 to 16 GiB), so these run anywhere the address space
  allows. The touched rows must equal the reference bitwise, and the rows where a 32-bit offset
  would have wrapped to must stay untouched.
- How dense calls are cut into thread-pool tasks, for arrays of up to 2**33 elements (a native
  test hook that needs no memory): every element covered exactly once, in order, in chunks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import adagrad
from adagrad import _core
from conftest import assert_same_bits


def lazy_zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    try:
        return np.zeros(shape, dtype)
    except MemoryError:
        pytest.skip(f"this machine cannot map {np.prod(shape) * np.dtype(dtype).itemsize / 2**30:.1f} GiB")


# (rows, dim, state layout): row * dim crosses 2**31 (element-wise state: two 8 GiB tables) or
# 2**32 (row-wise state: a 16 GiB table and 256 MiB of state).
TABLES = [
    pytest.param((1 << 25) + 8, 64, "elementwise", id="2^31-elements-elementwise"),
    pytest.param((1 << 26) + 8, 64, "rowwise", id="2^32-elements-rowwise"),
]


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("rows, dim, state_layout", TABLES)
def test_sparse_rows_beyond_2_to_the_32_elements(
    rows: int, dim: int, state_layout: str, index_dtype: type, threads: int
) -> None:
    table = lazy_zeros((rows, dim), np.float32)
    state = lazy_zeros((rows, dim) if state_layout == "elementwise" else (rows,), np.float32)
    # Rows whose first element lies beyond 2**31 / 2**32 elements, the very last row, a repeat.
    touched = np.array([rows - 1, (1 << 31) // dim + 1, (1 << 25) + 3, rows - 5, 7, rows - 1], np.int64)
    touched = touched[touched < rows]
    rng = np.random.default_rng(0)
    start_values = rng.standard_normal((len(touched), dim)).astype(np.float32)
    unique = np.unique(touched)
    for r in unique:
        table[r] = start_values[np.flatnonzero(touched == r)[0]]
    values = rng.standard_normal((len(touched), dim)).astype(np.float32)
    indices = touched.astype(index_dtype)

    # The same update on a small table holding only the touched rows (remapped indices).
    small = table[unique].copy()
    small_state = state[unique].copy()
    remapped = np.searchsorted(unique, touched)
    for t in (1, 2):
        adagrad.sparse_update(table, indices, values, state, step=t, lr=0.1)
        adagrad.reference.sparse_update(small, remapped, values, small_state, step=t, lr=0.1)

    assert_same_bits(table[unique], small)
    assert_same_bits(state[unique], small_state)
    # Where a 32-bit (or 31-bit) offset row * dim would have wrapped to: untouched.
    for r in unique:
        for bits in (31, 32):
            wrapped_row = (int(r) * dim % (1 << bits)) // dim
            if wrapped_row not in unique:
                assert not table[wrapped_row].any(), f"row {wrapped_row} written (row {r} wrapped at 2**{bits})"
                assert not state[wrapped_row].any()
    assert not table[unique[-1] - 1].any() and not table[unique[0] + 1].any()


SIZES = [
    pytest.param([(1 << 33) + 7], id="one-2^33+7"),
    pytest.param([5, (1 << 32) + 1, 3, (1 << 31) - 1], id="mixed-around-2^31-2^32"),
    pytest.param([1] * 5000 + [(1 << 32) + 16385], id="many-small-then-huge"),
    pytest.param([0, 0, 3, 0], id="empty-arrays"),
]


@pytest.mark.parametrize("sizes", SIZES)
def test_dense_task_plan_covers_every_element_once_with_64_bit_offsets(sizes: list[int]) -> None:
    segments, task_starts, chunk = _core._plan_tasks(sizes)
    assert segments.dtype == np.uint64 and segments.shape[1] == 3
    array, begin, end = segments[:, 0], segments[:, 1], segments[:, 2]  # uint64: exact up to 2**64
    # Every array's segments tile [0, n) in order; arrays in order; none longer than a chunk.
    expected_arrays = [i for i, n in enumerate(sizes) if n > 0]
    assert np.unique(array).tolist() == expected_arrays
    assert (np.diff(array.astype(np.int64)) >= 0).all()
    first = np.r_[True, array[1:] != array[:-1]]  # an array's first segment
    last = np.r_[array[1:] != array[:-1], True]
    assert (begin[first] == 0).all()
    assert (end[last] == np.array(sizes, np.uint64)[array[last].astype(np.int64)]).all()
    assert (begin[1:][~first[1:]] == end[:-1][~first[1:]]).all()  # no gap, no overlap
    assert ((end > begin) & (end - begin <= chunk)).all()
    # Tasks: consecutive runs of segments, each holding at least a chunk but the last.
    starts = task_starts.astype(np.int64)
    assert starts[0] == 0 and starts[-1] == len(segments) and (np.diff(starts) > 0).all()
    per_task = np.add.reduceat(end - begin, starts[:-1]) if len(segments) else np.zeros(0, np.uint64)
    assert (per_task[:-1] >= chunk).all()
    assert int(per_task.sum()) == sum(sizes)
