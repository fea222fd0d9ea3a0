"""The single-call functions: one update of one array (or of some rows of a 2-D table), in place.

Each checks every option and array before writing anything, and returns True when it applied the
update; with nonfinite="skip" it returns False and writes nothing when the grad (or values) holds
a NaN or an infinity, with nonfinite="raise" it raises :class:`NonFiniteGradError`. Stochastic
rounding draws stream 0. Besides its arrays, its step and its rule's options, every function takes
the same keyword options (``**transforms``): maximize, stochastic_rounding, seed, nonfinite,
grad_scale, max_grad_norm, norm_type, clip_norm_per_tensor, clip_value (:func:`_call`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from . import rules, updates
from .checks import (
    StepOptions,
    check_all_finite,
    check_decay_counts,
    check_dense,
    check_sparse,
    decay_rate,
    duplicates_mode,
    flag,
    non_negative,
    non_positive,
    positive,
    positive_int,
    sr_seed,
    step_number,
    step_options,
)
from .precision import Stochastic
from .rules import Rule
from .transforms import Transforms

__all__ = [
    "da_update",
    "decay_update",
    "ftrl_update",
    "proximal_update",
    "sparse_da_update",
    "sparse_decay_update",
    "sparse_ftrl_update",
    "sparse_proximal_update",
    "sparse_update",
    "update",
]


class _Call(NamedTuple):
    """What every call takes besides its rule, checked."""

    step: int
    maximize: bool
    sr: Stochastic | None
    options: StepOptions


def _call(
    step: Any,
    *,
    maximize: Any = False,
    stochastic_rounding: Any = False,
    seed: Any = 0,
    nonfinite: Any = "propagate",
    grad_scale: Any = None,
    max_grad_norm: Any = None,
    norm_type: Any = 2.0,
    clip_norm_per_tensor: Any = None,
    clip_value: Any = None,
) -> _Call:
    """The options every function takes besides its rule's (``**transforms`` in their signatures),
    with their defaults: maximize, stochastic rounding and its seed, the non-finite policy, the
    loss scale and the clips."""
    t = step_number(step)
    chosen = sr_seed(stochastic_rounding, seed)
    return _Call(
        t,
        flag(maximize, "maximize"),
        None if chosen is None else Stochastic(chosen, 0, t),
        step_options(nonfinite, grad_scale, max_grad_norm, norm_type, clip_norm_per_tensor, clip_value),
    )


def _finite(call: _Call, grads: Mapping[str, np.ndarray]) -> bool:
    return check_all_finite(grads, call.options.nonfinite)


def _transforms(call: _Call, grad: np.ndarray, dtype: Any) -> Transforms:
    """The call's transforms of its one grad: its clip measures that grad alone."""
    options = call.options
    (clip,), _total = updates.clips([grad], [dtype], options.grad_scale, options.clip, options.norm_type)
    return Transforms(options.grad_scale, clip, call.maximize)


def _apply_dense(rule: Rule, call: _Call, param: np.ndarray, grad: np.ndarray, states: list[np.ndarray]) -> None:
    updates.dense(rule, param, grad, states, transforms=_transforms(call, grad, param.dtype), sr=call.sr)


def _apply_sparse(
    rule: Rule, call: _Call, table: np.ndarray, rows: list[int], values: np.ndarray, states: list[np.ndarray], mode: str
) -> None:
    transforms = _transforms(call, values, table.dtype)
    updates.sparse(rule, table, rows, values, states, duplicates=mode, transforms=transforms, sr=call.sr)


def _dense(call: _Call, rule: Rule, param: np.ndarray, grad: np.ndarray, states: dict[str, np.ndarray]) -> bool:
    """What a dense function does once its options are checked: checks its arrays (``states`` by
    name, in the rule's order), then applies the rule unless the non-finite policy says not to."""
    check_dense(param, grad, states)
    if not _finite(call, {"grad": grad}):
        return False
    _apply_dense(rule, call, param, grad, list(states.values()))
    return True


