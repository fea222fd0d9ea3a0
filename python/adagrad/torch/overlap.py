"""The step overlapped with the backward pass: :func:`step_in_backward` updates each param as soon as
autograd has accumulated its grad and frees that grad; :func:`step_after_allreduce` updates each of
DistributedDataParallel's buckets as soon as its all-reduce completes. Both give the bits of
``optimizer.step()`` after the backward pass (:mod:`adagrad.torch.subset_step` says why), and both
refuse ``optimizer.step()`` afterwards: the update has happened.
"""

from __future__ import annotations

import weakref
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from .adapter import NativeOptimizer
from .subset_step import SubsetStep

__all__ = ["StepInBackward", "step_after_allreduce", "step_in_backward"]

# The optimizers a hook steps: a second set of hooks on one would step its params twice.
_BOUND: weakref.WeakSet[NativeOptimizer] = weakref.WeakSet()


class StepInBackward:
    """The hooks :func:`step_in_backward` registered; :meth:`remove` takes them off (the optimizer
    then steps in ``step()`` again)."""

    def __init__(self, optimizer: NativeOptimizer) -> None:
        self.optimizer = optimizer
        self._step = SubsetStep(optimizer, "step_in_backward")
        self._handles = [
            p.register_post_accumulate_grad_hook(self._on_grad) for p in self._step.params() if p.requires_grad
        ]
        self._handles.append(optimizer.register_step_pre_hook(partial(_refuse_step, "step_in_backward")))

    def _on_grad(self, p: torch.Tensor) -> None:
        self._step([p], [p.grad])
        p.grad = None  # freed at once: the point of stepping in backward
        _tell_schedulers(self.optimizer)

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        _BOUND.discard(self.optimizer)


def step_in_backward(optimizer: NativeOptimizer) -> StepInBackward:
    r"""Step ``optimizer`` inside the backward pass: each param is updated as soon as autograd has
    accumulated its grad (``Tensor.register_post_accumulate_grad_hook``), and its grad is then set
    to None, so that the grads of the whole model never exist at once. Returns a handle whose
    ``remove()`` undoes it.

    The result is bit for bit ``optimizer.step()`` after ``backward()``, for every rule and option
    that acts on each param alone: the update of a param reads its grad, its states, its step count
    and its group's options as they are when its grad arrives. Each ``backward()`` is one step.

    - LR schedulers work unchanged: they change the groups' ``lr``, read at each param's update.
    - ``state_dict()`` / ``load_state_dict()`` are the optimizer's own, in the same format.
    - ``zero_grad()`` is harmless (the grads are None already); ``step()`` raises, since the update
      has happened.
    - Refused (ValueError or RuntimeError): ``max_grad_norm`` and ``nonfinite='skip'`` or ``'raise'``
      (they read all grads before writing any), ``torch.amp.GradScaler`` (its inf check too: detected
      at ``scaler.step(optimizer)``, after a backward has stepped with scaled grads), params updated
      by torch ops (not on the CPU, or complex), and a second hook on the same optimizer. Not
      detected, so not to do: several ``backward()`` calls per step (gradient accumulation: each
      one steps), and DistributedDataParallel (the params would step on the local grads, before
      the all-reduce: use :func:`step_after_allreduce`).

    Params that do not require grad when this is called get no hook.

    Example::

        >>> import torch, adagrad.torch
        >>> model = torch.nn.Linear(4, 2)
        >>> optimizer = adagrad.torch.Adagrad(model.parameters(), lr=0.1)
        >>> hooks = adagrad.torch.step_in_backward(optimizer)
        >>> model(torch.ones(3, 4)).sum().backward()   # steps every param, frees every grad
        >>> model.weight.grad is None, int(optimizer.state[model.weight]["step"])
        (True, 1)
        >>> hooks.remove()
    """
    _bind(optimizer, "step_in_backward")
    try:
        return StepInBackward(optimizer)
    except BaseException:
        _BOUND.discard(optimizer)
        raise


