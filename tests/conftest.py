"""Fixtures shared by the tests: every instruction set and thread count the machine offers."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import adagrad

AVAILABLE_ISAS = adagrad.cpu_info()["available"]
THREAD_COUNTS = [1, 2]

# The 16-bit dtypes; bfloat16's cases skip without ml_dtypes (float16 needs nothing).
try:
    import ml_dtypes
except ImportError:
    ml_dtypes = None
F16, F32 = np.dtype(np.float16), np.dtype(np.float32)
BF16 = np.dtype(ml_dtypes.bfloat16) if ml_dtypes is not None else F16  # a placeholder where its cases skip
NEEDS_ML_DTYPES = pytest.mark.skipif(ml_dtypes is None, reason="bfloat16 arrays need ml_dtypes")
# (param dtype, state dtype): the param's own, or float32 state.
HALF_PAIRS = [
    pytest.param(F16, F16, id="f16"),
    pytest.param(F16, F32, id="f16-f32state"),
    pytest.param(BF16, BF16, id="bf16", marks=NEEDS_ML_DTYPES),
    pytest.param(BF16, F32, id="bf16-f32state", marks=NEEDS_ML_DTYPES),
]


@pytest.fixture(params=AVAILABLE_ISAS)
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    """Forces each instruction set available here in turn, then restores the default."""
    default = adagrad.cpu_info()["isa"]
    adagrad.set_isa(request.param)
    yield request.param
    adagrad.set_isa(default)


@pytest.fixture(params=THREAD_COUNTS)
def threads(request: pytest.FixtureRequest) -> Iterator[int]:
    """Each thread count in turn; the load guard starts clear, so that a stall an earlier test saw
    on a busy machine does not turn this one's two threads into one."""
    before = adagrad.get_num_threads()
    adagrad.set_num_threads(request.param)
    adagrad._core._reset_load_guard()
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


@pytest.fixture
def unchecked_sparse_tensors() -> Iterator[None]:
    """Sparse grads (nn.Embedding's, torch's sparse Adagrad's) are COO tensors; torch warns unless
    told explicitly whether to check their invariants (the indices in these tests are valid by
    construction). Restored afterwards."""
    import torch

    checks = torch.sparse.check_sparse_tensor_invariants
    was_enabled = checks.is_enabled()
    checks.disable()
    yield
    if was_enabled:
        checks.enable()
