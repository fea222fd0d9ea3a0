"""Where the optimizer's own arrays start in memory."""

from __future__ import annotations

from typing import Any

import numpy as np

_LINE = 64  # bytes in a cache line


def full_like_at_same_line_offset(param: np.ndarray, value: Any) -> np.ndarray:
    """``np.full_like(param, value)`` (same shape, dtype and memory order) whose data starts at the
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
    offset = param.ctypes.data % _LINE
    if param.size == 0 or offset % param.itemsize != 0:
        return np.full_like(param, value)
    buffer = np.empty(param.size + _LINE // param.itemsize, param.dtype)
    start = ((offset - buffer.ctypes.data) % _LINE) // param.itemsize
    order = "F" if param.flags.f_contiguous and not param.flags.c_contiguous else "C"
    out = buffer[start : start + param.size].reshape(param.shape, order=order)
    out.fill(value)
    return out
