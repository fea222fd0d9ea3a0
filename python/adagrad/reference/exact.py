"""Exact fused multiply-add over NumPy arrays, for the reference implementation.

NumPy has no fma. ``a * b + c`` rounds twice, and so does the tempting float32 shortcut
``float32(float64(a) * b + c)``: the float64 product is exact, but the float64 sum is rounded once
and the conversion to float32 rounds again, which goes wrong when the first rounding lands exactly
on a float32 tie. Both functions here round once, like the hardware instruction.

Method: error-free transformations, then *round to odd* (Boldo & Melquiond, "Emulation of FMA and
correctly rounded sums: proved algorithms using rounding to odd", IEEE TC 2008). A value rounded
to odd in a format with at least two more bits than the target rounds correctly to the target.

- float32: ``p = a*b`` in float64 is exact (24 + 24 bits); ``p + c`` as an exact pair (hi, lo);
  ``hi`` rounded to odd using ``lo``; then one rounding to float32.
- float64: Dekker's exact product ``a*b = uh + ul``; ``c + uh = th + tl`` exactly;
  ``v = RO(tl + ul)``; result ``RN(th + v)``. Valid while nothing overflows or underflows; the
  few elements outside that range are computed with exact rational arithmetic instead.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

__all__ = ["fma"]

_SPLITTER = 134217729.0  # 2**27 + 1: Veltkamp's split of a float64 into two 26-bit halves
# Where Dekker's product and the sums below are exact for float64 (generous margins).
_PRODUCT_MIN, _PRODUCT_MAX = 2.0**-900, 2.0**990
_FACTOR_MAX = 2.0**995


def fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a * b + c`` rounded once, element-wise, in the common dtype (float32 or float64)."""
    dtype = np.result_type(a, b, c)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"fma supports float32 and float64, got {dtype}")
    shape = np.broadcast_shapes(np.shape(a), np.shape(b), np.shape(c))
    flat = [np.broadcast_to(np.asarray(x, dtype), shape).ravel() for x in (a, b, c)]
    with np.errstate(all="ignore"):
        out = _fma_float32(*flat) if dtype == np.float32 else _fma_float64(*flat)
    return out.reshape(shape)


def _two_sum(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knuth: s = RN(x + y) and the exact error e, so that s + e == x + y."""
    s = x + y
    y_virtual = s - x
    e = (x - (s - y_virtual)) + (y - y_virtual)
    return s, e


def _round_to_odd(s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The float64 nearest s + e (s = RN(s + e)) toward s + e whose last significand bit is 1."""
    even = (s.view(np.uint64) & 1) == 0
    inexact = np.isfinite(s) & (e != 0)
    toward = np.where(e > 0, np.inf, -np.inf)
    return np.where(inexact & even, np.nextafter(s, toward), s)


def _fma_float32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    a64, b64, c64 = (x.astype(np.float64) for x in (a, b, c))
    hi, lo = _two_sum(a64 * b64, c64)
    return _round_to_odd(hi, lo).astype(np.float32)


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = _SPLITTER * x
    hi = t - (t - x)
    return hi, x - hi


def _two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dekker: p = RN(a*b) and the exact error, without a hardware fma."""
    p = a * b
    a_hi, a_lo = _split(a)
    b_hi, b_lo = _split(b)
    err = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
    return p, err


def _fma_float64(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    uh, ul = _two_product(a, b)
    th, tl = _two_sum(c, uh)
    v = _round_to_odd(*_two_sum(tl, ul))
    out = th + v

    finite = np.isfinite(a) & np.isfinite(b) & np.isfinite(c)
    # A zero factor makes the product exact, so the plain expression already rounds once.
    zero_factor = (a == 0) | (b == 0)
    in_range = (
        (np.abs(a) <= _FACTOR_MAX)
        & (np.abs(b) <= _FACTOR_MAX)
        & (np.abs(uh) >= _PRODUCT_MIN)
        & (np.abs(uh) <= _PRODUCT_MAX)
        & (np.abs(c) <= _PRODUCT_MAX)
    )
    plain = ~finite | zero_factor
    out = np.where(plain, a * b + c, out)
    # Finite factors with a non-finite addend: the exact product is finite, so the result is c
    # (a*b might overflow to inf in the plain expression and turn inf - inf into nan).
    out = np.where(np.isfinite(a) & np.isfinite(b) & ~np.isfinite(c), c, out)
    for index in zip(*np.nonzero(finite & ~zero_factor & ~in_range)):
        out[index] = _fma_rational(float(a[index]), float(b[index]), float(c[index]))
    return out


def _fma_rational(a: float, b: float, c: float) -> float:
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:
        return 0.0  # a*b and c cancel exactly (neither is a zero product): +0 under round-to-nearest
    try:
        # int / int is correctly rounded in CPython, subnormals and underflow to +-0 included.
        return exact.numerator / exact.denominator
    except OverflowError:
        return float("inf") if exact > 0 else float("-inf")
