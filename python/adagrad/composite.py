"""Adagrad's variants as single calls, dense and sparse: the paper's composite ones (Proximal
Adagrad, Adagrad-DA) and DeepRec's AdagradDecay (at the end).

Duchi, Hazan & Singer (2011) give two algorithms for a loss plus a regularizer
``l1 * |theta|_1 + (l2 / 2) * |theta|_2^2``: composite mirror descent (Proximal Adagrad) and
regularized dual averaging (Adagrad-DA). With ``l1 > 0`` both set weights to exactly zero: truly
sparse models. TensorFlow ships them as raw ops (``ApplyProximalAdagrad``, ``ApplyAdagradDA`` and
their sparse forms); these are the same maths with every operation correctly rounded (IEEE ``sqrt``
and ``/``, fused multiply-adds where written), so that every instruction set, thread count and
:mod:`adagrad.reference` give the same bits. TensorFlow's CPU kernels take ``lr * rsqrt(s)`` through
Eigen (a fast approximation on x86), so Proximal Adagrad's results differ from theirs in the last
bits; its Adagrad-DA forms the same constants and differs only in ``s += g * g`` (ours one fma).
"""

from __future__ import annotations

import numpy as np

from . import _core

__all__ = [
    "da_update",
    "decay_update",
    "proximal_update",
    "sparse_da_update",
    "sparse_decay_update",
    "sparse_proximal_update",
]


def proximal_update(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    *,
    lr: float,
    l1: float = 0.0,
    l2: float = 0.0,
    nonfinite: str = "propagate",
) -> bool:
    r"""One Proximal Adagrad update of one array, in place (``param`` and ``state_sum`` are written).

    Element-wise, in the arrays' dtype (float32 or float64), each operation rounded once::

        state_sum <- fma(grad, grad, state_sum)
        eta   <- lr / sqrt(state_sum)
        v     <- fma(-eta, grad, param)                        (param - eta * grad)
        v     <- copysign(max(fma(-eta, l1, |v|), 0), v)      if l1 > 0 (soft threshold)
        param <- v / fma(eta, l2, 1)

    TensorFlow's ``ApplyProximalAdagrad``: the proximal step of ``l1 * |theta| + (l2 / 2) * theta^2``
    after an Adagrad step; with ``l1 > 0`` every weight whose step lands within ``eta * l1`` of zero
    becomes exactly 0 (-0.0 when it came from below). There is no eps: ``state_sum`` must be > 0
    wherever ``grad`` may be 0 (the optimizers start it at 0.1), or ``eta`` is infinite and the
    result NaN. ``lr``, ``l1`` and ``l2`` must be finite and >= 0. The three arrays must share dtype,
    shape and memory order, be contiguous and not overlap; nothing is cast or copied.
    ``nonfinite``: as :func:`adagrad.update` (``"propagate"``, ``"skip"`` or ``"raise"``). Returns
    True when the update was applied.

    Example:
        >>> import numpy as np, adagrad
        >>> w = np.array([0.5, 0.001, -2.0])
        >>> s = np.full(3, 0.1)
        >>> adagrad.proximal_update(w, np.array([0.3, 0.3, -0.3]), s, lr=0.1, l1=0.5)
        True
        >>> w  # the middle weight lands within eta * l1 of zero: exactly 0
        array([ 0.31646741, -0.        , -1.81646741])

    Reference: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 12 (2011), section 3 (composite mirror descent).
    """
    return _core.proximal_update(param, grad, state_sum, lr, l1, l2, nonfinite)


def sparse_proximal_update(
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    state: np.ndarray,
    *,
    lr: float,
    l1: float = 0.0,
    l2: float = 0.0,
    duplicates: str = "sum",
    nonfinite: str = "propagate",
) -> bool:
    r"""Proximal Adagrad on the indexed rows of a 2-D table, in place; other rows are never touched.

    ``table`` and ``state`` are (R, D), C-contiguous, one float dtype; ``indices`` 1-D int32/int64 in
    [0, R); ``values`` (k, D): row ``indices[i]`` receives gradient ``values[i]``. Each touched row
    takes :func:`proximal_update`'s step. ``duplicates="sum"`` (default) sums the values of a
    repeated row (in input order, from +0) and updates it once, as TensorFlow's optimizers do before
    calling ``SparseApplyProximalAdagrad``; ``"sequential"`` updates once per occurrence in input
    order, as the raw op itself does. Rows are updated in parallel, each by one thread: the result
    never depends on the thread count. Everything is checked before anything is written.

    Example:
        >>> import numpy as np, adagrad
        >>> table = np.ones((4, 2))
        >>> state = np.full((4, 2), 0.1)
        >>> adagrad.sparse_proximal_update(table, np.array([2, 0, 2]), np.full((3, 2), 0.5), state,
        ...                                lr=0.5, l1=0.9)
        True
        >>> table[:, 0]  # row 2 took its summed grad 1.0, row 0 its 0.5 (and is exactly 0)
        array([0.        , 1.        , 0.09421054, 1.        ])

    Reference: Duchi, Hazan & Singer (2011), section 3; TensorFlow ``SparseApplyProximalAdagrad``.
    """
    return _core.sparse_proximal_update(table, indices, values, state, lr, l1, l2, duplicates, nonfinite)


