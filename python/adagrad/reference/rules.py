"""Each rule's stages after the grad's transforms, element-wise in the compute type T (float32 for
16-bit arrays): every +, -, *, /, sqrt is one correctly rounded IEEE operation in T, fma rounds
once. A rule takes the param, the transformed grad and its float states (all in T) and returns
the new param and states; inf and NaN propagate as in the kernels.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from .exact import fma

__all__ = [
    "Rule",
    "accumulate",
    "adagrad",
    "apply",
    "corrected_lr",
    "da_accumulate",
    "da_apply",
    "decayed",
    "dual_averaging",
    "ftrl",
    "ftrl_root",
    "proximal",
    "proximal_apply",
    "rowwise_accumulate",
    "rowwise_apply",
    "weight_decay",
]

# (param, grad, [float states]) -> (new param, [new float states]), all in the compute type.
Rule = Callable[[np.ndarray, np.ndarray, list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]]


def _t(x: np.ndarray) -> type[np.floating[Any]]:
    scalar: type[np.floating[Any]] = x.dtype.type
    return scalar


def corrected_lr(lr: float, lr_decay: float, step: int) -> float:
    """clr = lr / fma(step - 1, lr_decay, 1) in IEEE double: the denominator rounded once (exact
    rational arithmetic, then one rounding), as torch's fused kernel computes it where its
    compiler contracts ``1 + (t - 1) * lr_decay`` to an fma (x86 AVX2/AVX-512 and aarch64 builds)."""
    # step - 1 as the kernel sees it: an int64 converted to double (rounded beyond 2**53).
    exact = Fraction(float(operator.index(step) - 1)) * Fraction(float(lr_decay)) + 1
    try:
        denominator = float(exact)
    except OverflowError:  # rounds beyond the largest double
        denominator = math.inf
    return float(lr) / denominator  # float(): a NumPy float32 lr would keep the division in float32


# -- Adagrad ----------------------------------------------------------------------------------


def weight_decay(
    p: np.ndarray, g: np.ndarray, *, wd: float, clr: float, decoupled: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(p, g) after weight decay: coupled g <- fma(p, T(wd), g); decoupled p <- p * T(1 - clr * wd)
    (the factor in double, rounded once to T); nothing for wd = 0."""
    t = _t(p)
    if wd == 0:
        return p, g
    if decoupled:
        return p * t(1 - clr * wd), g
    return p, fma(p, np.full_like(p, wd), g)


def accumulate(g: np.ndarray, s: np.ndarray) -> np.ndarray:
    """s <- fma(g, g, s)."""
    return fma(g, g, s)