def step_after_allreduce(model: DistributedDataParallel, optimizer: NativeOptimizer) -> None:
    r"""Step ``optimizer`` inside DistributedDataParallel's backward pass: a communication hook
    (``model.register_comm_hook``) all-reduces each bucket of grads as DDP does and updates the
    bucket's params once that all-reduce has completed, while the other buckets' all-reduces go on
    (on the backward pass's thread: a completed bucket when DDP hands over the next, the last ones
    at the end of the backward pass). After ``backward()`` every param is updated and ``p.grad``
    holds the averaged grad, as without the hook.

    Bit for bit DDP's own all-reduce followed by ``optimizer.step()``: the hook averages the grads
    with DDP's own operation (times ``1 / world_size`` as they enter the bucket; sparse grads divided
    by it), all-reduces with the same collective, and each param's update reads only its own grad,
    states and step count (see :func:`step_in_backward`). ``no_sync()`` gradient accumulation works
    as with ``step()``: the update happens at the backward that synchronises.

    - Keep ``optimizer.zero_grad()`` in the loop, drop ``optimizer.step()`` (it raises).
    - LR schedulers, ``state_dict()`` and ``load_state_dict()`` work as without the hook.
    - Refused (ValueError or RuntimeError): what :func:`step_in_backward` refuses;
      ``find_unused_parameters=True`` and ``static_graph=True`` (a globally unused param keeps no grad
      and no step in DDP, but would be stepped here); DDP's mixed precision; a param of the optimizer
      that DDP does not all-reduce; ``gradient_as_bucket_view=True`` with a world size that is not a
      power of two (DDP then divides a grad kept between steps in place, but multiplies a new one by
      ``1 / world_size``, and the hook cannot tell which it would have been); a second communication
      hook (DDP's own error). Not supported: DDP's ``join()`` for uneven inputs.

    Memory: ``p.grad`` stays allocated as with DDP alone; ``DistributedDataParallel(...,
    gradient_as_bucket_view=True)`` makes the grads views of DDP's buckets.

    Example (under torchrun, every rank runs the same)::

        model = torch.nn.parallel.DistributedDataParallel(net)
        optimizer = adagrad.torch.Adagrad(model.parameters(), lr=0.01)
        adagrad.torch.step_after_allreduce(model, optimizer)
        for x, y in batches:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()     # all-reduces and steps, bucket by bucket
    """
    if not isinstance(model, DistributedDataParallel):
        raise TypeError(f"step_after_allreduce takes a DistributedDataParallel model, got {type(model).__name__}")
    _check_ddp(model)
    ddp_params = {id(p) for p in model.parameters() if p.requires_grad}
    _bind(optimizer, "step_after_allreduce")
    try:
        stepper = SubsetStep(optimizer, "step_after_allreduce")
        outside = [i for i, p in enumerate(stepper.params()) if id(p) not in ddp_params]
        if outside:
            raise ValueError(
                f"params[{outside[0]}] of the optimizer is not a param DDP all-reduces (not the model's, or "
                "not requiring grad): it would never be stepped"
            )
        group = model.process_group
        world = dist.get_world_size(group)
        if model.gradient_as_bucket_view and world & (world - 1):
            raise ValueError(
                f"step_after_allreduce with gradient_as_bucket_view=True needs a world size that is a power of two "
                f"(this one is {world}): DDP then divides a grad kept between steps in place but multiplies a new one "
                "by 1/world_size, which differ in the last bit, and the hook cannot tell which DDP would have done; "
                "use gradient_as_bucket_view=False"
            )
        model.register_comm_hook(None, _AllReduceThenStep(stepper, model, world).hook)
        optimizer.register_step_pre_hook(partial(_refuse_step, "step_after_allreduce"))
    except BaseException:
        _BOUND.discard(optimizer)
        raise


def _check_ddp(model: DistributedDataParallel) -> None:
    for flag in ("find_unused_parameters", "static_graph"):
        if getattr(model, flag, False):
            raise ValueError(
                f"step_after_allreduce does not support DistributedDataParallel({flag}=True): a param unused "
                "on every rank keeps no grad and takes no step with DDP alone, but its bucket would step it here"
            )
    if getattr(model, "mixed_precision", None) is not None:
        raise ValueError("step_after_allreduce does not support DDP's mixed precision")