def _sparse(
    call: _Call, rule: Rule, duplicates: Any, sparse: tuple[np.ndarray, ...], states: dict[str, np.ndarray]
) -> bool:
    """The same for a function on rows of a table; ``sparse`` is (table, indices, values)."""
    mode = duplicates_mode(duplicates)
    table, indices, values = sparse
    rows = check_sparse(table, indices, values, states)
    if not _finite(call, {"values": values}):
        return False
    _apply_sparse(rule, call, table, rows, values, list(states.values()), mode)
    return True


def _adagrad_rule(
    step: int, lr: Any, lr_decay: Any, weight_decay: Any, eps: Any, decoupled: Any, inside: Any, rowwise: bool
) -> Rule:
    return functools.partial(
        rules.adagrad,
        clr=rules.corrected_lr(non_negative(lr, "lr"), non_negative(lr_decay, "lr_decay"), step),
        wd=non_negative(weight_decay, "weight_decay"),
        decoupled=flag(decoupled, "decoupled_weight_decay"),
        eps=non_negative(eps, "eps"),
        eps_inside_sqrt=flag(inside, "eps_inside_sqrt"),
        rowwise=rowwise,
    )


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
    decoupled_weight_decay: bool = False,
    eps_inside_sqrt: bool = False,
    **transforms: Any,
) -> bool:
    """Adagrad on one array (torch.optim.Adagrad's maths), element-wise after the transforms::

    clr = lr / fma(step - 1, lr_decay, 1)            (double)
    g   <- fma(param, wd, g)  |  param <- param * (1 - clr * wd)   (coupled | decoupled)
    s   <- fma(g, g, s)
    param <- param - clr * g / (sqrt(s) + eps)      [eps_inside_sqrt: / sqrt(s + eps)]
    """
    call = _call(step, **transforms)
    rule = _adagrad_rule(call.step, lr, lr_decay, weight_decay, eps, decoupled_weight_decay, eps_inside_sqrt, False)
    return _dense(call, rule, param, grad, {"state_sum": state_sum})


def sparse_update(
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    state: np.ndarray,
    *,
    step: int,
    lr: float = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    eps: float = 1e-10,
    decoupled_weight_decay: bool = False,
    eps_inside_sqrt: bool = False,
    duplicates: str = "sum",
    **transforms: Any,
) -> bool:
    """Adagrad on the rows ``indices`` of a 2-D table, row ``indices[i]`` receiving ``values[i]``:
    with duplicates="sum" each touched row gets the dense update of its summed grad, with
    "sequential" each occurrence its own. ``state`` is (rows, dim), or (rows,): one accumulator
    per row, ``s <- s + mean(g**2)`` (FBGEMM's row-wise Adagrad)."""
    call = _call(step, **transforms)
    mode = duplicates_mode(duplicates)
    rows = check_sparse(table, indices, values, {"state": state}, rowwise=True)
    rowwise = state.ndim == 1
    rule = _adagrad_rule(call.step, lr, lr_decay, weight_decay, eps, decoupled_weight_decay, eps_inside_sqrt, rowwise)
    if not _finite(call, {"values": values}):
        return False
    _apply_sparse(rule, call, table, rows, values, [state], mode)
    return True


def _proximal_rule(lr: Any, l1: Any, l2: Any, eps: Any) -> Rule:
    return functools.partial(
        rules.proximal,
        lr=non_negative(lr, "lr"),
        l1=non_negative(l1, "l1"),
        l2=non_negative(l2, "l2"),
        eps=non_negative(eps, "eps"),
    )


def _da_rule(step: int, lr: Any, l1: Any, l2: Any) -> Rule:
    return functools.partial(
        rules.dual_averaging, step=step, lr=non_negative(lr, "lr"), l1=non_negative(l1, "l1"), l2=non_negative(l2, "l2")
    )


def proximal_update(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    *,
    step: int = 1,
    lr: float = 1e-2,
    l1: float = 0.0,
    l2: float = 0.0,
    eps: float = 0.0,
    **transforms: Any,
) -> bool:
    """Proximal Adagrad on one array (TensorFlow's ApplyProximalAdagrad), after the transforms::

        s <- fma(g, g, s);  eta = lr / (sqrt(s) + eps);  v = fma(-eta, g, param)
        v <- sign(v) * max(fma(-eta, l1, |v|), 0)      if l1 > 0
        param <- v / fma(eta, l2, 1)

    ``step`` only keys the stochastic rounding."""
    call = _call(step, **transforms)
    rule = _proximal_rule(lr, l1, l2, eps)
    return _dense(call, rule, param, grad, {"state_sum": state_sum})


