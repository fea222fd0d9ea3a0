"""The implementations compared, each built for a case as a zero-argument step function.

The ceiling and torch's optimizers run on adagrad's own arrays (see SharedArrays): the same bytes
in memory for every peer that is compared with adagrad on memory traffic. The NumPy, reference and
option peers own fresh arrays (same random values).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import adagrad
from adagrad import _core

from . import fbgemm, tf_raw_ops
from .cases import (
    REFERENCE_MAX_ELEMENTS,
    Case,
    HalfCase,
    RuleCase,
    SparseCase,
    SparseHalfCase,
    SparseRuleCase,
    single,
)

LR = 1e-2
EPS = 1e-10
Step = Callable[[], object]  # a step's return value (Adagrad.step's bool) is ignored


def line_aligned(values: np.ndarray) -> np.ndarray:
    """A copy of `values` starting on a 64-byte boundary, as torch's allocator places a tensor.
    NumPy puts a big array 16 bytes past a page boundary; torch's kernels, sharing these arrays,
    would pay for that (adagrad's kernel starts its vector loop on a cache line either way)."""
    out = adagrad.aligned_zeros(values.shape, values.dtype)
    out[...] = values
    return out


def _arrays(case: Case, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    params = [line_aligned(rng.standard_normal(s).astype(case.dtype)) for s in case.shapes]
    grads = [line_aligned(rng.standard_normal(s).astype(case.dtype)) for s in case.shapes]
    return params, grads


# On this VM the same pass over two sets of arrays of the same size can differ by 1.5x in a
# memory-bound case: each allocation lands on host memory of its own speed (measured here: the
# ceiling pass on arrays of its own took 14.2 ms at 16M where adagrad's step on its arrays took
# 9.6 ms, in the same interleaved run). So the ceiling and torch run on adagrad's own arrays.
@dataclass
class SharedArrays:
    """adagrad's params, grads and state sums (live: updated by its steps)."""

    params: list[np.ndarray]
    grads: list[np.ndarray]
    sums: list[np.ndarray]


def adagrad_peer(case: Case, **options: Any) -> tuple[Step, SharedArrays]:
    params, grads = _arrays(case)
    opt = adagrad.Adagrad(params, lr=LR, eps=EPS, **options)  # its sums start on a line, as the params do
    sums = [opt.state[i]["sum"] for i in range(len(params))]
    return (lambda: opt.step(grads)), SharedArrays(params, grads, sums)


def adagrad_step(case: Case, **options: Any) -> Step:
    return adagrad_peer(case, **options)[0]


# The cost of the options that add work to a step, against plain "adagrad" in the same run:
# nonfinite="skip" reads every grad once more before the update (the check for NaN and infinity,
# all-or-nothing); grad_scale=1024 (a power of two, as GradScaler's scales are) multiplies every
# grad by its exact reciprocal in the kernel; grad_scale=3 divides.
OPTION_PEERS: dict[str, dict[str, Any]] = {
    "adagrad skip": {"nonfinite": "skip"},
    "adagrad scaled": {"grad_scale": 1024.0},
    "adagrad scale3": {"grad_scale": 3.0},
}


# Clipping (issue 17): the global-norm clip fused into the step (one more read of the grads, for the
# norm), against torch's pair clip_grad_norm_ + fused step (a read for the norm, a read and a write
# to scale the grads, then the step). Both on adagrad's own arrays. max_grad_norm=1 clips every
# step (the grads' norm is ~sqrt(n)); torch's pair scales the shared grads to norm ~1 once, then by
# ~1 at every call (it multiplies whether or not it clips), so no value drifts toward subnormals.
MAX_GRAD_NORM = 1.0


def clipped_step(shared: SharedArrays) -> Step:
    """adagrad with max_grad_norm on the same params, grads and state sums as plain "adagrad"."""
    return _adagrad_on(shared, max_grad_norm=MAX_GRAD_NORM)


def _adagrad_on(shared: SharedArrays, **options: Any) -> Step:
    """An adagrad.Adagrad step on `shared`'s params, grads and state sums."""
    opt = adagrad.Adagrad(shared.params, lr=LR, eps=EPS, **options)
    layout = opt._layouts[0]
    for i, sum_ in enumerate(shared.sums):  # adagrad's own sums, not a second set in other memory
        layout.sums[i] = sum_
        opt.state[i]["sum"] = sum_
    return lambda: opt.step(shared.grads)


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


def ceiling_step(shared: SharedArrays) -> Step:
    """The memory ceiling: the update's byte traffic with no arithmetic to speak of, over adagrad's
    own params and sums. Its grads are zeros (of its own, written so that their pages are real
    memory and not the kernel's shared zero page): param + 0 and sum + 0 leave adagrad's values as
    they are."""
    zeros = [np.full_like(g, 0) for g in shared.grads]
    return lambda: _core.stream_ceiling(shared.params, zeros, shared.sums)


def torch_steps(case: Case, shared: SharedArrays) -> dict[str, Step]:
    """torch's three Adagrad implementations on adagrad's own params, grads and state sums
    (from_numpy shares the memory; the sums are swapped into torch's state after its
    constructor made its own). Every peer's update is a valid Adagrad step on them."""
    try:
        import torch
    except ImportError:
        return {}
    steps: dict[str, Step] = {}
    for name, flags in (
        ("torch loop", {"foreach": False}),
        ("torch foreach", {"foreach": True}),
        ("torch fused", {"fused": True}),
    ):
        tensors = [torch.from_numpy(p).requires_grad_() for p in shared.params]
        for t, g in zip(tensors, shared.grads):
            t.grad = torch.from_numpy(g)
        opt = torch.optim.Adagrad(tensors, lr=LR, eps=EPS, **flags)
        for t, sum_ in zip(tensors, shared.sums):
            opt.state[t]["sum"] = torch.from_numpy(sum_)
        steps[name] = opt.step
        if name == "torch fused":
            steps["torch clip+fused"] = _clip_then(torch, tensors, opt.step)
    return steps


def _clip_then(torch: Any, tensors: list[Any], step: Step) -> Step:
    def clip_and_step() -> None:
        torch.nn.utils.clip_grad_norm_(tensors, MAX_GRAD_NORM)
        step()

    return clip_and_step


def all_peers(case: Case) -> dict[str, Step]:
    """adagrad first: ratios are reported against it."""
    ours, shared = adagrad_peer(case)
    peers: dict[str, Any] = {
        "adagrad": ours,
        **{name: adagrad_step(case, **options) for name, options in OPTION_PEERS.items()},
        "adagrad clipped": clipped_step(shared),
        "ceiling": ceiling_step(shared),
        "numpy": numpy_step(case),
        "reference": reference_step(case),
    }
    peers.update(torch_steps(case, shared))
    return {name: step for name, step in peers.items() if step is not None}


def half_dtype(name: str) -> np.dtype[Any]:
    """float16, or ml_dtypes' bfloat16 (ImportError without ml_dtypes)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def half_peers(case: HalfCase) -> dict[str, Step]:
    """A 16-bit param's step ("adagrad"); the stream ceiling on its own param and sums (the same
    bytes: 10 per element, 14 with float32 sums); our float32 step of the same size on arrays of
    its own ("adagrad f32"); the step with stochastic rounding on the same param and sums of its own
    ("adagrad SR"); torch's fused step on the same memory when the sums are the param's dtype
    (torch's layout)."""
    dtype = half_dtype(case.dtype)
    rng = np.random.default_rng(0)
    params = [line_aligned(rng.standard_normal(s).astype(dtype)) for s in case.shapes]
    grads = [line_aligned(rng.standard_normal(s).astype(dtype)) for s in case.shapes]
    opt = adagrad.Adagrad(params, lr=LR, eps=EPS, state_dtype=case.state or None)
    sums = [opt.state[i]["sum"] for i in range(len(params))]
    zeros = [np.full_like(g, 0) for g in grads]
    rounding = adagrad.Adagrad(params, lr=LR, eps=EPS, state_dtype=case.state or None, stochastic_rounding=True)
    steps: dict[str, Step] = {
        "adagrad": lambda: opt.step(grads),
        "ceiling": lambda: _core.stream_ceiling(params, zeros, sums),
        "adagrad f32": adagrad_step(single(case.elements, np.float32)),
        "adagrad SR": lambda: rounding.step(grads),
    }
    if not case.state:
        try:
            import torch
        except ImportError:
            return steps
        torch_dtype = torch.bfloat16 if case.dtype == "bfloat16" else torch.float16

        def shared(a: np.ndarray) -> Any:
            return torch.from_numpy(a.view(np.int16)).view(torch_dtype)

        tensors = [shared(p).requires_grad_() for p in params]
        for t, g in zip(tensors, grads):
            t.grad = shared(g)
        torch_opt = torch.optim.Adagrad(tensors, lr=LR, eps=EPS, fused=True)
        for t, sum_ in zip(tensors, sums):
            torch_opt.state[t]["sum"] = shared(sum_)
        steps["torch fused"] = torch_opt.step
    return steps


def sparse_half_peers(case: SparseHalfCase) -> dict[str, Step]:
    """A 16-bit table's sparse steps (sum mode) with float32 row-wise state ("adagrad": FBGEMM's
    and TorchRec's usual set-up), float32 element-wise state and 16-bit element-wise state; then a
    float32 table of the same shape with the same batches and values ("float32 rowwise",
    "float32"): the same steps on twice the table bytes; and the first with stochastic rounding
    ("adagrad SR")."""
    dtype = half_dtype(case.dtype)
    rng = np.random.default_rng(1)
    wide = line_aligned(rng.standard_normal((case.rows, case.dim), dtype=np.float32))
    table = line_aligned(wide.astype(dtype))
    batches = case.index_batches()
    wide_values = [line_aligned(rng.standard_normal((case.k, case.dim), dtype=np.float32)) for _ in batches]
    values = [line_aligned(v.astype(dtype)) for v in wide_values]
    n = len(batches)

    def stepper(t: np.ndarray, v: list[np.ndarray], state: np.ndarray, **sr: Any) -> Step:
        return _rotating(lambda i: adagrad.sparse_update(t, batches[i], v[i], state, step=1, lr=LR, eps=EPS, **sr), n)

    return {
        "adagrad": stepper(table, values, adagrad.aligned_zeros(case.rows)),
        "adagrad SR": stepper(table, values, adagrad.aligned_zeros(case.rows), stochastic_rounding=True),
        "adagrad f32 state": stepper(table, values, adagrad.aligned_zeros(table.shape)),
        "adagrad 16-bit state": stepper(table, values, line_aligned(np.zeros(table.shape, dtype))),
        "float32 rowwise": stepper(wide, wide_values, adagrad.aligned_zeros(case.rows)),
        "float32": stepper(wide, wide_values, adagrad.aligned_zeros(table.shape)),
    }


def set_threads(n: int) -> None:
    adagrad.set_num_threads(n)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(n)


@dataclass
class SparseArrays:
    """One sparse case's table and states (shared by the peers) and its rotating batches."""

    table: np.ndarray
    state: np.ndarray  # element-wise, (rows, dim)
    rowwise_state: np.ndarray  # (rows,)
    batches: list[np.ndarray]
    values: list[np.ndarray]


def sparse_arrays(case: SparseCase) -> SparseArrays:
    rng = np.random.default_rng(1)
    table = line_aligned(rng.standard_normal((case.rows, case.dim), dtype=np.float32))
    batches = case.index_batches()
    values = [line_aligned(rng.standard_normal((case.k, case.dim), dtype=np.float32)) for _ in batches]
    state, rowwise_state = adagrad.aligned_zeros(table.shape), adagrad.aligned_zeros(case.rows)
    return SparseArrays(table, state, rowwise_state, batches, values)


def _rotating(step: Callable[[int], object], n: int) -> Step:
    counter = iter(range(1 << 62))
    return lambda: step(next(counter) % n)


def _first_occurrences(batch: np.ndarray) -> np.ndarray:
    """The distinct ids of a batch, each once, in order of first occurrence."""
    _, first = np.unique(batch, return_index=True)
    return batch[np.sort(first)]


def coalesced(batch: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A batch with its repeated ids summed (in input order, from +0): each distinct id once, in
    order of first occurrence, with the sum of its value rows (what the dense-equivalent gradient
    holds in that row)."""
    ids = _first_occurrences(batch)
    position = np.empty(int(batch.max()) + 1, np.int64)
    position[ids] = np.arange(ids.size)
    sums = np.zeros((ids.size, values.shape[1]), values.dtype)
    np.add.at(sums, position[batch], values)
    return ids.astype(np.int64), line_aligned(sums)


def sparse_peers(case: SparseCase, arrays: SparseArrays | None = None) -> dict[str, Step]:
    """adagrad's four sparse modes, torch's sparse Adagrad and (when installed) FBGEMM's kernels on
    the same batches; the ceiling (adagrad's sum schedule without arithmetic) and two floors. All on
    the same table (and every element-wise peer on the same state, every row-wise one on the same
    row-wise state), as for the dense cases."""
    a = arrays if arrays is not None else sparse_arrays(case)
    table, state, rowwise_state, batches, values = a.table, a.state, a.rowwise_state, a.batches, a.values
    n = len(batches)

    def update(i: int, state: np.ndarray, duplicates: str) -> None:
        adagrad.sparse_update(table, batches[i], values[i], state, step=1, lr=LR, eps=EPS, duplicates=duplicates)

    steps = {
        "adagrad": _rotating(lambda i: update(i, state, "sum"), n),
        "adagrad sequential": _rotating(lambda i: update(i, state, "sequential"), n),
        "adagrad rowwise": _rotating(lambda i: update(i, rowwise_state, "sum"), n),
        "adagrad rowwise sequential": _rotating(lambda i: update(i, rowwise_state, "sequential"), n),
        **sparse_bounds(a),
    }
    steps.update(_torch_sparse_peer(case, table, state, batches, values))
    steps.update(_fbgemm_peers(table, state, rowwise_state, batches, values))
    return steps


def sparse_bounds(a: SparseArrays) -> dict[str, Step]:
    """The ceiling (adagrad's sum schedule without arithmetic) and the two floors, on `a`'s table
    and element-wise state, which they leave as they are."""
    table, state, batches, values = a.table, a.state, a.batches, a.values
    n = len(batches)
    zero_values = [np.full_like(v, 0) for v in values]  # the ceiling's: table and state unchanged
    # The floors: every touched row's table and state lines read and written once, prefetched,
    # with no grouping and no arithmetic; then the same after reading every value row of the batch
    # once. Any exact step moves at least the second one's bytes.
    once = [_first_occurrences(b) for b in batches]
    once_zeros = [v[: len(b)] for v, b in zip(zero_values, once)]
    return {
        "ceiling": _rotating(lambda i: _core.sparse_stream_ceiling(table, batches[i], zero_values[i], state), n),
        "floor: touched rows": _rotating(lambda i: _core.sparse_floor(table, once[i], once_zeros[i], state, False), n),
        "floor: rows + values": _rotating(lambda i: _core.sparse_floor(table, once[i], values[i], state, True), n),
    }


def _torch_sparse_peer(
    case: SparseCase, table: np.ndarray, state: np.ndarray, batches: list[np.ndarray], values: list[np.ndarray]
) -> dict[str, Step]:
    try:
        import torch
    except ImportError:
        return {}
    # torch.optim.Adagrad builds sparse tensors internally; opt out of its invariant checks
    # explicitly (as its warning asks), the indices here are valid by construction.
    torch.sparse.check_sparse_tensor_invariants.disable()
    weight = torch.nn.Parameter(torch.from_numpy(table))
    grads = [
        torch.sparse_coo_tensor(
            torch.from_numpy(b[None, :]), torch.from_numpy(v), (case.rows, case.dim), check_invariants=False
        )  # valid by construction
        for b, v in zip(batches, values)
    ]  # uncoalesced, as nn.Embedding(sparse=True) produces
    opt = torch.optim.Adagrad([weight], lr=LR, eps=EPS)
    opt.state[weight]["sum"] = torch.from_numpy(state)

    def torch_step(i: int) -> None:
        weight.grad = grads[i]
        opt.step()

    return {"torch sparse": _rotating(torch_step, len(grads))}


def _fbgemm_peers(
    table: np.ndarray,
    state: np.ndarray,
    rowwise_state: np.ndarray,
    batches: list[np.ndarray],
    values: list[np.ndarray],
) -> dict[str, Step]:
    """FBGEMM's JIT kernels: every occurrence as its own update (its sparse Adagrad), and the same
    kernel on the batch coalesced beforehand (outside the timing: the kernel alone, without the
    deduplication an exact step needs)."""
    fb = fbgemm.load()
    if isinstance(fb, str):
        return {}
    ids = [b.astype(np.int64) for b in batches]
    merged = [coalesced(b, v) for b, v in zip(ids, values)]
    n = len(ids)
    return {
        "fbgemm sequential": _rotating(lambda i: fb.step(table, ids[i], values[i], state, LR, EPS), n),
        "fbgemm coalesced": _rotating(lambda i: fb.step(table, merged[i][0], merged[i][1], state, LR, EPS), n),
        "fbgemm rowwise sequential": _rotating(lambda i: fb.step(table, ids[i], values[i], rowwise_state, LR, EPS), n),
        "fbgemm rowwise coalesced": _rotating(
            lambda i: fb.step(table, merged[i][0], merged[i][1], rowwise_state, LR, EPS), n
        ),
    }


# The composite rules (issue 16). l1 and l2 > 0: every step takes the full path (soft threshold,
# l2 division); the state sums start at TensorFlow's 0.1 (there is no eps). Adagrad-DA's step
# number is fixed (its cost does not depend on it).
L1 = L2 = 1e-3
INITIAL_SUM = 0.1
DA_STEP = 10


def rule_peer(case: RuleCase) -> tuple[Step, SharedArrays]:
    """`adagrad.ProximalAdagrad`, `adagrad.AdagradDA` or `adagrad.Ftrl`: one native call for the case's
    tensors."""
    params, grads = _arrays(case)
    opt: adagrad.ProximalAdagrad | adagrad.AdagradDA | adagrad.Ftrl
    if case.rule == "proximal":
        opt = adagrad.ProximalAdagrad(params, lr=LR, l1=L1, l2=L2, initial_accumulator_value=INITIAL_SUM)
    elif case.rule == "ftrl":
        opt = adagrad.Ftrl(params, lr=LR, l1=L1, l2=L2, initial_accumulator_value=INITIAL_SUM)
    else:
        opt = adagrad.AdagradDA(params, lr=LR, l1=L1, l2=L2, initial_gradient_squared_accumulator_value=INITIAL_SUM)
    sums = [opt.state[i]["n" if case.rule == "ftrl" else "sum"] for i in range(len(params))]
    return (lambda: opt.step(grads)), SharedArrays(params, grads, sums)


def rule_peers(case: RuleCase) -> dict[str, Step]:
    """The rule first (reported as "adagrad": ratios are against it); then the stream ceiling and
    plain Adagrad, both on its own params, grads and sums; TensorFlow's raw op when installed.

    The stream ceiling moves Adagrad's five passes, exactly Proximal Adagrad's bytes, and is its
    "ceiling". Adagrad-DA moves two more (its grad_sum read and written) and no native pass moves
    its seven: its pass is named "stream pass", and the report derives its "ceiling" as the stream
    pass's time scaled by its bytes (`RuleCase.ceiling_scale`, 7/5)."""
    ours, shared = rule_peer(case)
    steps: dict[str, Step] = {
        "adagrad": ours,
        ("ceiling" if case.ceiling_scale == 1 else "stream pass"): ceiling_step(shared),
        "plain adagrad": _adagrad_on(shared),
    }
    tf = tf_raw_ops.load()
    if not isinstance(tf, str):
        params, grads = _arrays(case)
        steps["tensorflow raw op"] = tf_raw_ops.dense_step(
            tf, case.rule, params, grads, lr=LR, l1=L1, l2=L2, step=DA_STEP, initial=INITIAL_SUM
        )[0]
    return steps


def sparse_rule_peers(case: SparseRuleCase, arrays: SparseArrays | None = None) -> dict[str, Step]:
    """The rule's sparse forms ("adagrad": duplicates="sum"; "adagrad sequential"), plain Adagrad's
    sparse step (sum) on the same table and state, the ceiling and the two floors of
    `sparse_peers`, and TensorFlow's sparse raw op (sequential) on a table of its own."""
    a = arrays if arrays is not None else sparse_arrays(case)
    table, state, batches, values = a.table, a.state, a.batches, a.values
    state.fill(INITIAL_SUM)
    grad_sum = adagrad.aligned_zeros(table.shape)  # Adagrad-DA's grad_sum, FTRL's z
    n = len(batches)

    def update(i: int, duplicates: str) -> None:
        if case.rule == "proximal":
            adagrad.sparse_proximal_update(
                table, batches[i], values[i], state, lr=LR, l1=L1, l2=L2, duplicates=duplicates
            )
        elif case.rule == "ftrl":
            adagrad.sparse_ftrl_update(
                table, batches[i], values[i], state, grad_sum, lr=LR, l1=L1, l2=L2, duplicates=duplicates
            )
        else:
            adagrad.sparse_da_update(
                table, batches[i], values[i], grad_sum, state, step=DA_STEP, lr=LR, l1=L1, l2=L2, duplicates=duplicates
            )

    def plain(i: int) -> None:
        adagrad.sparse_update(table, batches[i], values[i], state, step=1, lr=LR, eps=EPS, duplicates="sum")

    steps: dict[str, Step] = {
        "adagrad": _rotating(lambda i: update(i, "sum"), n),
        "adagrad sequential": _rotating(lambda i: update(i, "sequential"), n),
        "plain adagrad": _rotating(plain, n),
        **sparse_bounds(a),
    }
    tf = tf_raw_ops.load()
    if not isinstance(tf, str):
        raw, _ = tf_raw_ops.sparse_step(
            tf, case.rule, table, batches, values, lr=LR, l1=L1, l2=L2, step=DA_STEP, initial=INITIAL_SUM
        )
        steps["tensorflow raw op"] = _rotating(raw, n)
    return steps
