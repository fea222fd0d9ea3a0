"""The implementations compared, each built for a case as a zero-argument step function.

Every peer owns fresh arrays (same random values), so peers never share state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import adagrad
from adagrad import _core

from .cases import REFERENCE_MAX_ELEMENTS, Case, SparseCase

LR = 1e-2
EPS = 1e-10
Step = Callable[[], object]  # a step's return value (Adagrad.step's bool) is ignored


def _arrays(case: Case, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    params: list[np.ndarray] = [rng.standard_normal(s).astype(case.dtype) for s in case.shapes]
    grads: list[np.ndarray] = [rng.standard_normal(s).astype(case.dtype) for s in case.shapes]
    return params, grads


def adagrad_step(case: Case, **options: Any) -> Step:
    params, grads = _arrays(case)
    opt = adagrad.Adagrad(params, lr=LR, eps=EPS, **options)
    return lambda: opt.step(grads)


# The cost of the options that add work to a step, against plain "adagrad" in the same run:
# nonfinite="skip" reads every grad once more before the update (the check for NaN and infinity,
# all-or-nothing); grad_scale=1024 (a power of two, as GradScaler's scales are) multiplies every
# grad by its exact reciprocal in the kernel; grad_scale=3 divides.
OPTION_PEERS: dict[str, dict[str, Any]] = {
    "adagrad skip": {"nonfinite": "skip"},
    "adagrad scaled": {"grad_scale": 1024.0},
    "adagrad scale3": {"grad_scale": 3.0},
}


def reference_step(case: Case) -> Step | None:
    if case.elements > REFERENCE_MAX_ELEMENTS:
        return None
    params, grads = _arrays(case)
    opt = adagrad.reference.Adagrad(params, lr=LR, eps=EPS)
    return lambda: opt.step(grads)


def numpy_step(case: Case) -> Step:
    """What a NumPy user writes by hand: clear code with temporaries, one array at a time."""
    params, grads = _arrays(case)
    sums = [np.zeros_like(p) for p in params]
    lr, eps = case.dtype(LR), case.dtype(EPS)

    def step() -> None:
        for p, g, s in zip(params, grads, sums):
            s += g * g
            p -= lr * g / (np.sqrt(s) + eps)

    return step


def ceiling_step(case: Case) -> Step:
    """The memory ceiling: the update's byte traffic with no arithmetic to speak of."""
    params, grads = _arrays(case)
    sums = [np.zeros_like(p) for p in params]
    return lambda: _core.stream_ceiling(params, grads, sums)


def torch_steps(case: Case) -> dict[str, Step]:
    try:
        import torch
    except ImportError:
        return {}
    params, grads = _arrays(case)
    steps: dict[str, Step] = {}
    for name, flags in (
        ("torch loop", {"foreach": False}),
        ("torch foreach", {"foreach": True}),
        ("torch fused", {"fused": True}),
    ):
        tensors = [torch.tensor(p, requires_grad=True) for p in params]
        for t, g in zip(tensors, grads):
            t.grad = torch.from_numpy(g.copy())
        steps[name] = torch.optim.Adagrad(tensors, lr=LR, eps=EPS, **flags).step
    return steps


def all_peers(case: Case) -> dict[str, Step]:
    """adagrad first: ratios are reported against it."""
    peers: dict[str, Any] = {
        "adagrad": adagrad_step(case),
        **{name: adagrad_step(case, **options) for name, options in OPTION_PEERS.items()},
        "ceiling": ceiling_step(case),
        "numpy": numpy_step(case),
        "reference": reference_step(case),
    }
    peers.update(torch_steps(case))
    return {name: step for name, step in peers.items() if step is not None}


def set_threads(n: int) -> None:
    adagrad.set_num_threads(n)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(n)


def _sparse_problem(case: SparseCase) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(1)
    table = rng.standard_normal((case.rows, case.dim), dtype=np.float32)
    batches = case.index_batches()
    values = [rng.standard_normal((case.k, case.dim), dtype=np.float32) for _ in batches]
    return table, batches, values


def _rotating(step: Callable[[int], object], n: int) -> Step:
    counter = iter(range(1 << 62))
    return lambda: step(next(counter) % n)


def sparse_peers(case: SparseCase) -> dict[str, Step]:
    """adagrad element-wise and row-wise, and torch's sparse Adagrad, on the same batches."""
    table, batches, values = _sparse_problem(case)
    state = np.zeros_like(table)
    rowwise_table, rowwise_state = table.copy(), np.zeros(case.rows, np.float32)
    ceiling_table, ceiling_state = table.copy(), np.zeros_like(table)
    steps = {
        "adagrad": _rotating(
            lambda i: adagrad.sparse_update(table, batches[i], values[i], state, step=1), len(batches)
        ),
        "ceiling": _rotating(
            lambda i: _core.sparse_stream_ceiling(ceiling_table, batches[i], values[i], ceiling_state), len(batches)
        ),
        "adagrad rowwise": _rotating(
            lambda i: adagrad.sparse_update(rowwise_table, batches[i], values[i], rowwise_state, step=1), len(batches)
        ),
    }
    try:
        import torch
    except ImportError:
        return steps
    # torch.optim.Adagrad builds sparse tensors internally; opt out of its invariant checks
    # explicitly (as its warning asks), the indices here are valid by construction.
    torch.sparse.check_sparse_tensor_invariants.disable()
    weight = torch.nn.Parameter(torch.from_numpy(table.copy()))
    grads = [
        torch.sparse_coo_tensor(
            torch.from_numpy(b[None, :]), torch.from_numpy(v), (case.rows, case.dim), check_invariants=False
        )  # valid by construction
        for b, v in zip(batches, values)
    ]  # uncoalesced, as nn.Embedding(sparse=True) produces
    opt = torch.optim.Adagrad([weight], lr=LR, eps=EPS)

    def torch_step(i: int) -> None:
        weight.grad = grads[i]
        opt.step()

    steps["torch sparse"] = _rotating(torch_step, len(grads))
    return steps
