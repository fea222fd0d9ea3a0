"""A drop-in optimizer's step over some of its params at a time, bit for bit their share of one
``optimizer.step()``: the hooks of :mod:`adagrad.torch.overlap` step each param (or each DDP bucket)
as its grad is ready.

Why the pieces add up to the whole step: every rule updates a param from its own grad, states and
step count alone, element by element, with the group's options as they are at that moment, and
stochastic rounding draws from the param's own stream (its place among all the optimizer's params,
``first_stream``), so a step of one param writes the bits the whole step would have written there.
What reads across params cannot be split and is refused: the norm clip of all grads together
(``max_grad_norm``), ``nonfinite='skip'`` / ``'raise'`` (one verdict over all grads before any is
written), a GradScaler's loss scale (its inf check needs every grad), and params torch ops update
(not CPU, or no native dtype).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch

from .. import _core
from .adapter import NativeOptimizer, _GroupPlan
from .grads import SparseRows, native_grad
from .state_table import StateTable
from .tensors import make_grads_contiguous

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._core import Record

__all__ = ["SubsetStep"]


@dataclass
class _Slot:
    """One param's share of the step: its one-param plan and record, views of the optimizer's."""

    param: torch.Tensor
    group: int
    plan: _GroupPlan  # the param alone; its steps a one-element view of the group's step counts
    record: Record  # without grads; copied per step


class SubsetStep:
    """Steps of ``optimizer``'s params, given with their grads, a few at a time (thread-safe: one
    at a time). ``what`` names the caller in messages."""

    def __init__(self, optimizer: NativeOptimizer, what: str) -> None:
        if not isinstance(optimizer, NativeOptimizer):
            raise TypeError(f"{what} takes an adagrad.torch optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.what = what
        self._plans: list[_GroupPlan] | None = None
        self._slots: dict[int, _Slot] = {}
        self.refuse_whole_step_options()
        self._rebuild()

    def params(self) -> list[torch.Tensor]:
        """The optimizer's params, in its order."""
        return [slot.param for slot in self._slots.values()]

    def refuse_whole_step_options(self) -> None:
        """ValueError if a step option (an attribute, changeable at any time) reads all grads."""
        opt = self.optimizer
        nonfinite = opt.nonfinite
        if nonfinite != "propagate":
            raise ValueError(
                f"{self.what} cannot honour nonfinite={nonfinite!r}: it decides once over all grads before "
                "any param is written, and here params are written as their grads arrive; use 'propagate'"
            )
        if opt.max_grad_norm is not None:
            raise ValueError(
                f"{self.what} cannot clip the norm of all grads together (max_grad_norm={opt.max_grad_norm}): "
                "params are written as their grads arrive; clip_norm_per_tensor and clip_value act per grad"
            )
        if getattr(opt, "grad_scale", None) is not None:
            raise RuntimeError(
                f"{self.what} does not support torch.amp.GradScaler: its inf check needs every grad before "
                "any param is written"
            )

    def __call__(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]) -> None:
        """Step each of ``params`` (those of the optimizer) with its grad (None: skipped)."""
        with self.optimizer._turn:  # its whole steps and these take turns (adagrad._turns)
            self.refuse_whole_step_options()
            opt = self.optimizer
            records: list[Record] = []
            grad_lists: list[list[Any]] = []
            stepped: list[torch.Tensor] = []
            for p, g in zip(params, grads):
                slot = self._slot(p) if g is not None else None
                if slot is None or g is None:
                    continue
                plan = slot.plan
                native = native_grad(g, plan.orders[0], plan.labels[0])
                record = cast("Record", dict(slot.record))
                if isinstance(native, SparseRows):
                    cast("list[_GroupPlan]", self._plans)[slot.group].sparse_seen = True  # Adagrad.state_dict's
                    native_grads, record["params"], record["states"] = opt._as_rows(
                        opt.param_groups[slot.group], plan, [native]
                    )
                else:
                    native_grads = [native]
                record["grads"] = native_grads
                records.append(record)
                grad_lists.append(native_grads)
                stepped.append(p)
            if not records:
                return
            options = opt._step_options()
            try:
                _core.step(records, options)
            except ValueError:
                # A strided dense grad: copied and retried, as the whole step does (nothing was written).
                if not make_grads_contiguous(grad_lists):
                    raise
                _core.step(records, options)
            opt.last_step_applied = True
            torch.autograd.graph.increment_version(stepped)  # as an in-place torch op would

    def _slot(self, p: torch.Tensor) -> _Slot | None:
        """p's slot (None if p is not the optimizer's), rebuilt where the whole step would rebuild its
        plans: checked for p alone, and for the groups' lists (which number the streams)."""
        opt = self.optimizer
        slot = self._slots.get(id(p))
        plans = opt._plans
        if (
            plans is None
            or plans is not self._plans
            or cast(StateTable, opt.state).replaced
            or len(plans) != len(opt.param_groups)
            or any(
                plan.source is not g["params"] or len(plan.source) != plan.count
                for plan, g in zip(plans, opt.param_groups)
            )
            or (slot is not None and (slot.param is not p or p.data_ptr() != slot.plan.pointers[0]))
        ):
            self._rebuild()
            slot = self._slots.get(id(p))
        return slot if slot is not None and slot.param is p else None

    def _rebuild(self) -> None:
        opt = self.optimizer
        plans = opt._current_plans()
        for plan in plans:
            if plan.fallback:
                p = plan.fallback[0]
                raise TypeError(
                    f"{self.what} takes params the native step updates (CPU, float32, float64, float16 or "
                    f"bfloat16); a param of dtype {p.dtype} on {p.device} is updated by torch ops"
                )
        slots: dict[int, _Slot] = {}
        first = 0
        for gi, (group, plan) in enumerate(zip(opt.param_groups, plans)):
            for i, p in enumerate(plan.params):
                one = _GroupPlan(
                    source=plan.source,
                    params=[p],
                    param_arrays=[plan.param_arrays[i]],
                    states={name: [arrays[i]] for name, arrays in plan.states.items()},
                    elementwise=[plan.elementwise[i]],
                    orders=[plan.orders[i]],
                    pointers=[plan.pointers[i]],
                    labels=[plan.labels[i]],
                    steps=plan.steps[i : i + 1],  # a view: the native step counts in the group's array
                    count=1,
                )
                slots[id(p)] = _Slot(p, gi, one, opt._native_record(group, one, first + i))
            first += len(plan.params)
        self._plans, self._slots = plans, slots