def sparse_proximal_update(
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    state: np.ndarray,
    *,
    step: int = 1,
    lr: float = 1e-2,
    l1: float = 0.0,
    l2: float = 0.0,
    eps: float = 0.0,
    duplicates: str = "sum",
    **transforms: Any,
) -> bool:
    """Proximal Adagrad on the rows ``indices`` of a 2-D table (see :func:`sparse_update`)."""
    call = _call(step, **transforms)
    rule = _proximal_rule(lr, l1, l2, eps)
    return _sparse(call, rule, duplicates, (table, indices, values), {"state": state})


def da_update(
    param: np.ndarray,
    grad: np.ndarray,
    grad_sum: np.ndarray,
    state_sum: np.ndarray,
    *,
    step: int,
    lr: float = 1e-2,
    l1: float = 0.0,
    l2: float = 0.0,
    **transforms: Any,
) -> bool:
    """Adagrad-DA on one array (TensorFlow's ApplyAdagradDA), after the transforms, t = step::

    a <- a + g;  s <- fma(g, g, s)
    param <- -sign(a) * lr * max(|a| - t * l1, 0) / (sqrt(s) + l2 * (t * lr))
    """
    call = _call(step, **transforms)
    rule = _da_rule(call.step, lr, l1, l2)
    return _dense(call, rule, param, grad, {"grad_sum": grad_sum, "state_sum": state_sum})


def sparse_da_update(
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    grad_sum: np.ndarray,
    state: np.ndarray,
    *,
    step: int,
    lr: float = 1e-2,
    l1: float = 0.0,
    l2: float = 0.0,
    duplicates: str = "sum",
    **transforms: Any,
) -> bool:
    """Adagrad-DA on the rows ``indices`` of a 2-D table (TensorFlow's lazy form: untouched rows
    keep their values)."""
    call = _call(step, **transforms)
    rule = _da_rule(call.step, lr, l1, l2)
    return _sparse(call, rule, duplicates, (table, indices, values), {"grad_sum": grad_sum, "state": state})


class _Decay(NamedTuple):
    lr: float
    every: int
    rate: float
    floor: float


def _decay(lr: Any, accumulator_decay_step: Any, accumulator_decay_rate: Any, initial: Any) -> _Decay:
    return _Decay(
        non_negative(lr, "lr"),
        positive_int(accumulator_decay_step, "accumulator_decay_step"),
        decay_rate(accumulator_decay_rate),
        positive(initial, "initial_accumulator_value"),
    )


def _decay_rule(decay: _Decay) -> Rule:
    """After the catch-up, Adagrad with lr and eps = 0: param - (lr * g) / (sqrt(s) + 0)."""
    return functools.partial(rules.adagrad, clr=decay.lr, eps=0.0)


