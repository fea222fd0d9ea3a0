"""The pure NumPy reference: the same maths and signatures as the native code, written for clarity.

Tests hold the native kernels to this bit for bit. NumPy's +, -, *, / and sqrt are correctly
rounded IEEE operations in the array's dtype; the only operation NumPy lacks is the fused
multiply-add, which ``adagrad._exact.fma`` provides exactly. Speed is not a goal here.
"""

from __future__ import annotations

import math
import operator
from fractions import Fraction
from typing import Any

import numpy as np

from . import _core, optimizer
from ._exact import fma

__all__ = ["Adagrad", "sparse_update", "update"]


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


def _all_finite(grads: list[tuple[str, np.ndarray]], nonfinite: str) -> bool:
    """nonfinite="skip": False if any grad holds a NaN or an infinity; "raise": raise instead."""
    _core.check_step_options(nonfinite, None)
    if nonfinite == "propagate":
        return True
    for name, grad in grads:
        if not np.isfinite(grad).all():
            if nonfinite == "skip":
                return False
            raise _core.NonFiniteGradError(f"{name} holds a non-finite value; nonfinite='raise': nothing was updated")
    return True


def _divisor(grad_scale: float | None, dtype: Any) -> Any:
    """The loss scale as the update divides by it: rounded to float32, then to the array's dtype."""
    _core.check_step_options("propagate", grad_scale)
    return None if grad_scale is None else dtype(np.float32(grad_scale))


def update(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    *,
    step: int,
    lr: float = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    eps: float = 1e-10,
    maximize: bool = False,
    decoupled_weight_decay: bool = False,
    eps_inside_sqrt: bool = False,
    nonfinite: str = "propagate",
    grad_scale: float | None = None,
) -> bool:
    """Reference for :func:`adagrad.update`: same signature, same bits, in plain NumPy."""
    dtype = param.dtype.type
    if grad.dtype != param.dtype or state_sum.dtype != param.dtype:
        raise TypeError("param, grad and state_sum must share one dtype")
    if grad.shape != param.shape or state_sum.shape != param.shape:
        raise ValueError("param, grad and state_sum must share one shape")
    divisor = _divisor(grad_scale, dtype)
    if not _all_finite([("grad", grad)], nonfinite):
        return False

    lr, lr_decay, weight_decay, eps = float(lr), float(lr_decay), float(weight_decay), float(eps)
    clr = corrected_lr(lr, lr_decay, step)
    with np.errstate(all="ignore"):  # inf and nan propagate as in the kernel
        g = grad.copy()
        if divisor is not None:
            g = g / divisor
        if maximize:
            g = -g
        if weight_decay != 0:
            if decoupled_weight_decay:
                param *= dtype(1 - clr * weight_decay)
            else:
                g = fma(param, np.full_like(param, weight_decay), g)
        state_sum[...] = fma(g, g, state_sum)
        if eps_inside_sqrt:
            denom = np.sqrt(state_sum + dtype(eps))
        else:
            denom = np.sqrt(state_sum) + dtype(eps)
        param -= (dtype(clr) * g) / denom
    return True


def sparse_update(
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    state: np.ndarray,
    *,
    step: int,
    lr: float = 1e-2,
    lr_decay: float = 0.0,
    eps: float = 1e-10,
    weight_decay: float = 0.0,
    maximize: bool = False,
    eps_inside_sqrt: bool = False,
    decoupled_weight_decay: bool = False,
    duplicates: str = "sum",
    nonfinite: str = "propagate",
    grad_scale: float | None = None,
) -> bool:
    """Reference for :func:`adagrad.sparse_update`: one row at a time, in plain NumPy."""
    options = {
        "step": step,
        "lr": lr,
        "lr_decay": lr_decay,
        "eps": eps,
        "weight_decay": weight_decay,
        "maximize": maximize,
        "eps_inside_sqrt": eps_inside_sqrt,
        "decoupled_weight_decay": decoupled_weight_decay,
        "grad_scale": grad_scale,
    }
    rows = [int(i) for i in indices]
    if not all(0 <= r < table.shape[0] for r in rows):
        raise ValueError("index out of range")
    if duplicates not in ("sum", "sequential"):
        raise ValueError("duplicates must be 'sum' or 'sequential'")
    _divisor(grad_scale, table.dtype.type)
    if not _all_finite([("values", values)], nonfinite):
        return False
    if duplicates == "sequential":
        for i, row in enumerate(rows):
            _update_row(table, state, row, values[i].copy(), **options)
    elif duplicates == "sum":
        occurrences: dict[int, list[int]] = {}
        for i, row in enumerate(rows):
            occurrences.setdefault(row, []).append(i)
        for row, where in occurrences.items():  # rows are independent: any order
            g = np.zeros(table.shape[1], table.dtype)
            with np.errstate(all="ignore"):  # inf + -inf is nan, as in the kernel
                for i in where:
                    g = g + values[i]  # from +0, in input order: the dense-equivalent gradient
            _update_row(table, state, row, g, **options)
    return True


