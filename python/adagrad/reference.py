"""The pure NumPy reference: the same maths and signatures as the native code, written for clarity.

Tests hold the native kernels to this bit for bit. NumPy's +, -, *, / and sqrt are correctly
rounded IEEE operations in the array's dtype; the only operation NumPy lacks is the fused
multiply-add, which ``adagrad._exact.fma`` provides exactly. Speed is not a goal here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import optimizer
from ._exact import fma

__all__ = ["Adagrad", "update"]


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
) -> None:
    """Reference for :func:`adagrad.update`: same signature, same bits, in plain NumPy."""
    dtype = param.dtype.type
    if grad.dtype != param.dtype or state_sum.dtype != param.dtype:
        raise TypeError("param, grad and state_sum must share one dtype")
    if grad.shape != param.shape or state_sum.shape != param.shape:
        raise ValueError("param, grad and state_sum must share one shape")

    clr = lr / (1 + (step - 1) * lr_decay)  # Python floats: IEEE double, like the kernel
    with np.errstate(all="ignore"):  # inf and nan propagate as in the kernel
        g = -grad if maximize else grad.copy()
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


class Adagrad(optimizer.Adagrad):
    """Reference for :class:`adagrad.Adagrad`: the same params, state and API; each tensor is
    updated by :func:`update` above, one at a time, in a Python loop."""

    def _apply(self, batches: list[tuple[Any, ...]]) -> None:
        for params, grads, sums, steps, _labels, *options in batches:
            hyper = dict(zip(optimizer.OPTION_NAMES, options))
            for i, (param, grad) in enumerate(zip(params, grads)):
                if grad is None:
                    continue
                update(param, grad, sums[i], step=int(steps[i]) + 1, **hyper)
                steps[i] += 1
