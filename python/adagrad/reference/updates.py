"""One tensor's update under a rule, every option decided and checked: widen, transform the
grad, the rule's stages, narrow each array written once. Dense, or the rows of a sparse grad."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .norms import grad_norms
from .precision import Stochastic, compute_type, memory_order_index, narrow, widen
from .rules import Rule, decayed
from .transforms import Clip, Transforms, clip_of, transformed, unscale

__all__ = ["catch_up", "clips", "decay_rows", "dense", "sparse"]


def dense(
    rule: Rule,
    param: np.ndarray,
    grad: np.ndarray,
    states: Sequence[np.ndarray],
    *,
    transforms: Transforms,
    sr: Stochastic | None = None,
    first: int = 0,
) -> None:
    """param, grad and the float states widened to the compute type T; the grad transformed;
    the rule; the param narrowed to its dtype (stochastically with sr: element k of memory order
    draws index first + k) and each state to its own, each once."""
    g = transformed(widen(grad, param.dtype), transforms)
    new_param, new_states = rule(widen(param, param.dtype), g, [widen(s, param.dtype) for s in states])
    param[...] = narrow(new_param, param.dtype, sr, memory_order_index(param, first))
    for state, value in zip(states, new_states):
        state[...] = narrow(value, state.dtype)


def sparse(
    rule: Rule,
    table: np.ndarray,
    rows: list[int],
    values: np.ndarray,
    states: Sequence[np.ndarray],
    *,
    duplicates: str,
    transforms: Transforms,
    sr: Stochastic | None = None,
) -> None:
    """The dense update of each touched row: "sequential", occurrence i by itself (its bits at
    i * dim + j); "sum", each row once with its occurrences summed in T from +0.0 in input order
    (its bits at row * dim + j). A (rows,) state is one accumulator per row."""
    dim = table.shape[1]
    t = compute_type(table.dtype)

    def update_row(row: int, g: np.ndarray, first: int) -> None:
        views = [s[row] if s.ndim == 2 else s[row : row + 1] for s in states]
        dense(rule, table[row], g, views, transforms=transforms, sr=sr, first=first)

    if duplicates == "sequential":
        for i, row in enumerate(rows):
            update_row(row, widen(values[i], table.dtype), i * dim)
        return
    occurrences: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        occurrences.setdefault(row, []).append(i)
    for row, where in occurrences.items():  # rows are independent: any order
        g = np.zeros(dim, t)
        with np.errstate(all="ignore"):  # inf + -inf is NaN, as in the kernels
            for i in where:
                g = g + widen(values[i], table.dtype)
        update_row(row, g, row * dim)


def clips(
    grads: Sequence[np.ndarray], dtypes: Sequence[Any], grad_scale: float | None, rule: Any, norm_type: Any
) -> tuple[list[Clip | None], float | None]:
    """Each grad's clip (grads: dense grads or sparse values as given), and the total norm where
    the rule measures one. Norms are of the grads widened to T and unscaled, in float64."""
    if rule is None:
        return [None] * len(grads), None
    types = [compute_type(d) for d in dtypes]
    if rule.kind == "value":
        return [clip_of(rule, 0.0, t) for t in types], None
    measured = [widen(g, d) for g, d in zip(grads, dtypes)]
    if grad_scale is not None:
        measured = [unscale(g, grad_scale) for g in measured]
    each, total = grad_norms(measured, norm_type)
    norms = each if rule.kind == "tensor_norm" else [total] * len(grads)
    return [clip_of(rule, norm, t) for norm, t in zip(norms, types)], total


def decay_rows(param: np.ndarray) -> int | None:
    """AdagradDecay's counts of a dense param: one per row of a 2-D C-order param with rows (the
    number returned), else one (None)."""
    return param.shape[0] if param.ndim == 2 and param.flags.c_contiguous and param.shape[0] > 0 else None


def catch_up(
    state: np.ndarray, counts: np.ndarray, rows: list[int] | None, target: int, rate: float, floor: float
) -> None:
    """AdagradDecay's catch-up, before the update: each of `rows` of the state (None: the whole
    state, with the one count) takes the decays due by `target` (= step // decay_step) that its
    count has not had (see :func:`adagrad.reference.rules.decayed`); its count becomes `target`."""
    t = compute_type(state.dtype)
    for r in [0] if rows is None else rows:
        due = target - int(counts[r])
        if due > 0:
            view = state if rows is None else state[r]
            view[...] = decayed(view, due, rate, floor, t)
            counts[r] = target
