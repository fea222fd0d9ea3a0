"""The reference's exact fma against an oracle in exact rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from adagrad.reference.exact import fma


def oracle(a: float, b: float, c: float, dtype: type) -> float:
    """Round the exact a*b + c to dtype: the nearest of the finite values around it, ties to even."""
    if not np.isfinite(a) or not np.isfinite(b):
        with np.errstate(all="ignore"):  # an infinite or nan factor: the product is exactly that
            return float(np.asarray(a, dtype) * np.asarray(b, dtype) + np.asarray(c, dtype))
    if not np.isfinite(c):
        return c  # a finite exact product cannot change an infinite or nan addend
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:
        # Both addends zero: -0 only if both are -0. Opposite non-zero addends: +0.
        product_is_negative_zero = (a == 0 or b == 0) and np.signbit(a) != np.signbit(b)
        return -0.0 if product_is_negative_zero and c == 0 and np.signbit(c) else 0.0
    big = np.finfo(dtype).max
    overflow_at = Fraction(float(big)) + (Fraction(float(big)) - Fraction(float(np.nextafter(big, dtype(0))))) / 2
    if abs(exact) >= overflow_at:
        return float("inf") if exact > 0 else float("-inf")
    guess = dtype(float(exact))
    candidates = [guess, np.nextafter(guess, dtype(np.inf)), np.nextafter(guess, dtype(-np.inf))]
    finite = [x for x in candidates if np.isfinite(x)]
    nearest = min(finite, key=lambda x: (abs(Fraction(float(x)) - exact), int(np.asarray(x).view(_uint(dtype))) & 1))
    if nearest == 0:
        return -0.0 if exact < 0 else 0.0
    return float(nearest)


def _uint(dtype: type) -> type:
    return np.uint32 if dtype == np.float32 else np.uint64


def float32_double_rounding_cases() -> list[tuple[float, float, float]]:
    """a*b + c just below a float32 tie whose float64 rounding lands exactly on the tie.

    c = 1 + 2^-23 (odd last bit), a*b = 2^-24 (1 - k^2 2^-46): the float64 sum is the tie
    1 + 3*2^-24, which rounds to even (up) while the exact value must round down.
    """
    cases = []
    for k in (1, 2, 3, 100, 300):
        a = np.float32(1 + k * 2.0**-23)
        b = np.float32(2.0**-24 * (1 - k * 2.0**-23))
        cases.append((float(a), float(b), float(np.float32(1 + 2.0**-23))))
    return cases


def float64_fused_cases() -> list[tuple[float, float, float]]:
    cases = []
    for k in (1, 3, 1000):
        # Cancellation: the unfused product loses the k^2 2^-104 term entirely.
        cases.append((1 + k * 2.0**-52, 1 - k * 2.0**-52, -1.0))
        # Just below a float64 tie at 1 + 3*2^-53.
        cases.append((2.0**-53 * (1 + k * 2.0**-52), 1 - k * 2.0**-52, 1 + 2.0**-52))
    return cases


EDGE_VALUES = [0.0, -0.0, 1.0, -1.0, 1e-30, 3e38, -3e38, 1e-45, 1e300, 1e-300, 5e-324, np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("a, b, c", float32_double_rounding_cases())
def test_float32_tie_cases_round_once(a: float, b: float, c: float) -> None:
    got = fma(np.float32([a]), np.float32([b]), np.float32([c]))[0]
    assert got == np.float32(oracle(a, b, c, np.float32))
    # The tempting shortcut is wrong here: this is what the test guards against.
    shortcut = np.float32(np.float64(a) * np.float64(b) + np.float64(c))
    assert shortcut != got


@pytest.mark.parametrize("a, b, c", float64_fused_cases())
def test_float64_cases_round_once(a: float, b: float, c: float) -> None:
    got = fma(np.float64([a]), np.float64([b]), np.float64([c]))[0]
    assert got == oracle(a, b, c, np.float64)
    assert a * b + c != got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1.0, 1e-20, 1e20])
def test_random_against_rational_oracle(dtype: type, scale: float) -> None:
    rng = np.random.default_rng(7)
    n = 3000
    a = (rng.standard_normal(n) * scale).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    c = -(a.astype(np.float64) * b).astype(dtype) * dtype(1 + 1e-3 * rng.standard_normal())  # heavy cancellation
    c[::3] = rng.standard_normal(len(c[::3])).astype(dtype)
    got = fma(a, b, c)
    want = np.array([oracle(float(x), float(y), float(z), dtype) for x, y, z in zip(a, b, c)], dtype)
    np.testing.assert_array_equal(got.view(_uint(dtype)), want.view(_uint(dtype)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_edge_values_against_oracle(dtype: type) -> None:
    values = np.array(EDGE_VALUES, dtype=np.float64)
    with np.errstate(all="ignore"):
        grid = np.array(np.meshgrid(values, values, values)).reshape(3, -1).astype(dtype)
    got = fma(grid[0], grid[1], grid[2])
    want = np.array([oracle(float(x), float(y), float(z), dtype) for x, y, z in grid.T], dtype)
    same = (got.view(_uint(dtype)) == want.view(_uint(dtype))) | (np.isnan(got) & np.isnan(want))
    assert same.all(), list(zip(grid.T[~same][:5], got[~same][:5], want[~same][:5]))


def test_rejects_other_dtypes() -> None:
    with pytest.raises(TypeError, match="float32 and float64"):
        fma(np.ones(2, np.float16), np.ones(2, np.float16), np.ones(2, np.float16))
