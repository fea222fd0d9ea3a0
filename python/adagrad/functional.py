"""Validated single-call functions over arrays."""

from __future__ import annotations

import numpy as np

from . import _core

__all__ = ["update"]


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
    r"""One Adagrad update of one array, in place (``param`` and ``state_sum`` are written).

    Element-wise, in the arrays' dtype (float32 or float64), each operation rounded once::

        g     <- -grad if maximize else grad
        g     <- fma(param, weight_decay, g)                 if weight_decay, coupled (default)
        param <- param * (1 - clr * weight_decay)            if weight_decay, decoupled
        clr    = lr / (1 + (step - 1) * lr_decay)            computed in double, then rounded
        state_sum <- fma(g, g, state_sum)
        param <- param - (clr * g) / (sqrt(state_sum) + eps)     [eps_inside_sqrt: / sqrt(state_sum + eps)]

    ``step`` is the 1-based number of this update (it only matters with ``lr_decay``). Defaults are
    torch.optim.Adagrad's: lr=1e-2, lr_decay=0, weight_decay=0, eps=1e-10. The three arrays must
    share dtype, shape and memory order, be contiguous and not overlap; ``param`` and ``state_sum``
    must be writeable. Nothing is cast or copied: a mismatch raises TypeError or ValueError before
    anything is written.

    Example:
        >>> import numpy as np, adagrad
        >>> w = np.array([1.0, 2.0])
        >>> s = np.zeros(2)
        >>> adagrad.update(w, np.array([0.5, -0.5]), s, step=1, lr=0.1)
        >>> w, s
        (array([0.9, 2.1]), array([0.25, 0.25]))
    """
    _core.update(
        param, grad, state_sum, step, lr, lr_decay, weight_decay, eps, maximize, decoupled_weight_decay, eps_inside_sqrt
    )