class _AllReduceThenStep:
    """The communication hook: DDP's averaging all-reduce of each bucket (reducer.cpp without a hook:
    a dense grad times 1/world as it is copied into the bucket, a sparse one divided in place; then
    a sum), then the step of the bucket's params, on the backward pass's own thread: a bucket whose
    all-reduce has completed steps when autograd hands DDP the next bucket, the rest at the end of
    the backward pass (an autograd callback queued before DDP's own, which then finds every future
    completed). Stepping in gloo's thread instead (``future.then``) would run the update's threads
    beside autograd's, and Python on a thread of gloo's."""

    def __init__(self, stepper: SubsetStep, model: DistributedDataParallel, world: int) -> None:
        # The model by a weak reference, as torch's own hooks hold it: the hook keeps neither the model
        # nor its process group alive past destroy_process_group.
        self.stepper, self.model, self.world = stepper, weakref.ref(model), world
        self.pending: list[tuple[torch.futures.Future[Any], Any, torch.futures.Future[torch.Tensor]]] = []

    def hook(self, state: Any, bucket: Any) -> torch.futures.Future[torch.Tensor]:
        if not self.pending:
            torch.autograd.Variable._execution_engine.queue_callback(self.finish)
        self.step_completed()
        buffer = bucket.buffer()
        if buffer.is_sparse:
            buffer.div_(self.world)
        else:
            buffer.mul_(1.0 / self.world)
        model = self.model()
        assert model is not None  # DDP calls its hook
        work = dist.all_reduce(buffer, group=model.process_group, async_op=True)
        assert work is not None  # async_op=True
        reduced: torch.futures.Future[torch.Tensor] = torch.futures.Future()
        self.pending.append((work.get_future(), bucket, reduced))
        return reduced

    def step_completed(self) -> None:
        """Step the buckets whose all-reduce has completed."""
        waiting = []
        for entry in self.pending:
            if entry[0].done():
                self.step(*entry)
            else:
                waiting.append(entry)
        self.pending[:] = waiting

    def finish(self) -> None:
        try:
            for entry in self.pending:
                self.step(*entry)
        finally:
            self.pending.clear()

    def step(self, allreduce: torch.futures.Future[Any], bucket: Any, reduced: torch.futures.Future[Any]) -> None:
        try:
            result = allreduce.wait()[0]
            self.stepper(bucket.parameters(), [result] if result.is_sparse else bucket.gradients())
        except BaseException as error:
            reduced.set_exception(error)
            raise
        reduced.set_result(result)


# DDP compares a hook's annotations with the types themselves; this module's are strings.
_AllReduceThenStep.hook.__annotations__ = {}


def _bind(optimizer: Any, what: str) -> None:
    if not isinstance(optimizer, NativeOptimizer):
        raise TypeError(f"{what} takes an adagrad.torch optimizer, got {type(optimizer).__name__}")
    if optimizer in _BOUND:
        raise RuntimeError(f"{what}: this optimizer already steps in a hook; a second would step its params twice")
    _BOUND.add(optimizer)


def _refuse_step(what: str, optimizer: Any, _args: Any, _kwargs: Any) -> None:
    if getattr(optimizer, "grad_scale", None) is not None or getattr(optimizer, "found_inf", None) is not None:
        raise RuntimeError(
            f"torch.amp.GradScaler cannot be used with {what}: the params were updated during backward, "
            "with the scaled grads, before the scaler could check them for infs and NaNs"
        )
    raise RuntimeError(
        f"optimizer.step() on an optimizer that steps in backward ({what}): its params were updated as their "
        "grads arrived; drop the step() call"
    )


def _tell_schedulers(optimizer: Any) -> None:
    """What ``optimizer.step()`` tells torch's LR schedulers (their step() warns of a schedule
    stepped before the optimizer otherwise)."""
    optimizer._opt_called = True