def rowwise_accumulate(g: np.ndarray, s: np.ndarray) -> np.ndarray:
    """One accumulator per row: s <- s + (sum of g_j^2) / T(dim), the sum in FBGEMM's fixed order:
    g_j^2 rounded, then added to lane j % 8 in increasing j (lanes from +0), then
    ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))."""
    t = _t(g)
    padded = np.zeros(-(-g.size // 8) * 8, t)  # a zero leaves a lane unchanged
    padded[: g.size] = g
    lanes = np.zeros(8, t)
    for chunk in padded.reshape(-1, 8):
        lanes = lanes + chunk * chunk
    total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    return np.asarray(s + total / t(g.size))


def apply(p: np.ndarray, g: np.ndarray, s: np.ndarray, *, clr: float, eps: float, eps_inside_sqrt: bool) -> np.ndarray:
    """p - (T(clr) * g) / (sqrt(s) + T(eps)), or with eps inside the root: / sqrt(s + T(eps))."""
    t = _t(p)
    denominator = np.sqrt(s + t(eps)) if eps_inside_sqrt else np.sqrt(s) + t(eps)
    return np.asarray(p - (t(clr) * g) / denominator)


def rowwise_apply(
    p: np.ndarray, g: np.ndarray, s: np.ndarray, *, clr: float, eps: float, eps_inside_sqrt: bool
) -> np.ndarray:
    """One multiplier for the row, m = T(clr) / (sqrt(s) + T(eps)) (or / sqrt(s + T(eps))), then
    p - m * g (FBGEMM's row-wise update)."""
    t = _t(p)
    denominator = np.sqrt(s + t(eps)) if eps_inside_sqrt else np.sqrt(s) + t(eps)
    m = t(clr) / denominator
    return np.asarray(p - m * g)


def adagrad(
    p: np.ndarray,
    g: np.ndarray,
    states: list[np.ndarray],
    *,
    clr: float,
    wd: float = 0.0,
    decoupled: bool = False,
    eps: float = 1e-10,
    eps_inside_sqrt: bool = False,
    rowwise: bool = False,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Adagrad: weight decay, then accumulate (element-wise; or row-wise: p and g one row, s its
    one accumulator), then apply (row-wise: one multiplier per row)."""
    (s,) = states
    with np.errstate(all="ignore"):
        p, g = weight_decay(p, g, wd=wd, clr=clr, decoupled=decoupled)
        if rowwise:
            s = rowwise_accumulate(g, s)
            return rowwise_apply(p, g, s, clr=clr, eps=eps, eps_inside_sqrt=eps_inside_sqrt), [s]
        s = accumulate(g, s)
        return apply(p, g, s, clr=clr, eps=eps, eps_inside_sqrt=eps_inside_sqrt), [s]


# -- Proximal Adagrad -------------------------------------------------------------------------


def proximal_apply(
    p: np.ndarray, g: np.ndarray, s: np.ndarray, *, lr: float, l1: float, l2: float, eps: float = 0.0
) -> np.ndarray:
    """eta = T(lr) / (sqrt(s) + T(eps)) (no addition for eps = 0); v = fma(-eta, g, p);
    if l1 > 0: v = sign(v) * max(fma(-eta, T(l1), |v|), 0)  (exact zeros);
    p <- v / fma(eta, T(l2), 1)."""
    t = _t(p)
    root = np.sqrt(s) + t(eps) if eps > 0 else np.sqrt(s)
    eta = t(lr) / root
    v = fma(-eta, g, p)
    if l1 > 0:
        v = np.copysign(np.maximum(fma(-eta, np.full_like(v, l1), np.abs(v)), t(0)), v)
    return np.asarray(v / fma(eta, np.full_like(v, l2), np.ones_like(v)))


def proximal(
    p: np.ndarray, g: np.ndarray, states: list[np.ndarray], *, lr: float, l1: float, l2: float, eps: float = 0.0
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Proximal Adagrad (TensorFlow's ApplyProximalAdagrad): accumulate, then the proximal apply."""
    (s,) = states
    with np.errstate(all="ignore"):
        s = accumulate(g, s)
        return proximal_apply(p, g, s, lr=lr, l1=l1, l2=l2, eps=eps), [s]


# -- Adagrad-DA -------------------------------------------------------------------------------


def da_accumulate(g: np.ndarray, a: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """a <- a + g;  s <- fma(g, g, s)."""
    return np.asarray(a + g), fma(g, g, s)


def da_apply(a: np.ndarray, s: np.ndarray, *, step: int, lr: float, l1: float, l2: float) -> np.ndarray:
    """TensorFlow's constants l1_t = T(step) * T(l1), l2_t = T(l2) * (T(step) * T(lr)); then
    p = -sign(a) * (T(lr) * max(|a| - l1_t, 0)) / (sqrt(s) + l2_t), whatever p was."""
    t = _t(a)
    step_t = t(operator.index(step))
    l1_t, l2_t = step_t * t(l1), t(l2) * (step_t * t(lr))
    shrunk = np.maximum(np.abs(a) - l1_t, t(0))
    return np.asarray(-np.copysign((t(lr) * shrunk) / (np.sqrt(s) + l2_t), a))


def dual_averaging(
    p: np.ndarray, g: np.ndarray, states: list[np.ndarray], *, step: int, lr: float, l1: float, l2: float
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Adagrad-DA (TensorFlow's ApplyAdagradDA): accumulate a and s, then the closed-form apply."""
    a, s = states
    with np.errstate(all="ignore"):
        a, s = da_accumulate(g, a, s)
        return da_apply(a, s, step=step, lr=lr, l1=l1, l2=l2), [a, s]


# -- AdagradDecay -----------------------------------------------------------------------------


def decayed(s: np.ndarray, periods: int, rate: float, floor: float, t: type[np.floating[Any]]) -> np.ndarray:
    """s decayed `periods` times, each decay s <- max(s * T(rate), T(floor)) computed in T (a NaN
    product stays NaN) and rounded to s's dtype before the next; it stops early once a decay
    changes nothing (then no later one can)."""
    out = s.copy()
    with np.errstate(all="ignore"):
        for _ in range(periods):
            product = out.astype(t) * t(rate)
            nxt = np.where(np.isnan(product) | (product > t(floor)), product, t(floor)).astype(s.dtype)
            if np.array_equal(nxt, out, equal_nan=True):
                break
            out = nxt
    return out


# -- FTRL-Proximal ----------------------------------------------------------------------------


def _libm_pow(x: float, exponent: float) -> float:
    """The C library's pow(x, exponent) in double (math.pow calls it), with C's results where Python
    raises: NaN for a negative x and a non-integer exponent, an infinity on overflow."""
    try:
        return math.pow(x, exponent)
    except ValueError:
        return math.nan
    except OverflowError:
        odd = exponent.is_integer() and exponent % 2 == 1
        return math.copysign(math.inf, x) if odd else math.inf


def ftrl_root(x: np.ndarray, lr_power: float) -> np.ndarray:
    """x ** -lr_power in T: sqrt(x) at lr_power = -0.5, 1 at lr_power = 0, otherwise libm's pow in
    double for each element, rounded once to T."""
    t = _t(x)
    if lr_power == -0.5:
        return np.sqrt(x)
    if lr_power == 0:
        return np.ones_like(x)
    exponent = -float(lr_power)
    values = [t(_libm_pow(float(v), exponent)) for v in x.ravel()]
    return np.array(values, dtype=t).reshape(x.shape)


def ftrl(
    p: np.ndarray,
    g: np.ndarray,
    states: list[np.ndarray],
    *,
    lr: float,
    lr_power: float,
    l1: float,
    l2: float,
    l2_shrinkage: float,
    beta: float,
    multiply_linear_by_lr: bool,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """FTRL-Proximal (TensorFlow's ApplyFtrlV2, Keras's beta) in T, TensorFlow's constants and order:
    l2' = T(l2) + T(beta) / (2 * T(lr)) (beta > 0); g' = g + (2 * T(l2_shrinkage)) * p (l2_shrinkage > 0);
    n' = fma(g, g, n); d = r(n') - r(n); z <- z + (g' - (d / lr) * p), q = r(n') / lr + 2 * l2'
    [multiply_linear_by_lr: z <- z + (g' * lr - d * p), q = r(n') + (2 * l2') * lr, l1 * lr];
    p <- -sign(z) * (max(|z| - l1, 0) / q) where that is > 0, else +0 (0 / 0 and a NaN z give 0)."""
    n, z = states
    t = _t(p)
    lr_t, two = t(lr), t(2)
    l2_t = t(l2) + t(beta) / (two * lr_t) if beta > 0 else t(l2)
    l1_t, two_l2 = t(l1), two * l2_t
    if multiply_linear_by_lr:
        l1_t, two_l2 = l1_t * lr_t, two_l2 * lr_t
    with np.errstate(all="ignore"):
        gs = g + (two * t(l2_shrinkage)) * p if l2_shrinkage > 0 else g
        n_new = fma(g, g, n)
        root_new = ftrl_root(n_new, lr_power)
        step = root_new - ftrl_root(n, lr_power)
        if multiply_linear_by_lr:
            z = z + (gs * lr_t - step * p)
            q = root_new + two_l2
        else:
            z = z + (gs - (step / lr_t) * p)
            q = root_new / lr_t + two_l2
        # The kernels' max(a, b) = a > b ? a : b (x86's: b when either is NaN).
        excess = np.abs(z) - l1_t
        shrunk = np.where(t(0) > excess, t(0), excess)
        w = shrunk / q
        w = np.where(w > t(0), w, t(0))
        return np.asarray(-np.copysign(w, z) + t(0), dtype=t), [np.asarray(n_new, dtype=t), np.asarray(z, dtype=t)]