def decay_update(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    decay_counts: np.ndarray,
    *,
    step: int,
    lr: float = 1e-2,
    accumulator_decay_step: int = 100000,
    accumulator_decay_rate: float = 0.9,
    initial_accumulator_value: float = 0.1,
    **transforms: Any,
) -> bool:
    """AdagradDecay (DeepRec) on one array, after the transforms::

        s <- max(s * rate, initial_accumulator_value)     each decay due: step // decay_step - count of them
        s <- fma(g, g, s);  param <- param - lr * g / sqrt(s)

    ``decay_counts`` (int64) is (1,), or one count per row of a 2-D C-order param."""
    call = _call(step, **transforms)
    decay = _decay(lr, accumulator_decay_step, accumulator_decay_rate, initial_accumulator_value)
    check_dense(param, grad, {"state_sum": state_sum})
    rows = updates.decay_rows(param)
    check_decay_counts(decay_counts, [(1,)] if rows is None else [(1,), (rows,)])
    if not _finite(call, {"grad": grad}):
        return False
    per_row = None if decay_counts.shape == (1,) else list(range(state_sum.shape[0]))
    updates.catch_up(state_sum, decay_counts, per_row, call.step // decay.every, decay.rate, decay.floor)
    _apply_dense(_decay_rule(decay), call, param, grad, [state_sum])
    return True


def sparse_decay_update(
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    state: np.ndarray,
    decay_counts: np.ndarray,
    *,
    step: int,
    lr: float = 1e-2,
    accumulator_decay_step: int = 100000,
    accumulator_decay_rate: float = 0.9,
    initial_accumulator_value: float = 0.1,
    duplicates: str = "sum",
    **transforms: Any,
) -> bool:
    """AdagradDecay on the rows ``indices`` of a 2-D table: each touched row first takes the
    decays it missed (one count per row), then Adagrad's rows as :func:`decay_update`."""
    call = _call(step, **transforms)
    decay = _decay(lr, accumulator_decay_step, accumulator_decay_rate, initial_accumulator_value)
    mode = duplicates_mode(duplicates)
    rows = check_sparse(table, indices, values, {"state": state})
    check_decay_counts(decay_counts, [(table.shape[0],)])
    if not _finite(call, {"values": values}):
        return False
    touched = sorted(set(rows))
    updates.catch_up(state, decay_counts, touched, call.step // decay.every, decay.rate, decay.floor)
    _apply_sparse(_decay_rule(decay), call, table, rows, values, [state], mode)
    return True


def _ftrl_rule(
    lr: Any, lr_power: Any, l1: Any, l2: Any, l2_shrinkage: Any, beta: Any, multiply_linear_by_lr: Any
) -> Rule:
    return functools.partial(
        rules.ftrl,
        lr=positive(lr, "lr"),
        lr_power=non_positive(lr_power, "lr_power"),
        l1=non_negative(l1, "l1"),
        l2=non_negative(l2, "l2"),
        l2_shrinkage=non_negative(l2_shrinkage, "l2_shrinkage"),
        beta=non_negative(beta, "beta"),
        multiply_linear_by_lr=flag(multiply_linear_by_lr, "multiply_linear_by_lr"),
    )


def ftrl_update(
    param: np.ndarray,
    grad: np.ndarray,
    accumulator: np.ndarray,
    linear: np.ndarray,
    *,
    step: int = 1,
    lr: float = 1e-3,
    lr_power: float = -0.5,
    l1: float = 0.0,
    l2: float = 0.0,
    l2_shrinkage: float = 0.0,
    beta: float = 0.0,
    multiply_linear_by_lr: bool = False,
    **transforms: Any,
) -> bool:
    """FTRL-Proximal on one array (TensorFlow's ApplyFtrlV2, Keras's beta), after the transforms::

        g' = g + 2 * l2_shrinkage * param;  n' = fma(g, g, n);  d = n' ** -lr_power - n ** -lr_power
        z <- z + (g' - (d / lr) * param);  q = n' ** -lr_power / lr + 2 * (l2 + beta / (2 * lr))
        param <- (sign(z) * l1 - z) / q if |z| > l1 else 0;  n <- n'

    ``step`` only keys the stochastic rounding."""
    call = _call(step, **transforms)
    rule = _ftrl_rule(lr, lr_power, l1, l2, l2_shrinkage, beta, multiply_linear_by_lr)
    return _dense(call, rule, param, grad, {"accumulator": accumulator, "linear": linear})


def sparse_ftrl_update(
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    accumulator: np.ndarray,
    linear: np.ndarray,
    *,
    step: int = 1,
    lr: float = 1e-3,
    lr_power: float = -0.5,
    l1: float = 0.0,
    l2: float = 0.0,
    l2_shrinkage: float = 0.0,
    beta: float = 0.0,
    multiply_linear_by_lr: bool = False,
    duplicates: str = "sum",
    **transforms: Any,
) -> bool:
    """FTRL-Proximal on the rows ``indices`` of a 2-D table (see :func:`sparse_update`): untouched rows
    keep their values and states."""
    call = _call(step, **transforms)
    rule = _ftrl_rule(lr, lr_power, l1, l2, l2_shrinkage, beta, multiply_linear_by_lr)
    return _sparse(call, rule, duplicates, (table, indices, values), {"accumulator": accumulator, "linear": linear})
