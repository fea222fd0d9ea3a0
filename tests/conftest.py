"""Fixtures shared by the tests: every instruction set and thread count the machine offers."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import adagrad

AVAILABLE_ISAS = adagrad.cpu_info()["available"]
THREAD_COUNTS = [1, 2]


@pytest.fixture(params=AVAILABLE_ISAS)
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    """Forces each instruction set available here in turn, then restores the default."""
    default = adagrad.cpu_info()["isa"]
    adagrad.set_isa(request.param)
    yield request.param
    adagrad.set_isa(default)


@pytest.fixture(params=THREAD_COUNTS)
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    before = adagrad.get_num_threads()
    adagrad.set_num_threads(request.param)
    yield request.param
    adagrad.set_num_threads(before)


def assert_same_bits(actual: np.ndarray, expected: np.ndarray) -> None:
    """Bitwise equality (nan payloads aside); reports the first differing elements."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    a, e = actual.ravel(), expected.ravel()
    uint = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    differ = (a.view(uint) != e.view(uint)) & ~(np.isnan(a) & np.isnan(e))
    if differ.any():
        where = np.flatnonzero(differ)[:5]
        raise AssertionError(f"{differ.sum()} of {a.size} elements differ, first at {where}: {a[where]} vs {e[where]}")


def at_line_offset(values: np.ndarray, offset_bytes: int, order: str = "C") -> np.ndarray:
    """A copy of `values` (same shape and dtype, in C or Fortran order) whose data starts
    `offset_bytes` past a 64-byte cache line."""
    buffer = np.empty(values.size + 128 // values.itemsize, values.dtype)
    start = ((-buffer.ctypes.data) % 64 + offset_bytes) // values.itemsize
    view = buffer[start : start + values.size].reshape(values.shape, order=order)
    assert view.ctypes.data % 64 == offset_bytes
    view[...] = values
    return view
