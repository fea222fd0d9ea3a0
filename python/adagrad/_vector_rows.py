"""1-D params with sparse grads, one row per element.

A hashed logistic-regression weight vector is 1-D, and its sparse grad names elements. The sparse
kernels take 2-D tables (rows, dim); a step hands them such a param, its element-wise states and
its grad's values viewed as (n, 1) and (k, 1): views of the same memory, no copy, so the update is
the sparse update of that one-column table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ._core import Record
    from .rules import Rule


def vector_positions(params: list[Any]) -> tuple[int, ...]:
    """Where the 1-D arrays are among a group's params."""
    return tuple(i for i, p in enumerate(params) if isinstance(p, np.ndarray) and p.ndim == 1)


def _is_sparse(grad: Any) -> bool:
    """A SparseGrad or an ``(indices, values)`` tuple (the native step's own test)."""
    return isinstance(grad, tuple) and len(grad) == 2


def vectors_as_rows(record: Record, positions: tuple[int, ...], rule: Rule) -> Record:
    """The record, or a copy in which each 1-D param with a sparse grad (and its element-wise
    states, and its grad's 1-D values) is viewed as a one-column table."""
    grads = record["grads"]
    if not isinstance(grads, (list, tuple)):
        return record  # the native step refuses it by name
    sparse = [i for i in positions if i < len(grads) and _is_sparse(grads[i])]
    if not sparse:
        return record
    labels = record["labels"] or [f"params[{i}]" for i in range(len(grads))]
    if any(s.kind == "decay_count" for s in rule.states):
        raise ValueError(
            f"{labels[sparse[0]]}: AdagradDecay takes sparse grads of a 2-D param by rows, one decay count per "
            "row; this param is 1-D (give it as a (n, 1) array for one count per element)"
        )
    params, grads = list(record["params"]), list(grads)
    states = {name: list(arrays) for name, arrays in record["states"].items()}
    for i in sparse:
        param = params[i]
        rows = param.reshape(param.shape[0], 1)
        for arrays in states.values():
            if isinstance(arrays[i], np.ndarray) and arrays[i].shape == param.shape:
                arrays[i] = arrays[i].reshape(rows.shape)
        params[i] = rows
        indices, values = grads[i]
        if isinstance(values, np.ndarray) and values.ndim == 1:
            values = values.reshape(values.shape[0], 1)
        grads[i] = (indices, values)
    return {**record, "params": params, "grads": grads, "states": states}
