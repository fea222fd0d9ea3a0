r"""Stochastic rounding of float32 results to float16 / bfloat16, in plain NumPy: the contract the
native kernels (``cpp/src/stochastic_round.inl``) reproduce bit for bit on every ISA.

A value ``x`` between two neighbours ``lo`` and ``hi`` of the 16-bit type (``lo`` the one nearer
zero) becomes ``hi`` with probability ``(x - lo) / (hi - lo)`` and ``lo`` otherwise, so that
``E[round(x)] = x`` (Gupta et al., "Deep Learning with Limited Numerical Precision", ICML 2015;
FBGEMM's float16 tables). The probability comes from 32 random bits per element, a pure function of
``(seed, stream, step, index)``:

.. code-block:: text

    key   = splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ step)        (k0, k1) = its halves
    r     = mix(lo32(index) ^ k0 ^ mix(hi32(index) ^ k1))                   mix: lowbias32

``mix`` is a bijection of the 32-bit integers, so for one key the ``r`` of 2^32 consecutive indices
are every 32-bit value once: exactly uniform. Reruns, thread counts and ISAs give the same bits.

bfloat16: the top 16 bits of ``r`` are added to the float32's bits, which are then truncated: the
rounding is exactly unbiased for every finite float32. float16: the same with the top 13 bits in
float16's normal range; below 2^-14 (float16's subnormals, spacing 2^-24) ``d = 126 - exponent``
bits are dropped and the top ``d`` bits of ``r`` added, exactly unbiased for ``|x| >= 2^-32``; below
that the probability is resolved to 2^-31 of the spacing (a bias under 2^-55). A NaN becomes round
to nearest's quiet NaN; a value past the largest finite one rounds to infinity with probability its
distance over the last spacing.

Which ``index`` and ``stream`` an element has: an optimizer's param ``i`` (its position among all
the optimizer's params) is stream ``i``, the functions' one array stream 0; a dense element's index
is its offset in the array; a sparse table's element ``(row, j)`` is ``row * dim + j`` when repeated
rows are summed, and ``occurrence * dim + j`` (its offset in ``values``) when they are sequential, so
that each occurrence of a row draws fresh bits. ``step`` is the update's 1-based step.

Examples:
    >>> import numpy as np
    >>> from adagrad.stochastic_rounding import stochastic_round
    >>> x = np.full(100_000, 1 + 2**-12, np.float32)  # a quarter of the way from 1 to 1 + 2**-10
    >>> y = stochastic_round(x, np.float16, np.arange(x.size, dtype=np.uint64), seed=0, stream=0, step=1)
    >>> sorted(set(y.tolist())), round(float((y == 1).mean()), 2)
    ([1.0, 1.0009765625], 0.75)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["random_bits", "sr_key", "stochastic_round"]

_MASK64 = (1 << 64) - 1


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def sr_key(seed: int, stream: int, step: int) -> tuple[int, int]:
    """The two 32-bit halves ``(k0, k1)`` of the key of ``(seed, stream, step)``."""
    key = _splitmix64(_splitmix64(_splitmix64(seed & _MASK64) ^ (stream & _MASK64)) ^ (step & _MASK64))
    return key & 0xFFFFFFFF, key >> 32


def _mix(x: np.ndarray) -> np.ndarray:
    """lowbias32 over uint32 arrays (the products wrap modulo 2^32)."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def random_bits(index: np.ndarray, seed: int, stream: int, step: int) -> np.ndarray:
    """The 32 random bits (uint32) of each element ``index`` (uint64) under ``(seed, stream, step)``."""
    k0, k1 = sr_key(seed, stream, step)
    index = np.asarray(index, np.uint64)
    lo = (index & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (index >> np.uint64(32)).astype(np.uint32)
    return _mix(lo ^ np.uint32(k0) ^ _mix(hi ^ np.uint32(k1)))


def _bfloat16_bits(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    ax = x & np.uint32(0x7FFFFFFF)
    rounded = (x + (r >> np.uint32(16))) >> np.uint32(16)  # no carry out of 32 bits: NaNs are apart
    nan = ((x >> np.uint32(16)) & np.uint32(0x8000)) | np.uint32(0x7FC0)
    return np.where(ax > 0x7F800000, nan, rounded)


def _float16_bits(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    ax = (x & np.uint32(0x7FFFFFFF)).astype(np.int64)
    sign = ((x >> np.uint32(16)) & np.uint32(0x8000)).astype(np.int64)
    top = r.astype(np.int64)
    # float16's normal range: the exponent rebiased, 13 random bits added below the kept mantissa.
    normal = np.minimum((ax - 0x38000000 + (top >> 19)) >> 13, 0x7C00)
    # Below it, in units of 2^-24: the significand m shifted right by d = 126 - exponent, d bits added.
    d = 126 - (ax >> 23)
    m = (ax & 0x7FFFFF) | 0x800000
    pre = np.clip(d - 31, 0, 63)  # d > 31: the significand shifted first, 31 bits of r used
    kept = np.clip(d, 0, 31)
    subnormal = ((m >> pre) + (top >> (32 - kept))) >> kept
    out = np.where(ax >= 0x38800000, normal, subnormal)
    nan = 0x7E00 | ((ax >> 13) & 0x3FF)
    return np.where(ax > 0x7F800000, nan, out) | sign


def stochastic_round(x: np.ndarray, dtype: Any, index: np.ndarray, *, seed: int, stream: int, step: int) -> np.ndarray:
    """``x`` (float32) stochastically rounded to ``dtype`` (float16, or ml_dtypes' bfloat16), element
    ``k`` drawing the random bits of ``index[k]`` under ``(seed, stream, step)``; the shape of ``x``."""
    x = np.ascontiguousarray(x, np.float32)
    bits = x.reshape(-1).view(np.uint32)
    r = random_bits(np.asarray(index, np.uint64).reshape(-1), seed, stream, step)
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        out = _float16_bits(bits, r)
    elif dtype.name == "bfloat16":
        out = _bfloat16_bits(bits, r)
    else:
        raise TypeError(f"stochastic rounding rounds to float16 or bfloat16, not {dtype}")
    return out.astype(np.uint16).view(dtype).reshape(x.shape)
