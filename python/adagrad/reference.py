"""The pure NumPy reference: the same maths and signatures as the native code, written for clarity.

Tests hold the native kernels to this bit for bit. NumPy's +, -, *, / and sqrt are correctly
rounded IEEE operations in the array's dtype; the only operation NumPy lacks is the fused
multiply-add, which ``adagrad._exact.fma`` provides exactly. Speed is not a goal here.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np

from . import _core, composite_optimizers, optimizer
from ._exact import fma
from .functional import sr_seed
from .stochastic_rounding import stochastic_round

__all__ = [
    "Adagrad",
    "AdagradDA",
    "AdagradDecay",
    "ProximalAdagrad",
    "da_update",
    "decay_update",
    "grad_norms",
    "proximal_update",
    "sparse_da_update",
    "sparse_decay_update",
    "sparse_proximal_update",
    "sparse_update",
    "update",
]

NORM_BLOCK = 1024  # elements per block of the 2-norm's sum of squares
NORM_LANES = 64


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


def _pairwise(values: Any) -> float:
    """Added in pairs, level by level, an odd last one carried up; 0.0 for none."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return 0.0
    while v.size > 1:
        half = v.size // 2
        paired = v[0 : 2 * half : 2] + v[1 : 2 * half : 2]
        v = np.concatenate([paired, v[2 * half :]])
    return float(v[0])


