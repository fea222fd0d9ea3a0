"""The gradient norms of the norm clips, in float64, in one fixed order (the kernels' order, so
that every ISA and thread count gives the same bits)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .checks import norm_type_is_inf
from .exact import fma

__all__ = ["NORM_BLOCK", "NORM_LANES", "grad_norms"]

NORM_BLOCK = 1024  # elements per block of the 2-norm's sum of squares
NORM_LANES = 64


def pairwise(values: Any) -> float:
    """Added in pairs, level by level, an odd last one carried up; 0.0 for none."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return 0.0
    while v.size > 1:
        half = v.size // 2
        paired = v[0 : 2 * half : 2] + v[1 : 2 * half : 2]
        v = np.concatenate([paired, v[2 * half :]])
    return float(v[0])


def sum_of_squares(g: np.ndarray) -> float:
    """sum(g**2) in float64: blocks of NORM_BLOCK elements (in memory order), element i of a block
    into lane i % 64 by fma in increasing i, the lanes added in halves (l[j] + l[j + 32], then
    + 16, ... to one), then the blocks paired level by level."""
    flat = np.ravel(g, order="K").astype(np.float64)  # exact for float16, bfloat16 and float32
    blocks = -(-flat.size // NORM_BLOCK)
    padded = np.zeros(blocks * NORM_BLOCK)  # a zero adds nothing to a lane: fma(0, 0, s) = s
    padded[: flat.size] = flat
    rows = padded.reshape(blocks, NORM_BLOCK // NORM_LANES, NORM_LANES)
    lanes = np.zeros((blocks, NORM_LANES))
    with np.errstate(all="ignore"):
        for r in range(rows.shape[1]):
            lanes = fma(rows[:, r], rows[:, r], lanes)
        while lanes.shape[1] > 1:
            half = lanes.shape[1] // 2
            lanes = lanes[:, :half] + lanes[:, half:]
        return pairwise(lanes[:, 0])


def max_abs(values: Any) -> float:
    """max |v| in float64; NaN if any is NaN; 0.0 for none."""
    v = np.abs(np.asarray(values, np.float64))
    return float(np.max(v)) if v.size else 0.0


def grad_norms(grads: Sequence[np.ndarray], norm_type: float | str = 2.0) -> tuple[list[float], float]:
    """(each grad's norm, all grads' norm together) of grads already divided by any loss scale.

    2-norm: sqrt(sum_of_squares(g)) each, sqrt(pairwise(the sums of squares)) together.
    inf-norm: max |g| each (NaN if any g is NaN), the max of those together."""
    if norm_type_is_inf(norm_type):
        each = [max_abs(g) for g in grads]
        return each, max_abs(each)
    squares = [sum_of_squares(g) for g in grads]
    return [math.sqrt(s) for s in squares], math.sqrt(pairwise(squares))