def da_update(
    param: np.ndarray,
    grad: np.ndarray,
    grad_sum: np.ndarray,
    state_sum: np.ndarray,
    *,
    step: int,
    lr: float,
    l1: float = 0.0,
    l2: float = 0.0,
    nonfinite: str = "propagate",
) -> bool:
    r"""One Adagrad-DA (dual averaging) update of one array, in place.

    ``grad_sum`` is the sum of all gradients so far (TensorFlow's ``gradient_accumulator``, starts at
    0), ``state_sum`` the sum of their squares (``gradient_squared_accumulator``, starts at a value
    > 0, 0.1 in TensorFlow). Element-wise, in the arrays' dtype, each operation rounded once::

        grad_sum  <- grad_sum + grad
        state_sum <- fma(grad, grad, state_sum)
        param <- -copysign(lr * max(|grad_sum| - l1_t, 0) / (sqrt(state_sum) + l2_t), grad_sum)
        l1_t = T(step) * l1,  l2_t = l2 * (T(step) * lr)     (T: the dtype; products rounded in T)

    that is ``param = -lr * shrink(grad_sum) / (l2 * t * lr + sqrt(state_sum))``: the closed-form
    minimizer of the averaged linear loss plus the regularizer, so the new param does not depend on
    the old one. ``step`` is the 1-based number of this update, ``t`` in the formula (TensorFlow's
    ``AdagradDAOptimizer`` passes its global step + 1). With ``l1 > 0``, every weight whose
    ``|grad_sum|`` is at most ``l1 * t`` is exactly 0 (-0.0 for ``grad_sum >= +0``). ``lr``, ``l1``
    and ``l2`` must be finite and >= 0; arrays as for :func:`proximal_update` (four of them).

    Example:
        >>> import numpy as np, adagrad
        >>> w = np.array([1.0, 2.0])
        >>> a = np.zeros(2)
        >>> s = np.full(2, 0.1)
        >>> adagrad.da_update(w, np.array([0.1, 0.2]), a, s, step=1, lr=3.0)
        True
        >>> w  # TensorFlow's adagrad_da_test: [-0.904534, -1.603567]
        array([-0.90453403, -1.60356745])

    Reference: Duchi, Hazan & Singer (2011), section 3 (regularized dual averaging, after Xiao 2010);
    TensorFlow ``ApplyAdagradDA``.
    """
    return _core.da_update(param, grad, grad_sum, state_sum, step, lr, l1, l2, nonfinite)


def sparse_da_update(
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    grad_sum: np.ndarray,
    state: np.ndarray,
    *,
    step: int,
    lr: float,
    l1: float = 0.0,
    l2: float = 0.0,
    duplicates: str = "sum",
    nonfinite: str = "propagate",
) -> bool:
    r"""Adagrad-DA on the indexed rows of a 2-D table, in place, TensorFlow's lazy semantics.

    Arrays as for :func:`sparse_proximal_update`, with ``grad_sum`` (R, D) beside ``state``. Each
    touched row takes :func:`da_update`'s step with this ``step``; ``duplicates`` as there. Lazy:
    an untouched row keeps the value computed when it was last touched, although the dense form
    would move it (``t`` grows in the formula's denominator and threshold at every step, and its
    grad sum takes a zero gradient): a sparse run equals the dense one only for rows touched at
    every step. Its state (``grad_sum``, ``state``) is exactly what the dense run would hold, since
    a zero gradient changes neither sum.

    Example:
        >>> import numpy as np, adagrad
        >>> table = np.zeros((3, 2))
        >>> a, s = np.zeros((3, 2)), np.full((3, 2), 0.1)
        >>> adagrad.sparse_da_update(table, np.array([1]), np.array([[0.1, 0.2]]), a, s, step=1, lr=3.0)
        True
        >>> table[1]
        array([-0.90453403, -1.60356745])

    Reference: Duchi, Hazan & Singer (2011), section 3; TensorFlow ``SparseApplyAdagradDA``.
    """
    return _core.sparse_da_update(table, indices, values, grad_sum, state, step, lr, l1, l2, duplicates, nonfinite)


