"""Where arrays start in memory: the optimizer's own sums, and tables a user allocates."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

_LINE = 64  # bytes in a cache line


def _empty_at_line_offset(size: int, dtype: np.dtype[Any], offset: int) -> np.ndarray:
    """A 1-D uninitialised array of `size` elements starting `offset` bytes past a cache line."""
    buffer = np.empty(size + _LINE // dtype.itemsize, dtype)
    start = ((offset - buffer.ctypes.data) % _LINE) // dtype.itemsize
    return buffer[start : start + size]


def full_like_at_same_line_offset(param: np.ndarray, value: Any, dtype: Any = None) -> np.ndarray:
    """``np.full_like(param, value, dtype)`` (same shape and memory order; dtype: the param's by
    default) whose data starts at the
    same offset from a 64-byte cache line as the param's.

    The kernel runs a few scalar elements until the param reaches a cache line, then whole vectors;
    a state sum at the same offset is then on whole lines too (an AVX-512 access straddling two
    lines costs a memory-bound step ~15% here). NumPy starts a big array 16 bytes past a page and a
    small one anywhere on 16 bytes, so ``full_like`` matches the param's offset only by chance.

    >>> p = np.zeros(1000, np.float32)[3:]
    >>> s = full_like_at_same_line_offset(p, 0.5)
    >>> (s.ctypes.data - p.ctypes.data) % 64, s.shape, float(s[0])
    (0, (997,), 0.5)
    """
    dtype = param.dtype if dtype is None else np.dtype(dtype)
    offset = param.ctypes.data % _LINE
    if param.size == 0 or offset % dtype.itemsize != 0:
        return np.full_like(param, value, dtype=dtype)
    order: Literal["C", "F"] = "F" if param.flags.f_contiguous and not param.flags.c_contiguous else "C"
    out = _empty_at_line_offset(param.size, dtype, offset).reshape(param.shape, order=order)
    out.fill(value)
    return out


def aligned_zeros(shape: int | tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
    """A zero-filled, C-ordered array whose data starts on a 64-byte cache line.

    For embedding tables and their state: with the table on a line, a row of 16, 32, 64 ...
    float32 spans whole cache lines. NumPy starts a big array 16 bytes past a page, so every
    row then straddles one line more (a 64-float row: 5 lines instead of 4), and a sparse step
    reads and writes that much more: measured here, 1M x 64 float32, 8,192 Zipf ids a step,
    127 ns per unique row aligned, 138 at NumPy's offset. torch allocates on 64 bytes already.

    >>> table = aligned_zeros((1000, 64))
    >>> table.ctypes.data % 64, table.shape, table.dtype, table.flags.c_contiguous, float(table.sum())
    (0, (1000, 64), dtype('float32'), True, 0.0)
    """
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    out = _empty_at_line_offset(int(np.prod(shape, dtype=np.int64)), np.dtype(dtype), 0).reshape(shape)
    out.fill(0)
    return out
