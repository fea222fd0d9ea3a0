"""The dtypes: which arrays are 16-bit, what they are computed in, and the two conversions.

A float16 or bfloat16 array is widened to float32 (exact: every 16-bit value is a float32) and
computed there; each array an update writes is narrowed back once to its own dtype, to nearest
even, or for a 16-bit param with stochastic rounding by :func:`adagrad.stochastic_rounding.stochastic_round`.
float32 and float64 arrays are computed in their own dtype: widening and narrowing change nothing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..stochastic_rounding import stochastic_round

__all__ = ["Stochastic", "compute_type", "is_16bit", "memory_order_index", "narrow", "widen"]


def is_16bit(dtype: Any) -> bool:
    """float16, or ml_dtypes' bfloat16 (recognised by name: ml_dtypes need not be installed)."""
    return np.dtype(dtype) == np.float16 or np.dtype(dtype).name == "bfloat16"


def compute_type(dtype: Any) -> type[np.floating[Any]]:
    """T, the type an array of `dtype` is computed in: float32 for the 16-bit dtypes, else its own."""
    if is_16bit(dtype):
        return np.float32
    scalar: type[np.floating[Any]] = np.dtype(dtype).type
    return scalar


def widen(x: np.ndarray, dtype: Any) -> np.ndarray:
    """A copy of `x` in the compute type of `dtype` (exact: T holds every value of `dtype`)."""
    return np.array(x, compute_type(dtype), copy=True)


class Stochastic(NamedTuple):
    """Where a 16-bit param's stochastic rounding draws its bits: (seed, stream, step)."""

    seed: int
    stream: int
    step: int


def narrow(x: np.ndarray, dtype: Any, sr: Stochastic | None = None, index: np.ndarray | None = None) -> np.ndarray:
    """x (in the compute type) rounded once to `dtype`: to nearest even, or with `sr` (16-bit
    dtypes only) stochastically, element k drawing the bits of ``index[k]`` (same shape as x)."""
    with np.errstate(all="ignore"):  # beyond the 16-bit range rounds to inf, as the kernels do
        if sr is None or not is_16bit(dtype):
            return np.asarray(x).astype(dtype)
        assert index is not None
        return stochastic_round(x, dtype, index, seed=sr.seed, stream=sr.stream, step=sr.step).reshape(np.shape(x))


def memory_order_index(a: np.ndarray, first: int = 0) -> np.ndarray:
    """Each element's offset in memory order (C, or Fortran for an F-only-contiguous array),
    plus `first`, as uint64 in a's shape: a dense element's stochastic-rounding index."""
    order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    return (np.uint64(first) + np.arange(a.size, dtype=np.uint64)).reshape(a.shape, order=order)
