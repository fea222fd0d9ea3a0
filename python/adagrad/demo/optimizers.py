"""The optimizers the demo compares, behind one interface: ``step(grads)`` like :class:`adagrad.Adagrad`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

import adagrad

__all__ = ["OPTIMIZERS", "SGD", "Timed", "state_sum"]


class SGD:
    """Plain stochastic gradient descent, ``θ ← θ − lr·g`` in place, over the same params
    structures as :class:`adagrad.Adagrad` (a list or a dict of arrays)."""

    def __init__(self, params: Any, lr: float) -> None:
        self.params, self.lr = params, lr

    def step(self, grads: Any) -> None:
        pairs = zip(self.params.values(), grads.values()) if isinstance(self.params, dict) else zip(self.params, grads)
        for param, grad in pairs:
            param -= param.dtype.type(self.lr) * grad


class Timed:
    """Wraps an optimizer and adds up the time spent in its ``step`` alone: the optimizer's own
    throughput, apart from data generation and gradients."""

    def __init__(self, optimizer: Any) -> None:
        self.optimizer, self.seconds = optimizer, 0.0

    def step(self, grads: Any) -> None:
        start = time.perf_counter()
        self.optimizer.step(grads)
        self.seconds += time.perf_counter() - start


#: name -> constructor(params, lr)
OPTIMIZERS: dict[str, Callable[[Any, float], Any]] = {
    "Adagrad": lambda params, lr: adagrad.Adagrad(params, lr=lr),
    "reference Adagrad": lambda params, lr: adagrad.reference.Adagrad(params, lr=lr),
    "SGD": SGD,
}


def state_sum(optimizer: Any, key: Any = 0) -> np.ndarray | None:
    """Adagrad's live accumulator s of one param, or None for an optimizer without one."""
    inner = optimizer.optimizer if isinstance(optimizer, Timed) else optimizer
    return inner.state[key]["sum"] if isinstance(inner, adagrad.Adagrad) else None
