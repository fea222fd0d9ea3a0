"""Validated single-call functions over arrays."""

from __future__ import annotations

import numpy as np

from . import _core

__all__ = ["sparse_update", "update"]


def sr_seed(stochastic_rounding: bool, seed: int) -> int | None:
    """The native call's ``sr_seed``: None (round to nearest even) or the seed (checked there)."""
    if not isinstance(stochastic_rounding, (bool, np.bool_)):
        raise TypeError(f"stochastic_rounding must be a bool, got {type(stochastic_rounding).__name__}")
    return seed if stochastic_rounding else None


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
    max_grad_norm: float | None = None,
    norm_type: float | str = 2.0,
    clip_norm_per_tensor: float | None = None,
    clip_value: float | None = None,
    stochastic_rounding: bool = False,
    seed: int = 0,
) -> bool:
    r"""One Adagrad update of one array, in place (``param`` and ``state_sum`` are written).

    Element-wise, in the arrays' dtype (float32 or float64; float16 and bfloat16 arrays are widened
    to float32, updated there and rounded back once, to nearest even), each operation rounded once::

        g     <- grad / grad_scale                           if grad_scale is not None
        g     <- clip(g)                                     if a clip option is set
        g     <- -g if maximize
        g     <- fma(param, weight_decay, g)                 if weight_decay, coupled (default)
        param <- param * (1 - clr * weight_decay)            if weight_decay, decoupled
        clr    = lr / fma(step - 1, lr_decay, 1)             computed in double, then rounded
        state_sum <- fma(g, g, state_sum)
        param <- param - (clr * g) / (sqrt(state_sum) + eps)     [eps_inside_sqrt: / sqrt(state_sum + eps)]

    ``step`` is the 1-based number of this update (it only matters with ``lr_decay``). Defaults are
    torch.optim.Adagrad's: lr=1e-2, lr_decay=0, weight_decay=0, eps=1e-10. The three arrays must
    share dtype (a float16 / bfloat16 param's state_sum may be float32), shape and memory order,
    be contiguous and not overlap; ``param`` and ``state_sum`` must be writeable. Nothing is cast or
    copied: a mismatch raises TypeError or ValueError before anything is written.

    ``grad_scale`` (loss scaling, as torch's fused kernel's ``grad_scale``): the divisor is the value
    rounded to float32, then converted to the arrays' dtype; ``grad`` itself is not modified.
    ``nonfinite``: ``"propagate"`` (default) computes with NaN and infinity in ``grad``;
    ``"skip"`` writes nothing and returns False if ``grad`` holds one; ``"raise"`` raises
    :class:`adagrad.NonFiniteGradError` (a ValueError) and writes nothing. Returns True when the
    update was applied.

    Clipping (at most one; see :class:`adagrad.Adagrad` for the exact arithmetic): ``max_grad_norm``
    scales ``grad`` as torch's ``clip_grad_norm_`` would, ``clip_norm_per_tensor`` as Keras's
    ``clipnorm``, both by the ``norm_type`` norm (2 or inf) of this one grad; ``clip_value`` clamps
    each element to ``[-clip_value, clip_value]``. ``grad`` itself is not modified.

    ``stochastic_rounding=True`` (float16 / bfloat16 params; other dtypes have nothing to round):
    the updated param is rounded to its dtype stochastically instead of to nearest even, up or down
    with probabilities that make the rounding unbiased (``E[round(x)] = x``), so that updates
    smaller than half a 16-bit step still move the param on average. The random bits are a pure
    function of ``(seed, step, element index)`` (:mod:`adagrad.stochastic_rounding`): reruns, thread
    counts and instruction sets give the same bits. ``seed``: an int from 0 to 2**64 - 1; use a
    different one per array (the optimizers give each param its own stream).

    Example:
        >>> import numpy as np, adagrad
        >>> w = np.array([1.0, 2.0])
        >>> s = np.zeros(2)
        >>> adagrad.update(w, np.array([0.5, -0.5]), s, step=1, lr=0.1)
        True
        >>> w, s
        (array([0.9, 2.1]), array([0.25, 0.25]))

    With stochastic rounding, a step of 2e-4 down from 1.0 in float16 (under half the float16
    spacing there, 4.9e-4: round to nearest keeps every 1.0) lands on 1 - 2**-11 with
    probability 0.41:

        >>> w16 = np.ones(8, np.float16)
        >>> adagrad.update(w16, np.ones(8, np.float16), np.zeros(8, np.float32), step=1, lr=2e-4,
        ...                stochastic_rounding=True, seed=0)
        True
        >>> w16
        array([0.9995, 1.    , 1.    , 0.9995, 1.    , 0.9995, 0.9995, 1.    ],
              dtype=float16)
    """
    return _core.update(
        param,
        grad,
        state_sum,
        step,
        lr,
        lr_decay,
        weight_decay,
        eps,
        maximize,
        decoupled_weight_decay,
        eps_inside_sqrt,
        nonfinite,
        grad_scale,
        max_grad_norm,
        norm_type,
        clip_norm_per_tensor,
        clip_value,
        sr_seed(stochastic_rounding, seed),
    )


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
    max_grad_norm: float | None = None,
    norm_type: float | str = 2.0,
    clip_norm_per_tensor: float | None = None,
    clip_value: float | None = None,
    stochastic_rounding: bool = False,
    seed: int = 0,
) -> bool:
    r"""Adagrad on the indexed rows of a 2-D table, in place; rows not indexed are never touched.

    ``table`` is (R, D), C-contiguous float32/float64/float16/bfloat16; ``indices`` is 1-D
    int32/int64 of length k, every index in [0, R); ``values`` is (k, D) of the table's dtype: row
    ``indices[i]`` receives gradient ``values[i]``. A 16-bit table's state is of its dtype or
    float32; its rows are computed in float32 (a repeated index's values summed in float32) and
    rounded back once; it takes Adagrad without ``maximize``, ``decoupled_weight_decay`` or a clip
    (TypeError). The shape of ``state`` picks the variant:

    - (R, D): element-wise Adagrad, each touched row updated exactly as :func:`update` would.
    - (R,): row-wise Adagrad (FBGEMM / TorchRec EXACT_ROWWISE_ADAGRAD), one accumulator per row::

          s_r <- s_r + mean_j(g_rj^2)      theta_rj <- theta_rj - clr * g_rj / (sqrt(s_r) + eps)

      (R floats of state instead of R*D; the sum of squares has one fixed order on every CPU.)

    ``duplicates="sum"`` (default, torch's sparse semantics) adds the values of a repeated index in
    input order and updates the row once: bit for bit :func:`update` on the touched rows of the
    dense gradient ``np.add.at(zeros, indices, values)``. ``duplicates="sequential"`` (FBGEMM /
    TF raw ops) applies each occurrence as its own update, in input order.

    ``weight_decay`` (coupled, or decoupled as in :func:`update`) is lazy: it applies to the touched
    rows only (torch refuses weight decay with sparse gradients; FBGEMM is lazy too). Every index
    is checked before anything is written.

    ``grad_scale`` divides the gradient each row update sees (in ``"sum"`` mode the summed row, so
    that the result stays bit for bit the dense-equivalent update), as in :func:`update`.
    ``nonfinite`` checks ``values`` as given: ``"skip"`` writes nothing and returns False if one
    is a NaN or an infinity, ``"raise"`` raises :class:`adagrad.NonFiniteGradError`. (A sum of
    finite repeated values that overflows is not caught: the check reads the input.) Returns True
    when the update was applied.

    The clip options are :func:`update`'s. A norm is of ``values`` as given (for unique indices,
    the norm of the dense gradient; for repeated ones, of the occurrences); the clip applies to the
    gradient each row update sees (in ``"sum"`` mode the summed row, after ``grad_scale``).

    ``stochastic_rounding`` and ``seed``: as in :func:`update`, for a 16-bit table's rows. Element
    ``(row, j)`` draws the bits of index ``row * D + j`` with ``"sum"``, and of ``i * D + j`` for
    occurrence ``i`` with ``"sequential"``: a repeated row's occurrences draw fresh bits.

    Example:
        >>> import numpy as np, adagrad
        >>> table = np.zeros((5, 2), np.float32)
        >>> state = np.zeros_like(table)
        >>> idx = np.array([3, 1, 3])
        >>> vals = np.array([[1, 1], [2, 2], [1, -3]], np.float32)
        >>> adagrad.sparse_update(table, idx, vals, state, step=1, lr=0.1)
        True
        >>> table
        array([[ 0. ,  0. ],
               [-0.1, -0.1],
               [ 0. ,  0. ],
               [-0.1,  0.1],
               [ 0. ,  0. ]], dtype=float32)
    """
    return _core.sparse_update(
        table,
        indices,
        values,
        state,
        step,
        lr,
        lr_decay,
        eps,
        weight_decay,
        maximize,
        eps_inside_sqrt,
        decoupled_weight_decay,
        duplicates,
        nonfinite,
        grad_scale,
        max_grad_norm,
        norm_type,
        clip_norm_per_tensor,
        clip_value,
        sr_seed(stochastic_rounding, seed),
    )
