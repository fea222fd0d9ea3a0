"""adagrad.aligned_zeros: zero-filled C-ordered arrays starting on a 64-byte cache line, usable
wherever a table or state is (the optimizer's own sums are tested in test_optimizer.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import adagrad
from conftest import assert_same_bits


@pytest.mark.parametrize(
    ("shape", "dtype", "expected_shape"),
    [
        ((1000, 64), np.float32, (1000, 64)),
        ((7, 3), np.float64, (7, 3)),
        (5, np.float64, (5,)),
        (np.int64(9), np.float32, (9,)),
        ((2, 3, 4), "float32", (2, 3, 4)),
        ((), np.float32, ()),
    ],
)
def test_aligned_zeros_is_zero_filled_c_ordered_and_on_a_cache_line(
    shape: Any, dtype: Any, expected_shape: Any
) -> None:
    a = adagrad.aligned_zeros(shape, dtype)
    assert a.shape == expected_shape
    assert a.dtype == np.dtype(dtype)
    assert a.ctypes.data % 64 == 0
    assert a.flags.c_contiguous and a.flags.writeable
    assert not a.any()


def test_aligned_zeros_defaults_to_float32() -> None:
    assert adagrad.aligned_zeros((2, 2)).dtype == np.float32


def test_aligned_tables_step_like_numpys() -> None:
    rng = np.random.default_rng(0)
    start = rng.standard_normal((50, 16)).astype(np.float32)
    indices = rng.integers(0, 50, 40)
    values = rng.standard_normal((40, 16)).astype(np.float32)
    table, state = adagrad.aligned_zeros((50, 16)), adagrad.aligned_zeros((50, 16))
    table[...] = start
    expected, expected_state = start.copy(), np.zeros((50, 16), np.float32)
    for t in (1, 2):
        adagrad.sparse_update(table, indices, values, state, step=t)
        adagrad.reference.sparse_update(expected, indices, values, expected_state, step=t)
    assert_same_bits(table, expected)
    assert_same_bits(state, expected_state)
