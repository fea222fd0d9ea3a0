"""The step as a torch operator, ``torch.ops.adagrad.step``, so that ``torch.compile`` traces
through ``optimizer.step`` with no graph break.

The compiled graph holds one call of the operator per step: it hands over the params with a grad,
their grads, states and step counts, and declares the params, states and step counts mutated in
place (the compiler then orders the call after the backward that makes the grads, and copies
nothing). Its kernel is the eager step of the optimizer the call names by a handle (a number fixed
at trace time): the same plans, the same native call, so the compiled step is the eager step, bit
for bit. Its fake kernel writes nothing, as the real one returns nothing.

The operator is registered when this module is first imported: by the first trace of a step
(``adapter._prepare_graph_step``), not by ``import adagrad.torch`` (it costs 5-13 ms).
"""

from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any

import torch

__all__ = ["graph_handle", "step"]

# The optimizers compiled graphs name, by handle; weak, so that a graph does not keep one alive.
_OPTIMIZERS: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
_HANDLES: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_NEXT_HANDLE = itertools.count(1)
_HANDING_OUT = threading.Lock()  # two threads tracing one optimizer's first step get one handle


def graph_handle(optimizer: Any) -> int:
    """The number by which a compiled graph names ``optimizer`` (kept apart from the optimizer's own
    attributes, so that a deep copy or an unpickled optimizer gets a handle of its own)."""
    with _HANDING_OUT:
        handle = _HANDLES.get(optimizer)
        if handle is None:
            handle = _HANDLES[optimizer] = next(_NEXT_HANDLE)
            _OPTIMIZERS[handle] = optimizer
        return handle


@torch.library.custom_op("adagrad::step", mutates_args=("params", "states", "steps"))
def step(
    handle: int,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: list[torch.Tensor],
    steps: list[torch.Tensor],
) -> None:
    """One step of the optimizer ``handle`` names over ``params`` (those with a grad, in group
    order), with ``grads``; ``states`` holds each param's states in the rule's order, ``steps``
    each param's step count."""
    optimizer = _OPTIMIZERS.get(handle)
    if optimizer is None:
        raise RuntimeError(f"adagrad::step: the optimizer of this compiled graph (handle {handle}) no longer exists")
    optimizer._step_from_graph(params, grads, states, steps)


@step.register_fake
def _(
    handle: int,
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    states: list[torch.Tensor],
    steps: list[torch.Tensor],
) -> None:
    return None
