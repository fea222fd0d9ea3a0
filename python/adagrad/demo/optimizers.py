"""The optimizers the demo compares, behind one interface: ``step(grads)`` like :class:`adagrad.Adagrad`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

import adagrad

__all__ = ["L1_INITIAL_SUM", "L1_OPTIMIZERS", "OPTIMIZERS", "SGD", "Timed", "state_sum", "with_l1"]


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


#: The starting state sum of the demo's :class:`adagrad.ProximalAdagrad`, :class:`adagrad.AdagradDA`
#: and :class:`adagrad.Ftrl`. TensorFlow's default 0.1 dwarfs the sparse problem's squared
#: gradients (one sample moves a weight's gradient by at most 1/128), so that a weight's first
#: steps would be lr/√0.1 ≈ 0.95 times its gradient, as timid as SGD's. Adagrad starts at 0 and
#: divides by √s + eps with eps = 1e-10; starting at eps² instead, ProximalAdagrad at l1 = 0 divides
#: by √(s + eps²) and trains as Adagrad does (its losses within 1e-7 relative on the default
#: problem), so the l1 sweep shows what the l1 alone does.
L1_INITIAL_SUM = 1e-20

#: the optimizers with an l1 option, by name
L1_OPTIMIZERS = ("ProximalAdagrad", "AdagradDA", "Ftrl")


def with_l1(name: str, l1: float) -> Callable[[Any, float], Any]:
    """A constructor(params, lr) of the optimizer ``name`` (one of :data:`L1_OPTIMIZERS`) at this
    ``l1``, no l2, its state sum starting at :data:`L1_INITIAL_SUM`."""
    if name not in L1_OPTIMIZERS:
        raise ValueError(f"no l1 optimizer named {name!r}; expected one of {L1_OPTIMIZERS}")

    def make(params: Any, lr: float) -> Any:
        if name == "ProximalAdagrad":
            return adagrad.ProximalAdagrad(params, lr=lr, l1=l1, initial_accumulator_value=L1_INITIAL_SUM)
        if name == "Ftrl":
            return adagrad.Ftrl(params, lr=lr, l1=l1, initial_accumulator_value=L1_INITIAL_SUM)
        return adagrad.AdagradDA(params, lr=lr, l1=l1, initial_gradient_squared_accumulator_value=L1_INITIAL_SUM)

    return make


def state_sum(optimizer: Any, key: Any = 0) -> np.ndarray | None:
    """Adagrad's live accumulator s of one param, or None for an optimizer without one."""
    inner = optimizer.optimizer if isinstance(optimizer, Timed) else optimizer
    adagrad_classes = (adagrad.Adagrad, adagrad.reference.Adagrad)  # the reference's is its own class
    return inner.state[key]["sum"] if isinstance(inner, adagrad_classes) else None