def _sum_of_squares(x: np.ndarray) -> float:
    """The fixed-order sum of squares of one grad (as the update sees it) in float64: blocks of
    NORM_BLOCK elements, element i of a block into lane i % 64 by fma in increasing i, the lanes
    added in halves (l[j] + l[j + 32], then + 16, ... to one), then the blocks paired level by
    level."""
    flat = x.ravel().astype(np.float64)  # a float32 is widened exactly
    blocks = -(-flat.size // NORM_BLOCK)
    padded = np.zeros(blocks * NORM_BLOCK)  # a zero adds nothing to a lane: fma(0, 0, s) = s
    padded[: flat.size] = flat
    rows = padded.reshape(blocks, NORM_BLOCK // NORM_LANES, NORM_LANES)
    lanes = np.zeros((blocks, NORM_LANES))
    for r in range(rows.shape[1]):
        if x.dtype == np.float32:
            lanes = lanes + rows[:, r] * rows[:, r]  # the square of a widened float is exact
        else:
            lanes = fma(rows[:, r], rows[:, r], lanes)
    while lanes.shape[1] > 1:
        half = lanes.shape[1] // 2
        lanes = lanes[:, :half] + lanes[:, half:]
    return _pairwise(lanes[:, 0])


def _nan_max(values: Any) -> float:
    v = np.asarray(values, np.float64)
    return float(np.max(v)) if v.size else 0.0  # np.max returns NaN if any is NaN


def grad_norms(grads: list[np.ndarray], norm_type: float | str = 2.0) -> tuple[list[float], float]:
    """Reference norms of grads (already divided by any loss scale): (each grad's, all together's).

    The 2-norm is the square root of a sum of squares in float64 in one fixed order (see
    :class:`adagrad.Adagrad`); the inf-norm is max |g| (NaN if any g is NaN)."""
    _core.check_clip_options(None, norm_type, None, None)
    if norm_type == "inf" or float(norm_type) == math.inf:
        each = [_nan_max(np.abs(g)) for g in grads]
        return each, _nan_max(each)
    squares = [_sum_of_squares(g) for g in grads]
    return [math.sqrt(s) for s in squares], math.sqrt(_pairwise(squares))


Clip = tuple[Any, Any, Any]  # (scale, lo, hi) in the grad's dtype: g <- clip(g * scale, lo, hi)


def _clip_of(rule: str, threshold: float, norm: float, dtype: Any) -> Clip | None:
    """The clip transform one grad gets, or None where it changes nothing (hyper.hpp, ClipRule)."""
    if rule == "value":
        return dtype(1), -dtype(threshold), dtype(threshold)
    with np.errstate(all="ignore"):
        if rule == "global_norm":
            # torch's clip_grad_norm_, its arithmetic in the grad's dtype.
            c = (dtype(1) / (dtype(norm) + dtype(1e-6))) * dtype(threshold)
            applies = not c >= 1
        else:
            applies = not norm <= threshold
            c = dtype(threshold) / dtype(norm)
    return (c, -dtype(np.inf), dtype(np.inf)) if applies else None


def _clip_rule(
    max_grad_norm: float | None, norm_type: Any, clip_norm_per_tensor: float | None, clip_value: float | None
) -> tuple[str, float] | None:
    _core.check_clip_options(max_grad_norm, norm_type, clip_norm_per_tensor, clip_value)
    for rule, threshold in (
        ("global_norm", max_grad_norm),
        ("tensor_norm", clip_norm_per_tensor),
        ("value", clip_value),
    ):
        if threshold is not None:
            return rule, float(threshold)
    return None


def _single_clip(
    grad: np.ndarray, grad_scale: float | None, norm_type: Any, rule: tuple[str, float] | None
) -> Clip | None:
    """The clip of a call with one grad: its own norm is the norm of all grads."""
    if rule is None:
        return None
    dtype = _compute_type(grad.dtype)
    norm = 0.0
    if rule[0] != "value":
        _each, norm = grad_norms([_unscaled(grad, _divisor(grad_scale, dtype))], norm_type)
    return _clip_of(rule[0], rule[1], norm, dtype)


def _unscaled(grad: np.ndarray, divisor: Any) -> np.ndarray:
    if divisor is None:
        return grad
    with np.errstate(all="ignore"):
        return grad / divisor


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
    """Reference for :func:`adagrad.update`: same signature, same bits, in plain NumPy.

    A float16 / bfloat16 param is widened to float32 (exact), updated there exactly as a float32
    param, and each array the update writes is rounded back once to its own dtype: the state sum
    after the update has used its unrounded value (SEMANTICS.md section 6). With
    ``stochastic_rounding`` the param is rounded by :func:`adagrad.stochastic_rounding.stochastic_round`
    (stream 0, element ``i`` of the flattened array index ``i``), the sum still to nearest even."""
    sr = _sr_of(stochastic_rounding, seed, stream=0)
    rule = _clip_rule(max_grad_norm, norm_type, clip_norm_per_tensor, clip_value)
    master = is_16bit(param.dtype) and state_sum.dtype == np.float32
    if grad.dtype != param.dtype or (state_sum.dtype != param.dtype and not master):
        raise TypeError("param, grad and state_sum must share one dtype (a 16-bit param's state: or float32)")
    if grad.shape != param.shape or state_sum.shape != param.shape:
        raise ValueError("param, grad and state_sum must share one shape")
    if is_16bit(param.dtype) and rule is not None:
        raise TypeError("float16 and bfloat16 params take no clip yet")
    _divisor(grad_scale, param.dtype.type)
    if not _all_finite([("grad", grad)], nonfinite):
        return False
    clip = _single_clip(grad, grad_scale, norm_type, rule)
    _update(
        param,
        grad,
        state_sum,
        step=step,
        lr=lr,
        lr_decay=lr_decay,
        weight_decay=weight_decay,
        eps=eps,
        maximize=maximize,
        decoupled_weight_decay=decoupled_weight_decay,
        eps_inside_sqrt=eps_inside_sqrt,
        grad_scale=grad_scale,
        clip=clip,
        sr=sr,
    )
    return True


# Stochastic rounding of a 16-bit param's write: (seed, stream), or None for round to nearest even.
StochasticRounding = tuple[int, int]


def _sr_of(stochastic_rounding: bool, seed: int, stream: int) -> StochasticRounding | None:
    if sr_seed(stochastic_rounding, seed) is None:
        return None
    optimizer.check_stochastic_rounding({"stochastic_rounding": stochastic_rounding, "seed": seed}, "")
    return int(seed), stream


def _narrow(x: np.ndarray, dtype: Any, sr: StochasticRounding | None, first: int, step: int) -> np.ndarray:
    """A float32 result rounded once to a 16-bit dtype: to nearest even, or stochastically with the
    bits of elements first, first + 1, ... (in C order) under (seed, stream, step)."""
    if sr is None:
        return x.astype(dtype)  # round to nearest, ties to even
    index = np.uint64(first) + np.arange(x.size, dtype=np.uint64)
    return stochastic_round(x, dtype, index, seed=sr[0], stream=sr[1], step=step)


def is_16bit(dtype: Any) -> bool:
    """float16, or ml_dtypes' bfloat16 (recognised by name: ml_dtypes need not be installed)."""
    return np.dtype(dtype) == np.float16 or np.dtype(dtype).name == "bfloat16"


def _compute_type(dtype: Any) -> Any:
    """The type an array of `dtype` is computed in: float32 for the 16-bit ones, else its own."""
    return np.float32 if is_16bit(dtype) else np.dtype(dtype).type


def _update(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    *,
    sr: StochasticRounding | None = None,
    first: int = 0,
    **options: Any,
) -> None:
    """The element-wise update with every option decided (clip: the transform, or None). A 16-bit
    param is widened to float32 (exact) and updated there; each array written is rounded back once
    (the param stochastically with sr, its elements numbered from first)."""
    if not is_16bit(param.dtype):
        _update_in_dtype(param, grad, state_sum, **options)
        return
    wide = [x.astype(np.float32) for x in (param, grad, state_sum)]
    _update_in_dtype(*wide, **options)
    with np.errstate(all="ignore"):  # a float32 beyond the 16-bit range rounds to inf, as in the kernel
        param[...] = _narrow(wide[0], param.dtype, sr, first, options["step"])
        state_sum[...] = wide[2].astype(state_sum.dtype)


def _update_in_dtype(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    *,
    step: int,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
    decoupled_weight_decay: bool,
    eps_inside_sqrt: bool,
    grad_scale: float | None,
    clip: Clip | None,
) -> None:
    """The update of arrays of one dtype, computed in it."""
    dtype = param.dtype.type
    divisor = _divisor(grad_scale, dtype)
    lr, lr_decay, weight_decay, eps = float(lr), float(lr_decay), float(weight_decay), float(eps)
    clr = corrected_lr(lr, lr_decay, step)
    with np.errstate(all="ignore"):  # inf and nan propagate as in the kernel
        g = _unscaled(grad, divisor).copy()
        if clip is not None:
            g = np.clip(g * clip[0], clip[1], clip[2])  # a NaN stays NaN, as in the kernel
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
    """Reference for :func:`adagrad.sparse_update`: one row at a time, in plain NumPy."""
    sr = _sr_of(stochastic_rounding, seed, stream=0)
    rule = _clip_rule(max_grad_norm, norm_type, clip_norm_per_tensor, clip_value)
    rows = [int(i) for i in indices]
    if not all(0 <= r < table.shape[0] for r in rows):
        raise ValueError("index out of range")
    if duplicates not in ("sum", "sequential"):
        raise ValueError("duplicates must be 'sum' or 'sequential'")
    _divisor(grad_scale, table.dtype.type)
    _check_16bit_table(table, values, state, maximize, decoupled_weight_decay, weight_decay, eps_inside_sqrt, rule)
    if not _all_finite([("values", values)], nonfinite):
        return False
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
    clip = _single_clip(values, grad_scale, norm_type, rule)
    _sparse_update(table, rows, values, state, duplicates, clip=clip, sr=sr, **options)
    return True


def _check_16bit_table(
    table: np.ndarray,
    values: np.ndarray,
    state: np.ndarray,
    maximize: bool,
    decoupled_weight_decay: bool,
    weight_decay: float,
    eps_inside_sqrt: bool,
    clip: Any,
) -> None:
    """What a 16-bit table's sparse update takes (hyper.hpp, half_sparse_variant): TypeError otherwise."""
    if not is_16bit(table.dtype):
        return
    if values.dtype != table.dtype or state.dtype not in (table.dtype, np.float32):
        raise TypeError("a 16-bit table's values must have its dtype, its state its dtype or float32")
    if maximize or (decoupled_weight_decay and weight_decay != 0) or eps_inside_sqrt or clip is not None:
        raise TypeError(
            "16-bit tables' sparse updates take Adagrad without maximize, decoupled_weight_decay, "
            "eps_inside_sqrt or a clip"
        )


def _sparse_update(
    table: np.ndarray,
    rows: list[int],
    values: np.ndarray,
    state: np.ndarray,
    duplicates: str,
    **options: Any,
) -> None:
    """The rows' updates; with stochastic rounding (option sr) element j of a row is numbered
    row * dim + j (sum), or i * dim + j for occurrence i (sequential)."""
    dim = table.shape[1]
    if duplicates == "sequential":
        for i, row in enumerate(rows):
            _update_row(table, state, row, values[i].copy(), first=i * dim, **options)
    elif duplicates == "sum":
        occurrences: dict[int, list[int]] = {}
        for i, row in enumerate(rows):
            occurrences.setdefault(row, []).append(i)
        compute = _compute_type(table.dtype)  # a 16-bit table's rows are summed in float32
        for row, where in occurrences.items():  # rows are independent: any order
            g = np.zeros(table.shape[1], compute)
            with np.errstate(all="ignore"):  # inf + -inf is nan, as in the kernel
                for i in where:
                    g = g + values[i].astype(compute)  # from +0, in input order: the dense-equivalent gradient
            _update_row(table, state, row, g, first=row * dim, **options)


def _update_row(
    table: np.ndarray,
    state: np.ndarray,
    row: int,
    g: np.ndarray,
    *,
    sr: StochasticRounding | None = None,
    first: int = 0,
    **options: Any,
) -> None:
    if state.ndim == 2:
        _update(table[row], g, state[row], sr=sr, first=first, **options)
    elif is_16bit(table.dtype):  # widened to float32, updated there, each written value rounded once
        p, s = table[row].astype(np.float32), state[row : row + 1].astype(np.float32)
        _rowwise_update(p, g.astype(np.float32), s, 0, **options)
        with np.errstate(all="ignore"):
            table[row] = _narrow(p, table.dtype, sr, first, options["step"])
            state[row] = s[0].astype(state.dtype)
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
    clip: Clip | None,
) -> None:
    """One accumulator per row: s += mean(g^2), with the canonical 8-lane sum of squares."""
    dtype = param.dtype.type
    d = param.size
    lr, lr_decay, weight_decay, eps = float(lr), float(lr_decay), float(weight_decay), float(eps)
    clr = corrected_lr(lr, lr_decay, step)
    divisor = _divisor(grad_scale, dtype)
    with np.errstate(all="ignore"):
        g = _unscaled(g, divisor)
        if clip is not None:
            g = np.clip(g * clip[0], clip[1], clip[2])
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


def _check_rule_arrays(param: np.ndarray, *others: np.ndarray) -> None:
    if any(a.dtype != param.dtype for a in others):
        raise TypeError("the arrays must share one dtype")
    if any(a.shape != param.shape for a in others):
        raise ValueError("the arrays must share one shape")


def _proximal(param: np.ndarray, g: np.ndarray, s: np.ndarray, *, lr: float, l1: float, l2: float) -> None:
    """Proximal Adagrad, element-wise, every option decided (composite.proximal_update's formula)."""
    dtype = param.dtype.type
    with np.errstate(all="ignore"):
        s[...] = fma(g, g, s)
        eta = dtype(lr) / np.sqrt(s)
        v = fma(-eta, g, param)
        if l1 > 0:
            v = np.copysign(np.maximum(fma(-eta, np.full_like(v, l1), np.abs(v)), dtype(0)), v)
        param[...] = v / fma(eta, np.full_like(v, l2), np.ones_like(v))


def _dual_averaging(
    param: np.ndarray, g: np.ndarray, a: np.ndarray, s: np.ndarray, *, step: int, lr: float, l1: float, l2: float
) -> None:
    """Adagrad-DA, element-wise (composite.da_update's formula, TensorFlow's constants)."""
    dtype = param.dtype.type
    t = dtype(operator.index(step))
    l1_t, l2_t = t * dtype(l1), dtype(l2) * (t * dtype(lr))
    with np.errstate(all="ignore"):
        a[...] = a + g
        s[...] = fma(g, g, s)
        shrunk = np.maximum(np.abs(a) - l1_t, dtype(0))
        param[...] = -np.copysign((dtype(lr) * shrunk) / (np.sqrt(s) + l2_t), a)


def _rule_rows(
    rule: Any,
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    states: tuple[np.ndarray, ...],
    duplicates: str,
) -> None:
    """A composite rule on the indexed rows: rule(param_row, g, *state_rows), as _sparse_update."""
    rows = [int(i) for i in indices]
    if not all(0 <= r < table.shape[0] for r in rows):
        raise ValueError("index out of range")
    if duplicates == "sequential":
        for i, row in enumerate(rows):
            rule(table[row], values[i].copy(), *(st[row] for st in states))
        return
    occurrences: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        occurrences.setdefault(row, []).append(i)
    for row, where in occurrences.items():
        g = np.zeros(table.shape[1], table.dtype)
        with np.errstate(all="ignore"):
            for i in where:
                g = g + values[i]
        rule(table[row], g, *(st[row] for st in states))


def _check_rule(rule: str, lr: float, l1: float, l2: float, duplicates: str = "sum") -> None:
    _core.check_rule_options(rule, lr, l1, l2)
    if duplicates not in ("sum", "sequential"):
        raise ValueError("duplicates must be 'sum' or 'sequential'")


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
    """Reference for :func:`adagrad.proximal_update`."""
    _check_rule("proximal", lr, l1, l2)
    _check_rule_arrays(param, grad, state_sum)
    if not _all_finite([("grad", grad)], nonfinite):
        return False
    _proximal(param, grad, state_sum, lr=float(lr), l1=float(l1), l2=float(l2))
    return True


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
    """Reference for :func:`adagrad.sparse_proximal_update`: one row at a time."""
    _check_rule("proximal", lr, l1, l2, duplicates)
    _check_rule_arrays(table, state)
    if not _all_finite([("values", values)], nonfinite):
        return False

    def rule(p: np.ndarray, g: np.ndarray, s: np.ndarray) -> None:
        _proximal(p, g, s, lr=float(lr), l1=float(l1), l2=float(l2))

    _rule_rows(rule, table, indices, values, (state,), duplicates)
    return True


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
    """Reference for :func:`adagrad.da_update`."""
    _check_rule("dual_averaging", lr, l1, l2)
    _check_rule_arrays(param, grad, grad_sum, state_sum)
    if not _all_finite([("grad", grad)], nonfinite):
        return False
    _dual_averaging(param, grad, grad_sum, state_sum, step=step, lr=float(lr), l1=float(l1), l2=float(l2))
    return True


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
    """Reference for :func:`adagrad.sparse_da_update`: one row at a time."""
    _check_rule("dual_averaging", lr, l1, l2, duplicates)
    _check_rule_arrays(table, grad_sum, state)
    if not _all_finite([("values", values)], nonfinite):
        return False

    def rule(p: np.ndarray, g: np.ndarray, a: np.ndarray, s: np.ndarray) -> None:
        _dual_averaging(p, g, a, s, step=step, lr=float(lr), l1=float(l1), l2=float(l2))

    _rule_rows(rule, table, indices, values, (grad_sum, state), duplicates)
    return True


def _decayed(s: np.ndarray, periods: int, rate: Any, floor: Any) -> np.ndarray:
    """s decayed `periods` times, one rounding each: s <- max(s * rate, floor) (a NaN stays NaN)."""
    out = s.copy()
    with np.errstate(all="ignore"):
        for _ in range(periods):
            product = out * rate
            nxt = np.where(np.isnan(product) | (product > floor), product, floor).astype(s.dtype)
            if np.array_equal(nxt, out, equal_nan=True):
                break  # every element at its fixed point: no later decay changes any
            out = nxt
    return out


def _check_decay(lr: float, decay_step: int, decay_rate: float, initial: float, duplicates: str = "sum") -> None:
    _core.check_decay_options(lr, decay_step, decay_rate, initial)
    if duplicates not in ("sum", "sequential"):
        raise ValueError("duplicates must be 'sum' or 'sequential'")


def _decay_rows(state: np.ndarray, counts: np.ndarray, rows: list[int], target: int, rate: float, floor: float) -> None:
    """Rows of `state` (one per count) take the decays due by `target`; counts become `target`."""
    dtype = state.dtype.type
    for r in rows:
        due = target - int(counts[r])
        if due > 0:
            state[r] = _decayed(state[r], due, dtype(rate), dtype(floor))
            counts[r] = target


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
    """Reference for :func:`adagrad.decay_update`."""
    _check_decay(lr, accumulator_decay_step, accumulator_decay_rate, initial_accumulator_value)
    _check_rule_arrays(param, grad, state_sum)
    if not _all_finite([("grad", grad)], nonfinite):
        return False
    target = operator.index(step) // operator.index(accumulator_decay_step)
    per_row = param.ndim == 2 and decay_counts.shape == (param.shape[0],) and param.shape[0] > 0
    view = state_sum if per_row else state_sum.reshape(1, -1)
    _decay_rows(
        view, decay_counts, list(range(view.shape[0])), target, accumulator_decay_rate, initial_accumulator_value
    )
    _update(
        param,
        grad,
        state_sum,
        step=1,
        lr=lr,
        lr_decay=0.0,
        weight_decay=0.0,
        eps=0.0,
        maximize=False,
        decoupled_weight_decay=False,
        eps_inside_sqrt=False,
        grad_scale=None,
        clip=None,
    )
    return True


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
    """Reference for :func:`adagrad.sparse_decay_update`: the touched rows' catch-up, then Adagrad's rows."""
    _check_decay(lr, accumulator_decay_step, accumulator_decay_rate, initial_accumulator_value, duplicates)
    _check_rule_arrays(table, state)
    if not _all_finite([("values", values)], nonfinite):
        return False
    rows = [int(i) for i in indices]
    if not all(0 <= r < table.shape[0] for r in rows):
        raise ValueError("index out of range")
    target = operator.index(step) // operator.index(accumulator_decay_step)
    _decay_rows(state, decay_counts, sorted(set(rows)), target, accumulator_decay_rate, initial_accumulator_value)
    options = {
        "step": 1,
        "lr": lr,
        "lr_decay": 0.0,
        "eps": 0.0,
        "weight_decay": 0.0,
        "maximize": False,
        "eps_inside_sqrt": False,
        "decoupled_weight_decay": False,
        "grad_scale": None,
    }
    _sparse_update(table, rows, values, state, duplicates, clip=None, **options)
    return True


class Adagrad(optimizer.Adagrad):
    """Reference for :class:`adagrad.Adagrad`: the same params, state and API; each tensor is
    updated by :func:`update` above, one at a time, in a Python loop."""

    def _apply(self, batches: list[tuple[Any, ...]]) -> bool:
        rule = _clip_rule(self.max_grad_norm, self.norm_type, self.clip_norm_per_tensor, self.clip_value)
        # Every grad is checked before any is applied: skip and raise change nothing.
        named = [
            (f"grad of {name}", grad[1] if isinstance(grad, tuple) else grad)
            for _params, grads, _sums, _steps, labels, *_ in batches
            for name, grad in zip(labels, grads)
            if grad is not None
        ]
        measured = rule is not None and rule[0] != "value"
        if rule is not None and any(is_16bit(g.dtype) for _name, g in named):
            raise TypeError("float16 and bfloat16 params take no clip yet")
        each: list[float] = []
        total = 0.0
        if measured:
            unscaled = [_unscaled(g, _divisor(self.grad_scale, g.dtype.type)) for _name, g in named]
            each, total = grad_norms(unscaled, self.norm_type)
            self.last_grad_norm = total
        if not _all_finite(named, self.nonfinite):
            return False
        position = 0
        for batch in batches:
            params, grads, sums, steps = batch[:4]
            hyper = dict(zip(optimizer.OPTION_NAMES, batch[5:12]))
            duplicates = batch[12]
            seed, first = batch[14:16] if len(batch) == 16 else (None, 0)
            for i, (param, grad) in enumerate(zip(params, grads)):
                if grad is None:
                    continue
                sr = None if seed is None else (int(seed), first + i)
                clip = None
                if rule is not None:
                    norm = each[position] if rule[0] == "tensor_norm" else total
                    clip = _clip_of(rule[0], rule[1], norm, _compute_type(param.dtype))
                position += 1
                step = int(steps[i]) + 1
                options_i = {**hyper, "step": step, "grad_scale": self.grad_scale, "clip": clip, "sr": sr}
                if isinstance(grad, tuple):
                    indices, values = grad
                    _check_16bit_table(
                        param, values, sums[i], hyper["maximize"], hyper["decoupled_weight_decay"],
                        hyper["weight_decay"], hyper["eps_inside_sqrt"], rule,
                    )  # fmt: skip
                    rows = [int(r) for r in indices]
                    if not all(0 <= r < param.shape[0] for r in rows):
                        raise ValueError("index out of range")
                    _sparse_update(param, rows, values, sums[i], duplicates, **options_i)
                else:
                    _update(param, grad, sums[i], **options_i)
                steps[i] += 1
        return True


def _apply_composite(opt: Any, batches: list[tuple[Any, ...]]) -> bool:
    """The other rules' step: every grad checked first, then each tensor by the functions above."""
    named = [
        (f"grad of {name}", grad[1] if isinstance(grad, tuple) else grad)
        for batch in batches
        for name, grad in zip(batch[6], batch[2])
        if grad is not None
    ]
    if not _all_finite(named, opt.nonfinite):
        return False
    for rule, params, grads, sums, extras, steps, _labels, *options, duplicates in batches:
        dense, sparse, names = _RULES[rule]
        kwargs = dict(zip(names, options))
        for i, (param, grad) in enumerate(zip(params, grads)):
            if grad is None:
                continue
            step: dict[str, Any] = {} if rule == "proximal" else {"step": int(steps[i]) + 1}
            # The state arrays in the functions' order: DA's grad sum first, AdagradDecay's counts last.
            if rule == "proximal":
                states = [sums[i]]
            elif rule == "dual_averaging":
                states = [extras[i], sums[i]]
            else:
                states = [sums[i], extras[i]]
            if isinstance(grad, tuple):
                sparse(param, grad[0], grad[1], *states, duplicates=duplicates, **step, **kwargs)
            else:
                dense(param, grad, *states, **step, **kwargs)
            steps[i] += 1
    return True


# Each rule's functions and the names of its options in its group tuple.
_RULES: dict[str, tuple[Callable[..., bool], Callable[..., bool], tuple[str, ...]]] = {
    "proximal": (proximal_update, sparse_proximal_update, ("lr", "l1", "l2")),
    "dual_averaging": (da_update, sparse_da_update, ("lr", "l1", "l2")),
    "adagrad_decay": (
        decay_update,
        sparse_decay_update,
        ("lr", "accumulator_decay_step", "accumulator_decay_rate", "initial_accumulator_value"),
    ),
}


class ProximalAdagrad(composite_optimizers.ProximalAdagrad):
    """Reference for :class:`adagrad.ProximalAdagrad`: each tensor by :func:`proximal_update`."""

    def _apply(self, batches: list[tuple[Any, ...]]) -> bool:
        return _apply_composite(self, batches)


class AdagradDA(composite_optimizers.AdagradDA):
    """Reference for :class:`adagrad.AdagradDA`: each tensor by :func:`da_update`."""

    def _apply(self, batches: list[tuple[Any, ...]]) -> bool:
        return _apply_composite(self, batches)


class AdagradDecay(composite_optimizers.AdagradDecay):
    """Reference for :class:`adagrad.AdagradDecay`: each tensor by :func:`decay_update`."""

    def _apply(self, batches: list[tuple[Any, ...]]) -> bool:
        return _apply_composite(self, batches)