def _update_row(table: np.ndarray, state: np.ndarray, row: int, g: np.ndarray, **options: Any) -> None:
    if state.ndim == 2:
        update(table[row], g, state[row], **options)
    else:
        _rowwise_update(table[row], g, state, row, **options)


def _rowwise_update(
    param: np.ndarray,
    g: np.ndarray,
    state: np.ndarray,
    row: int,
    *,
    step: int,
    lr: float,
    lr_decay: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    eps_inside_sqrt: bool,
    decoupled_weight_decay: bool,
    grad_scale: float | None,
) -> None:
    """One accumulator per row: s += mean(g^2), with the canonical 8-lane sum of squares."""
    dtype = param.dtype.type
    d = param.size
    lr, lr_decay, weight_decay, eps = float(lr), float(lr_decay), float(weight_decay), float(eps)
    clr = corrected_lr(lr, lr_decay, step)
    divisor = _divisor(grad_scale, dtype)
    with np.errstate(all="ignore"):
        if divisor is not None:
            g = g / divisor
        if maximize:
            g = -g
        if weight_decay != 0:
            if decoupled_weight_decay:
                param *= dtype(1 - clr * weight_decay)
            else:
                g = fma(param, np.full_like(param, weight_decay), g)
        # Element j goes to lane j % 8, lanes accumulate by fma in increasing j (zero padding
        # leaves a lane unchanged), then a fixed pairwise tree.
        padded = np.zeros(-(-d // 8) * 8, param.dtype)
        padded[:d] = g
        lanes = np.zeros(8, param.dtype)
        for chunk in padded.reshape(-1, 8):
            lanes = fma(chunk, chunk, lanes)
        total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
        s = state[row] + total / dtype(d)
        state[row] = s
        denom = np.sqrt(s + dtype(eps)) if eps_inside_sqrt else np.sqrt(s) + dtype(eps)
        param -= (dtype(clr) * g) / denom


class Adagrad(optimizer.Adagrad):
    """Reference for :class:`adagrad.Adagrad`: the same params, state and API; each tensor is
    updated by :func:`update` above, one at a time, in a Python loop."""

    def _apply(self, batches: list[tuple[Any, ...]]) -> bool:
        # Every grad is checked before any is applied: skip and raise change nothing.
        named = [
            (f"grad of {name}", grad[1] if isinstance(grad, tuple) else grad)
            for _params, grads, _sums, _steps, labels, *_ in batches
            for name, grad in zip(labels, grads)
            if grad is not None
        ]
        if not _all_finite(named, self.nonfinite):
            return False
        for params, grads, sums, steps, _labels, *options, duplicates in batches:
            hyper = dict(zip(optimizer.OPTION_NAMES, options))
            for i, (param, grad) in enumerate(zip(params, grads)):
                if grad is None:
                    continue
                step = int(steps[i]) + 1
                if isinstance(grad, tuple):
                    indices, values = grad
                    sparse_update(
                        param,
                        indices,
                        values,
                        sums[i],
                        step=step,
                        duplicates=duplicates,
                        grad_scale=self.grad_scale,
                        **hyper,
                    )
                else:
                    update(param, grad, sums[i], step=step, grad_scale=self.grad_scale, **hyper)
                steps[i] += 1
        return True