def decay_update(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    decay_counts: np.ndarray,
    *,
    step: int,
    lr: float,
    accumulator_decay_step: int = 100000,
    accumulator_decay_rate: float = 0.9,
    initial_accumulator_value: float = 0.1,
    nonfinite: str = "propagate",
) -> bool:
    r"""One AdagradDecay update of one array, in place (DeepRec's ``AdagradDecayOptimizer``).

    Adagrad whose sums decay: by step ``t`` (1-based, this one counted) ``K = t // accumulator_decay_step``
    decays are due. ``decay_counts`` (int64, shape ``(1,)``, or ``(rows,)`` for a 2-D C-order
    param: one count per row) holds how many each part has had; the missing ones are taken first,
    one at a time, then the Adagrad step, element-wise, each operation rounded once::

        state_sum <- max(state_sum * rate, initial_accumulator_value)     K - decay_counts times
        decay_counts <- K
        state_sum <- fma(grad, grad, state_sum)
        param     <- param - (lr * grad) / sqrt(state_sum)

    So the accumulator shrinks by ``accumulator_decay_rate`` every ``accumulator_decay_step`` steps
    and never falls below its start: the rate no longer decays to zero in long runs. As in DeepRec,
    the decay comes before ``grad ** 2`` is added and there is no eps. Defaults are DeepRec's;
    ``lr`` finite >= 0, the step an int >= 1, the rate in (0, 1), the initial value finite > 0.

    Example:
        >>> import numpy as np, adagrad
        >>> w, s, k = np.array([1.0, 2.0]), np.full(2, 0.1), np.zeros(1, np.int64)
        >>> for t in range(1, 5):  # DeepRec's adagrad_decay_test, testBasic: decays at step 3
        ...     _ = adagrad.decay_update(w, np.full(2, 0.1), s, k, step=t, lr=1.0,
        ...                              accumulator_decay_step=3, accumulator_decay_rate=0.9)
        >>> w, s, k
        (array([-0.16080623,  0.83919377]), array([0.128, 0.128]), array([1]))

    Reference: DeepRec (Alibaba), ``AdagradDecayOptimizer`` (``training/adagrad_decay.py``);
    Duchi, Hazan & Singer (2011) for Adagrad itself.
    """
    return _core.decay_update(
        param,
        grad,
        state_sum,
        decay_counts,
        step,
        lr,
        accumulator_decay_step,
        accumulator_decay_rate,
        initial_accumulator_value,
        nonfinite,
    )


def sparse_decay_update(
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    state: np.ndarray,
    decay_counts: np.ndarray,
    *,
    step: int,
    lr: float,
    accumulator_decay_step: int = 100000,
    accumulator_decay_rate: float = 0.9,
    initial_accumulator_value: float = 0.1,
    duplicates: str = "sum",
    nonfinite: str = "propagate",
) -> bool:
    r"""AdagradDecay on the indexed rows of a 2-D table, in place; other rows are never touched.

    ``decay_counts`` is int64 of shape ``(rows,)``: the decays each row has had. A touched row first
    takes every decay due since it was last touched (``step // accumulator_decay_step`` minus its
    count), each rounded as it would have been at its own step, then :func:`decay_update`'s step.
    So a row's sums never depend on when it was last touched: a sparse run gives exactly the bits
    of a dense run that feeds zero gradients to the untouched rows. (DeepRec's sparse kernel decays
    a row at most once per touch, so there a row that misses several periods lags; we do not.)
    ``duplicates`` as for :func:`adagrad.sparse_update`; the catch-up happens once per row.

    Example:
        >>> import numpy as np, adagrad
        >>> table, state, counts = np.ones((3, 2)), np.full((3, 2), 0.1), np.zeros(3, np.int64)
        >>> adagrad.sparse_decay_update(table, np.array([2]), np.full((1, 2), 0.5), state, counts,
        ...                             step=7, lr=0.1, accumulator_decay_step=2, accumulator_decay_rate=0.5)
        True
        >>> state[2], counts  # three decays due (7 // 2): 0.1 is already the floor, then + 0.5 ** 2
        (array([0.35, 0.35]), array([0, 0, 3]))

    Reference: DeepRec, ``SparseApplyAdagradDecay`` (with the exact catch-up above).
    """
    return _core.sparse_decay_update(
        table,
        indices,
        values,
        state,
        decay_counts,
        step,
        lr,
        accumulator_decay_step,
        accumulator_decay_rate,
        initial_accumulator_value,
        duplicates,
        nonfinite,
    )
