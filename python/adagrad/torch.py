r"""Drop-in ``torch.optim`` optimizers that run the native kernel: ``adagrad.torch.Adagrad``,
``adagrad.torch.ProximalAdagrad``, ``adagrad.torch.AdagradDA`` and ``adagrad.torch.AdagradDecay``.

Switch with one line::

    optimizer = adagrad.torch.Adagrad(model.parameters(), lr=0.01)   # was torch.optim.Adagrad(...)

Dense CPU float32/float64 params are updated in place, zero-copy, by one native call per step
for all of them; for Adagrad bit for bit ``torch.optim.Adagrad(fused=True)``, for the composite
rules bit for bit :class:`adagrad.ProximalAdagrad` / :class:`adagrad.AdagradDA` /
:class:`adagrad.AdagradDecay`. Sparse COO grads
(``nn.Embedding`` and ``nn.EmbeddingBag`` with ``sparse=True``, and any other layout) go through
the sparse kernel in the same call. Importing this module runs adagrad's parallel steps on torch's
OpenMP thread team (:func:`share_torch_threads`).
Params on other devices or of other dtypes (float16, bfloat16, complex) are updated by torch ops:
torch's own single-tensor Adagrad for Adagrad, the rule's formula in plain torch ops for the
others; correct but not accelerated. Importing ``adagrad`` never needs torch; this module
does (``pip install 'adagrad[torch]'``).

The four share one adapter (``_NativeOptimizer``: plans, zero-copy views, sparse grads, state
tables, ``state_dict``); each rule is its options and their checks, its state tensors, its native
group tuple and its fallback.
"""

from __future__ import annotations

import math
import platform
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, TypeVar, cast

import numpy as np
import torch
from torch.optim.adagrad import adagrad as _torch_adagrad

from . import _core
from ._torch_grads import _BFLOAT16, HALF_DTYPES, NATIVE_DTYPES, SparseRows, as_array, native_grads
from .composite_optimizers import AdagradDecay as _NumpyAdagradDecay
from .composite_optimizers import _check_rule_group
from .optimizer import check_group_options

__all__ = ["Adagrad", "AdagradDA", "AdagradDecay", "ProximalAdagrad", "share_torch_threads"]

_F = TypeVar("_F", bound=Callable[..., Any])
_not_traced = cast(Callable[[_F], _F], torch.compiler.disable)  # torch's decorator is untyped


def share_torch_threads(on: bool = True) -> bool:
    """Run adagrad's parallel steps (all of them, NumPy ones too) on torch's OpenMP thread team
    instead of adagrad's own pool; returns whether they now do (False where torch's CPU build
    uses no OpenMP). Importing this module turns it on: in a training loop torch's OpenMP workers
    keep spinning after the backward pass, and a pool of our own would wait for cores they hold
    (bench/README.md, "Threads in a torch loop"). The team's size is the smaller of
    ``adagrad.get_num_threads()`` and ``torch.get_num_threads()``. Results never depend on it."""
    if on and "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        on = False
    return bool(_core._use_openmp_team(on))


share_torch_threads(True)


@dataclass
class _GroupPlan:
    """The arrays one param group hands the native step, built once and reused while valid."""

    source: list[Any]  # the group's params list, to notice a replaced list
    params: list[torch.Tensor] = field(default_factory=list)  # natively updated, in group order
    param_arrays: list[np.ndarray] = field(default_factory=list)
    # The state arrays per state name (the rule's STATE_NAMES), one per natively updated param.
    states: dict[str, list[np.ndarray]] = field(default_factory=dict)
    elementwise: list[tuple[str, ...]] = field(default_factory=list)  # the states shaped like the param
    orders: list[tuple[int, ...] | None] = field(default_factory=list)  # None: already C order
    pointers: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    fallback: list[torch.Tensor] = field(default_factory=list)  # torch ops update these
    # The state entries, and the tensors in them (STATE_NAMES, then "step"), that the arrays above
    # were made from: a step compares them by identity, so that a tensor the user put in the state
    # is honoured.
    entries: list[dict[str, Any]] = field(default_factory=list)
    entry_tensors: list[tuple[Any, ...]] = field(default_factory=list)
    sparse_seen: bool = False  # a grad was sparse: skip the all-dense fast path, whose failure costs ~10 us
    first: int = 0  # stochastic rounding: the natively updated params of the groups before this one


class _StateTable(defaultdict):  # type: ignore[type-arg]
    """The optimizer's ``state``: a defaultdict that notes when an entry is replaced
    (``opt.state[p] = {...}``), so that the next step rebuilds its plan."""

    replaced = False

    def __setitem__(self, key: Any, value: Any) -> None:
        self.replaced = True
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.replaced = True
        super().__delitem__(key)

    def __reduce__(self) -> Any:  # pickles as the plain defaultdict torch would have
        return (defaultdict, (dict,), None, None, iter(self.items()))


class _NativeOptimizer(torch.optim.Optimizer):
    """What the torch drop-ins share, whatever their rule: per-group plans of zero-copy NumPy views
    (rebuilt when a param, a state tensor or a group changes), sparse COO grads as rows, one native
    call per step for all groups, params the kernel does not take handed to the rule's torch
    fallback, state tables, ``state_dict`` / ``load_state_dict`` checked before anything changes.

    A rule is a subclass: ``STATE_NAMES`` and the hooks ``_check_rule_group``, ``_initial_state``,
    ``_native_group``, ``_check_fallback`` and ``_fallback_step`` (and, optionally,
    ``_state_shape`` / ``_state_layout``, ``_check_sparse_view``, ``_native_step_args`` and
    ``_took_result``).
    """

    # The param's state tensors besides "step", in the order the native group tuple takes them.
    STATE_NAMES: ClassVar[tuple[str, ...]] = ("sum",)
    # The dtypes of the params the native kernel takes (dense CPU tensors); the rest take the fallback.
    NATIVE_DTYPES: ClassVar[tuple[torch.dtype, ...]] = NATIVE_DTYPES

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self._check_group(defaults, "")
        self._plans: list[_GroupPlan] | None = None
        super().__init__(params, defaults)
        self.state = _StateTable(dict, self.state)
        for group, labels in zip(self.param_groups, self._labels()):
            for p, label in zip(group["params"], labels):
                self._init_state(self.state[p], p, group, label)

    # -- the rule's part ------------------------------------------------------------------------

    @classmethod
    def _check_rule_group(cls, group: Mapping[str, Any], where: str) -> None:
        """TypeError / ValueError unless the group's options are valid (lr is a float here)."""
        raise NotImplementedError

    def _initial_state(self, p: torch.Tensor, group: Mapping[str, Any], label: str) -> dict[str, torch.Tensor]:
        """The param's initial state tensors by STATE_NAMES ("step" is added)."""
        raise NotImplementedError

    def _state_shape(self, p: torch.Tensor, group: Mapping[str, Any]) -> tuple[int, ...]:
        """The shape of the param's state tensors."""
        return tuple(p.shape)

    def _state_layout(
        self, p: torch.Tensor, group: Mapping[str, Any], name: str
    ) -> tuple[tuple[int, ...], torch.dtype]:
        """The shape and dtype of the param's state tensor ``name``: by default ``_state_shape``'s
        and the param's. A state of another dtype (AdagradDecay's int64 counts) is kept exactly
        through ``load_state_dict``, which torch would cast to the param's dtype."""
        return self._state_shape(p, group), p.dtype

    def _native_group(
        self, group: Mapping[str, Any], plan: _GroupPlan, lr: float, params: list[Any], grads: list[Any],
        states: dict[str, list[np.ndarray]],
    ) -> tuple[Any, ...]:  # fmt: skip
        """The group's tuple for the native step (adagrad/_core: step)."""
        raise NotImplementedError

    def _check_fallback(self, p: torch.Tensor, group: Mapping[str, Any], label: str) -> None:
        """Raise unless the rule's torch fallback can update p (a param the kernel does not take)."""
        raise NotImplementedError

    def _fallback_step(self, group: Mapping[str, Any], params: list[torch.Tensor]) -> None:
        """Update the params the native kernel does not take, with torch ops."""
        raise NotImplementedError

    def _check_sparse_view(self, group: Mapping[str, Any], label: str, shape: tuple[int, int]) -> None:
        """Raise if a sparse grad addressing the param as a ``shape`` table is refused."""

    def _native_step_args(self, plans: list[_GroupPlan]) -> tuple[Any, ...]:
        """The native step's arguments after ``nonfinite`` (grad scale, clip options)."""
        return ()

    def _took_result(self, result: Any) -> None:
        """What the native step returned (True, or (True, norm) with a norm clip)."""

    # -- shared ---------------------------------------------------------------------------------

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        lr = group["lr"]
        if isinstance(lr, torch.Tensor):
            if lr.numel() != 1:
                raise ValueError(f"{where}Tensor lr must be 1-element")
            lr = lr.item()
        cls._check_rule_group({**group, "lr": lr}, where)
        if group.get("differentiable"):
            raise ValueError(f"{where}differentiable=True is not supported: the native update does not record autograd")

    def _labels(self) -> list[list[str]]:
        """How messages name each param of each group: its name, or its place among all params."""
        labels, index = [], 0
        for group in self.param_groups:
            names = group.get("param_names")
            count = len(group["params"])
            labels.append([repr(names[i]) if names else f"params[{index + i}]" for i in range(count)])
            index += count
        return labels

    def _init_state(self, state: dict[str, Any], p: torch.Tensor, group: Mapping[str, Any], label: str) -> None:
        """The rule's initial state, with step 0 as torch keeps it (a 0-d float32 tensor)."""
        if state:
            return
        initial = self._initial_state(p, group, label)
        state["step"] = torch.zeros((), dtype=torch.float32)
        state.update(initial)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1], f"param group {len(self.param_groups) - 1}: ")
        self._plans = None

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.state = _StateTable(dict, self.state)
        for group in self.param_groups:  # a group saved without some option gets the default
            for name, value in self.defaults.items():
                group.setdefault(name, value)
        self._plans = None

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state of this optimizer (or, for Adagrad, of ``torch.optim.Adagrad``); checked
        before anything changes."""
        self._check_loaded_state(state_dict)
        super().load_state_dict(state_dict)
        self._restore_exact_states(state_dict)
        self._current_plans()  # adopt the loaded tensors now, so that problems surface here

    @_not_traced  # one native call: nothing for dynamo to trace (as torch's fused step)
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every param with a grad; returns ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self._amp_found_inf():
            return loss  # torch.amp.GradScaler saw an inf or a NaN: no update, no step counted (as fused)
        plans = self._current_plans()
        batches, grad_lists, stepped = [], [], []
        late: list[tuple[Mapping[str, Any], list[torch.Tensor]]] = []
        native_before = 0
        for group, plan in zip(self.param_groups, plans):
            plan.first, native_before = native_before, native_before + len(plan.params)
            grads = native_grads(plan.params, plan.orders, plan.labels, not plan.sparse_seen and not any(plan.orders))
            params, states = plan.param_arrays, plan.states
            torch_side = [isinstance(g, SparseRows) and g.values.itemsize == 2 for g in grads]
            if any(torch_side) and not self._native_16bit_sparse(group):
                late.append((group, [p for p, t in zip(plan.params, torch_side) if t]))
                grads = [None if t else g for g, t in zip(grads, torch_side)]
            if any(isinstance(g, SparseRows) for g in grads):
                plan.sparse_seen = True
                grads, params, states = self._as_rows(group, plan, grads)
            stepped += [p for p, g in zip(plan.params, grads) if g is not None]
            lr = group["lr"]
            lr = lr.item() if isinstance(lr, torch.Tensor) else lr
            batches.append(self._native_group(group, plan, lr, params, grads, states))
            grad_lists.append(grads)
        args = self._native_step_args(plans)
        try:
            result = _core.step(batches, "propagate", *args)
        except ValueError:
            # A strided dense grad (rare: autograd gives grads the param's layout). Checking every
            # grad's layout up front would cost ~0.4 us per tensor per step; the native call
            # validates everything before it writes, so copying the odd ones and retrying is safe.
            if not _make_grads_contiguous(grad_lists):
                raise
            result = _core.step(batches, "propagate", *args)
        self._took_result(result)
        scale = self._amp_grad_scale()
        if scale is not None:
            _unscale_grads(stepped, scale, exact=True)  # torch's fused kernel writes the unscaled grads back
        if stepped:
            torch.autograd.graph.increment_version(stepped)  # as an in-place torch op would
        torch_steps = [(g, plan.fallback) for g, plan in zip(self.param_groups, plans) if plan.fallback] + late
        for torch_group, torch_params in torch_steps:
            if scale is not None:
                _unscale_grads(torch_params, scale, exact=False)  # as GradScaler.unscale_ would have
            self._fallback_step(torch_group, torch_params)
        return loss

    def _native_16bit_sparse(self, group: Mapping[str, Any]) -> bool:
        """Whether the native sparse step takes the group's 16-bit tables (else torch's own step does)."""
        return True

    def _amp_found_inf(self) -> bool:
        """torch.amp.GradScaler's verdict, set as an attribute when the optimizer says it handles
        the loss scale itself (``_step_supports_amp_scaling``, as torch's fused optimizers do)."""
        found_inf = getattr(self, "found_inf", None) if getattr(self, "_step_supports_amp_scaling", False) else None
        return found_inf is not None and bool(found_inf.item())

    def _amp_grad_scale(self) -> torch.Tensor | None:
        """GradScaler's scale (a float32 0-d tensor) the grads still carry, or None."""
        if not getattr(self, "_step_supports_amp_scaling", False):
            return None
        return getattr(self, "grad_scale", None)

    def _as_rows(
        self, group: Mapping[str, Any], plan: _GroupPlan, grads: list[Any]
    ) -> tuple[list[Any], list[np.ndarray], dict[str, list[np.ndarray]]]:
        """The step's arrays with each SparseRows grad's param (and element-wise states) viewed as
        its 2-D table: a view of the same memory, no copy."""
        grads, params = list(grads), list(plan.param_arrays)
        states = {name: list(arrays) for name, arrays in plan.states.items()}
        for i, g in enumerate(grads):
            if not isinstance(g, SparseRows):
                continue
            if g.shape != params[i].shape:
                self._check_sparse_view(group, plan.labels[i], g.shape)
                params[i] = params[i].reshape(g.shape)
                for name in plan.elementwise[i]:
                    states[name][i] = states[name][i].reshape(g.shape)
            grads[i] = g.native()
        return grads, params, states

    def _current_plans(self) -> list[_GroupPlan]:
        plans = self._plans
        names = (*self.STATE_NAMES, "step")
        if (
            plans is None
            or len(plans) != len(self.param_groups)
            or not all(
                plan.source is group["params"] and len(plan.source) == len(plan.params) + len(plan.fallback)
                for plan, group in zip(plans, self.param_groups)
            )
        ):
            plans = self._plans = self._build_plans()
        elif any(p.data_ptr() != ptr for plan in plans for p, ptr in zip(plan.params, plan.pointers)):
            plans = self._plans = self._build_plans()  # a param's memory was replaced (p.data = ...)
        elif cast(_StateTable, self.state).replaced or not all(
            e.get(name) is t
            for plan in plans
            for e, tensors in zip(plan.entries, plan.entry_tensors)
            for name, t in zip(names, tensors)
        ):
            plans = self._plans = self._build_plans()  # a state tensor or entry was replaced: honour it
        return plans

    def _build_plans(self) -> list[_GroupPlan]:
        plans = []
        for gi, (group, labels) in enumerate(zip(self.param_groups, self._labels())):
            self._check_group(group, f"param group {gi}: ")
            plan = _GroupPlan(source=group["params"], states={name: [] for name in self.STATE_NAMES})
            counts = []
            for p, label in zip(group["params"], labels):
                state = self.state[p]
                self._init_state(state, p, group, label)
                order = _native_order(p, self.NATIVE_DTYPES)
                if order is False:
                    self._check_fallback(p, group, label)
                    plan.fallback.append(p)
                    continue
                if any(name not in state for name in (*self.STATE_NAMES, "step")):
                    raise ValueError(
                        f"the state of {label} must hold {_quoted((*self.STATE_NAMES, 'step'))}, has {sorted(state)}"
                    )
                elementwise = []
                for name in self.STATE_NAMES:
                    shape, dtype = self._state_layout(p, group, name)
                    state[name] = _state_in_layout(state[name], name, p, shape, dtype, label)
                    like_p = shape == tuple(p.shape)
                    plan.states[name].append(as_array(state[name], order if like_p else None))
                    if like_p:
                        elementwise.append(name)
                counts.append(_step_count(state["step"], label))
                plan.params.append(p)
                plan.elementwise.append(tuple(elementwise))
                plan.orders.append(order)
                plan.param_arrays.append(as_array(p.detach(), order))
                plan.pointers.append(p.data_ptr())
                plan.labels.append(label)
            plan.steps = np.array(counts, dtype=np.int64)
            shared_steps = torch.from_numpy(plan.steps)
            for i, p in enumerate(plan.params):
                entry = self.state[p]
                entry["step"] = shared_steps[i]  # a 0-d view the native step increments
                plan.entries.append(entry)
                plan.entry_tensors.append((*(entry[name] for name in self.STATE_NAMES), entry["step"]))
            plans.append(plan)
        _core.check_params([a for plan in plans for a in plan.param_arrays], [n for plan in plans for n in plan.labels])
        cast(_StateTable, self.state).replaced = False  # after the entries this build created
        return plans

    def _check_loaded_state(self, state_dict: Any) -> None:
        """Options, shapes and step counts of a state_dict, checked against our params before torch
        loads it. A saved group's missing options will be the defaults (see ``__setstate__``)."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("state_dict must be a dict with 'state' and 'param_groups'")
        groups = self.param_groups
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(groups):
            raise ValueError(f"state_dict has {len(saved_groups)} param groups, this optimizer {len(groups)}")
        for gi, (saved, group) in enumerate(zip(saved_groups, groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"param group {gi} of the state_dict has {len(saved['params'])} params, this optimizer's "
                    f"{len(group['params'])}"
                )
            options = {**self.defaults, **{k: v for k, v in saved.items() if k != "params"}}
            self._check_group(options, f"state_dict param group {gi}: ")
            for key, p in zip(saved["params"], group["params"]):
                entry = state_dict["state"].get(key)
                if entry is None:
                    continue
                if any(name not in entry for name in (*self.STATE_NAMES, "step")):
                    raise ValueError(f"state_dict state {key!r} has no {_quoted((*self.STATE_NAMES, 'step'))}")
                extra = sorted(set(entry) - {*self.STATE_NAMES, "step"})
                if extra:  # another rule's state: loading it would keep tensors this rule ignores
                    raise ValueError(
                        f"state_dict state {key!r} holds {extra}, which {type(self).__name__} does not keep (a state "
                        "of another optimizer?)"
                    )
                for name in self.STATE_NAMES:
                    shape, dtype = self._state_layout(p, options, name)
                    if tuple(entry[name].shape) != shape:
                        raise ValueError(
                            f"state_dict {name} {key!r} has shape {tuple(entry[name].shape)}, its param needs {shape}"
                        )
                    saved_dtype = getattr(entry[name], "dtype", None)
                    if dtype != p.dtype and saved_dtype != dtype:
                        raise ValueError(f"state_dict {name} {key!r} must be a {dtype} tensor, got {saved_dtype}")
                _step_count(entry["step"], f"state_dict state {key!r}")

    def _restore_exact_states(self, state_dict: dict[str, Any]) -> None:
        """The loaded states of a dtype other than their param's (checked by ``_check_loaded_state``)
        taken as saved: torch's ``load_state_dict`` casts every state tensor but "step" to the
        param's floating dtype, which would round large counts in float16."""
        for saved, group in zip(state_dict["param_groups"], self.param_groups):
            for key, p in zip(saved["params"], group["params"]):
                entry = state_dict["state"].get(key)
                if entry is None:
                    continue
                for name in self.STATE_NAMES:
                    _shape, dtype = self._state_layout(p, group, name)
                    if dtype != p.dtype:
                        self.state[p][name] = entry[name].to(device=p.device, dtype=dtype, copy=True)


_CLIP_DEFAULTS = {"max_grad_norm": None, "norm_type": 2.0, "clip_norm_per_tensor": None, "clip_value": None}


def torch_vector_width() -> int:
    """How many 16-bit elements one vector of torch's fused CPU Adagrad holds: its kernel rounds
    clr, eps and weight_decay to a 16-bit param's dtype in all but the last ``numel % width``
    elements. x86: 16, whatever ``torch.backends.cpu.get_cpu_capability()`` says, since the kernel
    is registered for AVX2 and not for AVX-512 (an AVX-512 CPU runs the AVX2 kernel: measured with
    torch 2.13, the constants change at multiples of 16), and DEFAULT's vectors are 32 bytes too.
    AArch64: 8, its 128-bit vectors (not measured here)."""
    return 16 if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686") else 8


_TORCH_VECTOR_WIDTH = torch_vector_width()


class Adagrad(_NativeOptimizer):
    r"""``torch.optim.Adagrad`` with the native kernel: same constructor, same maths, same state.

    For each param :math:`\theta` with state sum :math:`s` and step :math:`t` (torch's fused
    kernel's maths, reproduced bit for bit)::

        t   <- t + 1
        g   <- -g                                    if maximize
        g   <- fma(theta, wd, g)                     if weight_decay (coupled, torch's default)
        clr = lr / fma(t - 1, lr_decay, 1)          (in double)
        s   <- fma(g, g, s)
        theta <- theta - clr * g / (sqrt(s) + eps)

    Args:
        params: an iterable of tensors, of (name, tensor) pairs, or of param-group dicts.
        lr: learning rate (default 1e-2); a float or a 1-element tensor, read at every step so
            that ``torch.optim.lr_scheduler`` schedulers work.
        lr_decay: learning-rate decay (default 0).
        weight_decay: L2 penalty (default 0); for sparse grads it is applied lazily, to the rows
            present in the grad only (torch raises instead).
        initial_accumulator_value: starting value of the state sums (default 0); honoured per
            group (torch reads only the constructor's value).
        eps: added to the denominator (default 1e-10).
        foreach, fused: accepted for compatibility; the native kernel always runs, with torch's
            fused maths. A group records ``fused=True`` unless told otherwise (or, once it has had
            sparse grads, ``fused=None``), so that its state_dict loaded into
            ``torch.optim.Adagrad`` continues on torch's fused (or sparse) path.
        maximize: maximise the objective (default False).
        differentiable: must be False; the native update does not record autograd.
        decoupled_weight_decay: AdamW-style decay ``theta *= 1 - clr * wd`` (default False).
        eps_inside_sqrt: ``sqrt(s + eps)`` as Keras 3 / optax (default False).
        rowwise: one accumulator per row of each 2-D param, FBGEMM's row-wise Adagrad, for
            embedding tables with sparse grads (default False).
        duplicates: for sparse grads, ``"sum"`` repeated rows then update once (default, as
            torch's ``coalesce()``), or ``"sequential"``: one update per occurrence.
        state_dtype: None (default: the sums have the param's dtype, torch's layout) or
            ``"float32"``: float32 sums for float16 / bfloat16 params.
        stochastic_rounding: round the writes of float16 / bfloat16 params stochastically,
            unbiased, instead of to nearest even (default False; per group): the rounding of
            :class:`adagrad.Adagrad`, bit for bit (param ``i`` of the natively updated params, in
            group order, is stream ``i``). torch has no such option: such a group's state_dict
            still loads into ``torch.optim.Adagrad``, which rounds to nearest.
        seed: the stochastic rounding's seed (an int from 0 to 2**64 - 1, default 0; per group,
            saved in the state_dict). Not drawn from torch's generator: building the optimizer
            leaves torch's random stream as ``torch.optim.Adagrad`` leaves it.
        max_grad_norm: None (default), or the fused replacement for
            ``torch.nn.utils.clip_grad_norm_(params, max_grad_norm, norm_type)`` before ``step()``:
            the norm of all grads measured in the same native call (one read of the grads), every
            grad scaled by torch's ``min(1, (1 / (norm + 1e-6)) * max_grad_norm)`` inside the update
            (one more read, no write: ``p.grad`` is left as it was). ``opt.last_grad_norm`` holds
            the norm (a float; what ``clip_grad_norm_`` returns, NaN or inf included). The norm is
            summed in float64 in a fixed order (the same bits for every thread count and ISA), not
            in torch's order: where both round to the same float32, the step equals torch's pair
            bit for bit, and otherwise differs by that rounding.
        norm_type: 2 (default) or ``inf`` / ``"inf"``, for max_grad_norm and clip_norm_per_tensor.
        clip_norm_per_tensor: None (default), or clip each grad by its own norm (Keras ``clipnorm``).
        clip_value: None (default), or clamp each grad element to ``[-clip_value, clip_value]``
            (``torch.nn.utils.clip_grad_value_``).

        The clip options belong to the optimizer, not to a param group (at most one of the three;
        read at every step, not saved in ``state_dict``), as for :class:`adagrad.Adagrad`; a
        sparse grad takes part with its values. Params torch's own Adagrad updates (dtypes other
        than float32 / float64) cannot be clipped here yet: a clip option with such a param raises.

    State: ``state[p] = {"step": 0-d int64 tensor, "sum": tensor like p}`` (``(rows,)`` with
    ``rowwise``). ``state_dict()`` / ``load_state_dict()`` interchange with
    ``torch.optim.Adagrad`` both ways. A state tensor replaced by hand (``state[p]["sum"] =
    torch.zeros_like(p)``, a new ``step``) is used from the next step, as torch uses it.

    Sparse grads: any sparse COO grad torch's Adagrad takes (any sparse and dense dims, coalesced
    or not), updated over the param viewed as rows; ``rowwise`` takes row-sparse grads of 2-D
    params (one sparse dim, as ``nn.Embedding`` gives).

    Example:
        >>> import torch, adagrad.torch
        >>> w = torch.nn.Parameter(torch.zeros(3))
        >>> opt = adagrad.torch.Adagrad([w], lr=0.1)
        >>> w.grad = torch.tensor([1.0, -2.0, 0.0])
        >>> opt.step()
        >>> w.detach()
        tensor([-0.1000,  0.1000,  0.0000])
    """

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        eps_inside_sqrt: bool = False,
        rowwise: bool = False,
        duplicates: str = "sum",
        state_dtype: str | None = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
        max_grad_norm: float | None = None,
        norm_type: float | str = 2.0,
        clip_norm_per_tensor: float | None = None,
        clip_value: float | None = None,
    ) -> None:
        _check_like_torch(
            lr,
            (lr_decay, "Invalid lr_decay value: {}"),
            (weight_decay, "Invalid weight_decay value: {}"),
            (initial_accumulator_value, "Invalid initial_accumulator_value value: {}"),
            (eps, "Invalid epsilon value: {}"),
        )
        _core.check_clip_options(max_grad_norm, norm_type, clip_norm_per_tensor, clip_value)
        self.max_grad_norm = max_grad_norm
        self.norm_type = norm_type
        self.clip_norm_per_tensor = clip_norm_per_tensor
        self.clip_value = clip_value
        self.last_grad_norm: float | None = None
        if fused and differentiable:
            raise RuntimeError("`fused` does not support `differentiable`")
        if fused and foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        if differentiable:
            raise ValueError("differentiable=True is not supported: the native update does not record autograd")
        self._fused_by_default = fused is None
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": False,
            "fused": True if fused is None else fused,
            "decoupled_weight_decay": decoupled_weight_decay,
            "eps_inside_sqrt": eps_inside_sqrt,
            "rowwise": rowwise,
            "duplicates": duplicates,
            "state_dtype": state_dtype,
            "stochastic_rounding": stochastic_rounding,
            "seed": seed,
        }
        super().__init__(params, defaults)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {**state, **{name: getattr(self, name) for name in _CLIP_DEFAULTS}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_fused_by_default", True)
        for name, value in {**_CLIP_DEFAULTS, "last_grad_norm": None}.items():  # pickled before clipping
            self.__dict__.setdefault(name, value)

    def state_dict(self) -> dict[str, Any]:
        """torch's ``state_dict``, loadable into ``torch.optim.Adagrad``. A group records
        ``fused=True`` (torch's bitwise path for ours) unless it has had sparse grads, which torch's
        fused kernel refuses: then ``fused=None``, what torch records by default (its sparse path).
        Groups using ``eps_inside_sqrt``, ``decoupled_weight_decay`` or ``rowwise`` cannot continue
        in torch, which has none of them (it would keep the keys and ignore them)."""
        saved = super().state_dict()
        plans = self._plans or []
        for gi, group in enumerate(saved["param_groups"]):
            sparse = gi < len(plans) and plans[gi].sparse_seen
            if sparse and self._fused_by_default and group.get("fused") is True:
                group["fused"] = None
        return saved

    NATIVE_DTYPES = NATIVE_DTYPES + HALF_DTYPES if _BFLOAT16 is not None else NATIVE_DTYPES + (torch.float16,)
    # torch.amp.GradScaler then hands the step its scale and its inf check (attributes grad_scale
    # and found_inf) instead of unscaling the grads itself: the division happens inside the update
    # (torch's fused Adagrad does the same).
    _step_supports_amp_scaling = True

    # -- the rule's part ------------------------------------------------------------------------

    @classmethod
    def _check_rule_group(cls, group: Mapping[str, Any], where: str) -> None:
        check_group_options(group, where)

    def _initial_state(self, p: torch.Tensor, group: Mapping[str, Any], label: str) -> dict[str, torch.Tensor]:
        """torch's initial state: sums full of initial_accumulator_value (per row if rowwise)."""
        if group["rowwise"] and p.dim() != 2:
            raise ValueError(f"rowwise=True needs 2-D params (rows, dim); {label} has shape {tuple(p.shape)}")
        initial = group["initial_accumulator_value"]
        _shape, dtype = self._state_layout(p, group, "sum")
        if group["rowwise"]:
            return {"sum": torch.full((p.shape[0],), initial, dtype=dtype, device=p.device)}
        if torch.is_complex(p):
            initial = complex(initial, initial)
        return {"sum": torch.full_like(p, initial, dtype=dtype, memory_format=torch.preserve_format)}

    def _state_shape(self, p: torch.Tensor, group: Mapping[str, Any]) -> tuple[int, ...]:
        return (p.shape[0],) if group["rowwise"] and p.dim() == 2 else tuple(p.shape)

    def _state_layout(
        self, p: torch.Tensor, group: Mapping[str, Any], name: str
    ) -> tuple[tuple[int, ...], torch.dtype]:
        """The sum of a float16 / bfloat16 param is float32 with ``state_dtype="float32"``."""
        master = group.get("state_dtype") == "float32" and p.dtype in HALF_DTYPES
        return self._state_shape(p, group), torch.float32 if master else p.dtype

    def _native_group(
        self, group: Mapping[str, Any], plan: _GroupPlan, lr: float, params: list[Any], grads: list[Any],
        states: dict[str, list[np.ndarray]],
    ) -> tuple[Any, ...]:  # fmt: skip
        return (
            params, grads, states["sum"], plan.steps, plan.labels, lr, group["lr_decay"], group["weight_decay"],
            group["eps"], group["maximize"], group["decoupled_weight_decay"], group["eps_inside_sqrt"],
            group["duplicates"], _TORCH_VECTOR_WIDTH if group["state_dtype"] is None else 0,
            *((group["seed"], plan.first) if group["stochastic_rounding"] else ()),
        )  # fmt: skip

    def _native_16bit_sparse(self, group: Mapping[str, Any]) -> bool:
        """The native 16-bit sparse step has no maximize: torch's own sparse step has."""
        return not group["maximize"]

    def _check_sparse_view(self, group: Mapping[str, Any], label: str, shape: tuple[int, int]) -> None:
        if group["rowwise"]:
            raise ValueError(
                f"{label} has rowwise=True, which takes row-sparse grads of a 2-D param (one sparse dim, "
                f"as nn.Embedding gives); its sparse grad addresses a {shape} view"
            )

    def _native_step_args(self, plans: list[_GroupPlan]) -> tuple[Any, ...]:
        scale = self._amp_grad_scale()
        clip = (self.max_grad_norm, self.norm_type, self.clip_norm_per_tensor, self.clip_value)
        clipping = clip[0] is not None or clip[2] is not None or clip[3] is not None
        if clipping and any(plan.fallback for plan in plans):
            p = next(p for plan in plans for p in plan.fallback)
            raise ValueError(
                f"a clip option is set, and a param of dtype {p.dtype} on {p.device} is updated by torch's own "
                "Adagrad, outside the native call that measures and clips; use float32/float64 CPU params, or "
                "torch.nn.utils.clip_grad_norm_ before step()"
            )
        return (None if scale is None else float(scale.item()), *clip)

    def _took_result(self, result: Any) -> None:
        if type(result) is tuple:  # a norm clip: (applied, norm)
            self.last_grad_norm = result[1]

    def _check_fallback(self, p: torch.Tensor, group: Mapping[str, Any], label: str) -> None:
        if group["stochastic_rounding"] and p.dtype in HALF_DTYPES:
            raise ValueError(
                f"{label} ({p.dtype} on {p.device}) is updated by torch's own Adagrad, which rounds to nearest: "
                "stochastic_rounding takes CPU params"
            )
        if group["state_dtype"] is not None and p.dtype in HALF_DTYPES:
            raise ValueError(
                f"{label} ({p.dtype} on {p.device}) is updated by torch's own Adagrad, which keeps the state in the "
                "param's dtype: state_dtype='float32' takes CPU params"
            )
        if group["decoupled_weight_decay"] or group["eps_inside_sqrt"] or group["rowwise"]:
            raise ValueError(
                f"{label} ({p.dtype} on {p.device}) is updated by torch's own Adagrad, which has no "
                "decoupled_weight_decay, eps_inside_sqrt or rowwise; use float32/float64 CPU params"
            )

    def _fallback_step(self, group: Mapping[str, Any], params: list[torch.Tensor]) -> None:
        """torch's single-tensor Adagrad for the params the native kernel does not take."""
        with_grad = [p for p in params if p.grad is not None]
        if not with_grad:
            return
        grads = [p.grad for p in with_grad if p.grad is not None]
        _torch_adagrad(
            with_grad,
            grads,
            [self.state[p]["sum"] for p in with_grad],
            [self.state[p]["step"] for p in with_grad],
            has_sparse_grad=any(g.is_sparse for g in grads),
            foreach=False,
            has_complex=any(torch.is_complex(p) for p in with_grad),
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            lr_decay=group["lr_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
        )


class _CompositeOptimizer(_NativeOptimizer):
    """The composite rules' shared part: options (lr, l1, l2, the initial squared-gradient sum,
    duplicates), their checks (the NumPy optimizers'), the native 11-tuple and the torch fallback
    (the rule's formula in torch ops, ``_torch_update``)."""

    RULE: ClassVar[str]  # the native rule name
    INITIAL_NAME: ClassVar[str]  # the option holding the initial value of "sum"

    def __init__(
        self, params: Any, lr: float | torch.Tensor, l1: float, l2: float, initial: float, duplicates: str
    ) -> None:
        _check_like_torch(
            lr,
            (l1, "Invalid l1 value: {}"),
            (l2, "Invalid l2 value: {}"),
            (initial, f"Invalid {self.INITIAL_NAME} value: {{}}", True),
        )
        defaults = {"lr": lr, "l1": l1, "l2": l2, self.INITIAL_NAME: initial, "duplicates": duplicates}
        super().__init__(params, defaults)

    @classmethod
    def _check_rule_group(cls, group: Mapping[str, Any], where: str) -> None:
        _check_rule_group(cls.RULE, group, where, cls.INITIAL_NAME)

    @staticmethod
    def _torch_update(
        p: torch.Tensor, g: torch.Tensor, *states: torch.Tensor, t: int, group: Mapping[str, Any]
    ) -> None:
        """The rule in torch ops on (gathered) tensors, in place; states in STATE_NAMES order."""
        raise NotImplementedError

    def _native_group(
        self, group: Mapping[str, Any], plan: _GroupPlan, lr: float, params: list[Any], grads: list[Any],
        states: dict[str, list[np.ndarray]],
    ) -> tuple[Any, ...]:  # fmt: skip
        return (
            self.RULE, params, grads, states["sum"], states.get("grad_sum"), plan.steps, plan.labels, lr,
            group["l1"], group["l2"], group["duplicates"],
        )  # fmt: skip

    def _check_fallback(self, p: torch.Tensor, group: Mapping[str, Any], label: str) -> None:
        if not p.is_floating_point():
            raise TypeError(f"{label} has dtype {p.dtype}; {type(self).__name__} takes real floating-point params")

    def _fallback_step(self, group: Mapping[str, Any], params: list[torch.Tensor]) -> None:
        """The rule's formula in torch ops (params of other dtypes or devices): the same maths, not
        the same bits (torch rounds each op on its own, and in float16/bfloat16 at that)."""
        lr = group["lr"]
        options = {**group, "lr": lr.item() if isinstance(lr, torch.Tensor) else lr}
        for p in params:
            g = p.grad
            if g is None:
                continue
            state = self.state[p]
            state["step"].add_(1)  # in place: replacing the entry would rebuild the plans
            t = int(state["step"])
            tensors = [p.detach(), *(state[name] for name in self.STATE_NAMES)]
            if not g.is_sparse:
                self._torch_update(tensors[0], g, *tensors[1:], t=t, group=options)
                continue
            for index, values in _sparse_entries(g, group["duplicates"]):
                picked = [x[index] for x in tensors]  # the addressed entries (copies)
                self._torch_update(picked[0], values, *picked[1:], t=t, group=options)
                for x, y in zip(tensors, picked):
                    x[index] = y


class ProximalAdagrad(_CompositeOptimizer):
    r"""Proximal Adagrad (composite mirror descent with l1 and l2) as a ``torch.optim.Optimizer``.

    For each param :math:`\theta` with state sum :math:`s`, element-wise, each operation rounded
    once (:class:`adagrad.ProximalAdagrad`, :func:`adagrad.proximal_update`; TensorFlow's
    ``ApplyProximalAdagrad``)::

        t     <- t + 1
        s     <- s + g * g                                  (one fma)
        eta   <- lr / sqrt(s)
        v     <- theta - eta * g                            (one fma)
        v     <- sign(v) * max(|v| - eta * l1, 0)           if l1 > 0: exact zeros
        theta <- v / (1 + eta * l2)

    It minimizes the loss plus ``l1 * |theta|_1 + (l2 / 2) * |theta|^2``: with ``l1 > 0`` a weight
    whose gradients stay small is held at exactly 0. Dense CPU float32/float64 params take the
    native kernel, bit for bit :class:`adagrad.ProximalAdagrad` over the same values; other dtypes
    and devices take the same formula in plain torch ops (correct, not the same bits: each op
    rounded on its own, no fma). Complex params are refused (TypeError).

    Args:
        params: an iterable of tensors, of (name, tensor) pairs, or of param-group dicts.
        lr: learning rate (default 1e-2; finite, >= 0); a float or a 1-element tensor, read at
            every step so that ``torch.optim.lr_scheduler`` schedulers work.
        l1: L1 regularization strength (default 0: no shrinkage).
        l2: L2 regularization strength (default 0).
        initial_accumulator_value: starting value of the state sums, > 0 (default 0.1, TensorFlow's;
            there is no eps, so the sum must never be 0).
        duplicates: for sparse grads, ``"sum"`` (default: repeated rows summed, one update, as
            torch's ``coalesce()``) or ``"sequential"`` (one update per occurrence).

    State: ``state[p] = {"step": 0-d tensor, "sum": tensor like p}``; ``step`` counts the steps in
    which p had a grad. Sparse COO grads (``nn.Embedding(sparse=True)``) update the rows they
    address only. ``state_dict()`` / ``load_state_dict()`` round-trip (and ``torch.save`` them).

    Example:
        >>> import torch, adagrad.torch
        >>> w = torch.nn.Parameter(torch.tensor([0.5, 0.001, -2.0]))
        >>> opt = adagrad.torch.ProximalAdagrad([w], lr=0.1, l1=0.5)
        >>> w.grad = torch.tensor([0.3, 0.3, -0.3])
        >>> opt.step()
        >>> w.detach()  # the middle weight lands within eta * l1 of zero: exactly 0
        tensor([ 0.3165, -0.0000, -1.8165])

    Reference: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 12 (2011), section 3 (composite mirror descent).
    """

    RULE = "proximal"
    INITIAL_NAME = "initial_accumulator_value"
    STATE_NAMES = ("sum",)

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-2,
        l1: float = 0.0,
        l2: float = 0.0,
        initial_accumulator_value: float = 0.1,
        duplicates: str = "sum",
    ) -> None:
        super().__init__(params, lr, l1, l2, initial_accumulator_value, duplicates)

    def _initial_state(self, p: torch.Tensor, group: Mapping[str, Any], label: str) -> dict[str, torch.Tensor]:
        return {"sum": torch.full_like(p, group[self.INITIAL_NAME], memory_format=torch.preserve_format)}

    @staticmethod
    def _torch_update(
        p: torch.Tensor, g: torch.Tensor, *states: torch.Tensor, t: int, group: Mapping[str, Any]
    ) -> None:
        (s,) = states
        s.addcmul_(g, g)
        eta = group["lr"] / s.sqrt()
        v = torch.addcmul(p, eta, g, value=-1)
        if group["l1"] > 0:
            v = torch.copysign((v.abs() - eta * group["l1"]).clamp_min(0), v)
        p.copy_(v / (eta * group["l2"] + 1))


class AdagradDA(_CompositeOptimizer):
    r"""Adagrad-DA (regularized dual averaging with l1 and l2) as a ``torch.optim.Optimizer``.

    Each param keeps the sum of its gradients ``a`` and of their squares ``s``; with ``t`` the
    param's step count (counting this step), element-wise (:class:`adagrad.AdagradDA`,
    :func:`adagrad.da_update`; TensorFlow's ``ApplyAdagradDA``)::

        t     <- t + 1
        a     <- a + g
        s     <- s + g * g                                          (one fma)
        theta <- -sign(a) * lr * max(|a| - l1 * t, 0) / (l2 * t * lr + sqrt(s))

    The new param is the closed-form minimizer of the averaged linear loss plus the regularizer,
    independent of the old param: with ``l1 > 0`` every weight whose average gradient ``|a| / t``
    stays at most ``l1`` is exactly 0. ``t`` counts the steps in which the param had a grad (a
    sparse grad counts). Sparse grads are TensorFlow's lazy form: a row the grad does not address
    keeps its value. Dense CPU float32/float64 params take the native kernel, bit for bit
    :class:`adagrad.AdagradDA` over the same values; other dtypes and devices take the same
    formula in plain torch ops (correct, not the same bits). Complex params are refused (TypeError).

    Args:
        params: an iterable of tensors, of (name, tensor) pairs, or of param-group dicts.
        lr: learning rate (default 1e-2; finite, >= 0); a float or a 1-element tensor.
        l1: L1 regularization strength (default 0).
        l2: L2 regularization strength (default 0).
        initial_gradient_squared_accumulator_value: starting value of ``s``, > 0 (default 0.1,
            TensorFlow's). ``a`` starts at 0.
        duplicates: ``"sum"`` (default) or ``"sequential"``, as for :class:`ProximalAdagrad`.

    State: ``state[p] = {"step": 0-d tensor, "grad_sum": tensor like p, "sum": tensor like p}``.
    ``state_dict()`` / ``load_state_dict()`` round-trip (and ``torch.save`` them).

    Example:
        >>> import torch, adagrad.torch
        >>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
        >>> opt = adagrad.torch.AdagradDA([w], lr=3.0)
        >>> w.grad = torch.tensor([0.1, 0.2], dtype=torch.float64)
        >>> opt.step()  # TensorFlow's adagrad_da_test: [-0.904534, -1.603567]
        >>> w.detach()
        tensor([-0.9045, -1.6036], dtype=torch.float64)

    Reference: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 12 (2011), section 3 (after Xiao, "Dual Averaging Methods for
    Regularized Stochastic Learning and Online Optimization", JMLR 11, 2010).
    """

    RULE = "dual_averaging"
    INITIAL_NAME = "initial_gradient_squared_accumulator_value"
    STATE_NAMES = ("grad_sum", "sum")

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-2,
        l1: float = 0.0,
        l2: float = 0.0,
        initial_gradient_squared_accumulator_value: float = 0.1,
        duplicates: str = "sum",
    ) -> None:
        super().__init__(params, lr, l1, l2, initial_gradient_squared_accumulator_value, duplicates)

    def _initial_state(self, p: torch.Tensor, group: Mapping[str, Any], label: str) -> dict[str, torch.Tensor]:
        return {
            "grad_sum": torch.zeros_like(p, memory_format=torch.preserve_format),
            "sum": torch.full_like(p, group[self.INITIAL_NAME], memory_format=torch.preserve_format),
        }

    @staticmethod
    def _torch_update(
        p: torch.Tensor, g: torch.Tensor, *states: torch.Tensor, t: int, group: Mapping[str, Any]
    ) -> None:
        a, s = states
        lr = group["lr"]
        a.add_(g)
        s.addcmul_(g, g)
        shrunk = (a.abs() - t * group["l1"]).clamp_min(0)
        p.copy_(-torch.copysign(lr * shrunk / (s.sqrt() + group["l2"] * t * lr), a))


class AdagradDecay(_NativeOptimizer):
    r"""AdagradDecay (DeepRec): Adagrad whose accumulators decay, as a ``torch.optim.Optimizer``.

    Adagrad's rate ``lr / sqrt(s)`` only falls, because ``s`` only grows; AdagradDecay multiplies
    every accumulator by ``accumulator_decay_rate`` once per ``accumulator_decay_step`` steps, never
    below ``initial_accumulator_value``, so that long runs on drifting data keep learning. With
    ``t`` the param's step count (counting this step), element-wise, each operation rounded once
    (:class:`adagrad.AdagradDecay`, :func:`adagrad.decay_update`)::

        t     <- t + 1
        s     <- max(s * rate, initial_accumulator_value)   for each decay due (t // decay_step of them)
        s     <- s + g * g                                  (one fma)
        theta <- theta - lr * g / sqrt(s)

    As in DeepRec the decay comes before ``g * g`` is added, and there is no eps. A 2-D C-contiguous
    param keeps one decay count per row (``state[p]["decay_count"]``, int64, shape ``(rows,)``;
    ``(1,)`` for other params): a row its sparse grads (``nn.Embedding(sparse=True)``) leave untouched
    takes every decay it missed when next touched, each rounded as at its own step, so the result
    is exactly the dense run's with zero grads for the untouched rows (DeepRec's sparse kernel
    catches up at most one decay per touch). Sparse grads must address rows of a 2-D param (one
    sparse dim, as ``nn.Embedding`` and ``nn.EmbeddingBag`` give); others raise ValueError.

    Dense CPU float32/float64 params take the native kernel, bit for bit :class:`adagrad.AdagradDecay`
    over the same values; other dtypes (float16, bfloat16) and devices take the same formula in
    plain torch ops, per-row catch-up included (correct, not the same bits: each op rounded on its
    own, no fma). Complex params are refused (TypeError).

    Args:
        params: an iterable of tensors, of (name, tensor) pairs, or of param-group dicts.
        lr: learning rate (default 1e-2; finite, >= 0); a float or a 1-element tensor, read at
            every step so that ``torch.optim.lr_scheduler`` schedulers work.
        accumulator_decay_step: steps between decays, an int >= 1 (default 100000, DeepRec's).
        accumulator_decay_rate: the factor of each decay, in (0, 1) (default 0.9).
        initial_accumulator_value: the accumulators' start and floor, > 0 (default 0.1).
        duplicates: for sparse grads, ``"sum"`` (default: repeated rows summed, one update, as
            torch's ``coalesce()``) or ``"sequential"`` (one update per occurrence; a row's
            catch-up happens once).

    State: ``state[p] = {"step": 0-d tensor, "sum": tensor like p, "decay_count": int64 tensor}``;
    ``step`` counts the steps in which p had a grad. ``state_dict()`` / ``load_state_dict()``
    round-trip (and ``torch.save`` / ``torch.load(weights_only=True)`` them); the counts stay int64.

    Example:
        >>> import torch, adagrad.torch
        >>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
        >>> opt = adagrad.torch.AdagradDecay([w], lr=1.0, accumulator_decay_step=3, accumulator_decay_rate=0.9)
        >>> for _ in range(4):  # DeepRec's adagrad_decay_test, testBasic: a decay at step 3
        ...     w.grad = torch.full_like(w, 0.1)
        ...     opt.step()
        >>> w.detach(), opt.state[w]["sum"], opt.state[w]["decay_count"]
        (tensor([-0.1608,  0.8392], dtype=torch.float64), tensor([0.1280, 0.1280], dtype=torch.float64), tensor([1]))

    Reference: DeepRec (Alibaba), ``AdagradDecayOptimizer`` (``training/adagrad_decay.py``);
    Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic
    Optimization", JMLR 12 (2011), for Adagrad itself.
    """

    STATE_NAMES = ("sum", "decay_count")

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-2,
        accumulator_decay_step: int = 100000,
        accumulator_decay_rate: float = 0.9,
        initial_accumulator_value: float = 0.1,
        duplicates: str = "sum",
    ) -> None:
        _check_like_torch(
            lr,
            (accumulator_decay_step, "Invalid accumulator_decay_step value: {}", True),
            (accumulator_decay_rate, "Invalid accumulator_decay_rate value: {}", True),
            (initial_accumulator_value, "Invalid initial_accumulator_value value: {}", True),
        )
        if isinstance(accumulator_decay_rate, (int, float, np.integer, np.floating)) and accumulator_decay_rate >= 1:
            raise ValueError(f"Invalid accumulator_decay_rate value: {accumulator_decay_rate}")  # torch's style
        defaults = {
            "lr": lr,
            "accumulator_decay_step": accumulator_decay_step,
            "accumulator_decay_rate": accumulator_decay_rate,
            "initial_accumulator_value": initial_accumulator_value,
            "duplicates": duplicates,
        }
        super().__init__(params, defaults)

    @classmethod
    def _check_rule_group(cls, group: Mapping[str, Any], where: str) -> None:
        _NumpyAdagradDecay._check_group(group, where)  # the NumPy optimizer's checks and texts

    @staticmethod
    def _count_rows(p: torch.Tensor) -> int:
        """How many decay counts p keeps: one per row of a 2-D C-contiguous param, else one."""
        return p.shape[0] if p.dim() == 2 and p.shape[0] > 0 and p.is_contiguous() else 1

    def _initial_state(self, p: torch.Tensor, group: Mapping[str, Any], label: str) -> dict[str, torch.Tensor]:
        return {
            "sum": torch.full_like(p, group["initial_accumulator_value"], memory_format=torch.preserve_format),
            "decay_count": torch.zeros(self._count_rows(p), dtype=torch.int64, device=p.device),
        }

    def _state_layout(
        self, p: torch.Tensor, group: Mapping[str, Any], name: str
    ) -> tuple[tuple[int, ...], torch.dtype]:
        if name == "decay_count":
            return (self._count_rows(p),), torch.int64
        return tuple(p.shape), p.dtype

    def _native_group(
        self, group: Mapping[str, Any], plan: _GroupPlan, lr: float, params: list[Any], grads: list[Any],
        states: dict[str, list[np.ndarray]],
    ) -> tuple[Any, ...]:  # fmt: skip
        return (
            "adagrad_decay", params, grads, states["sum"], states["decay_count"], plan.steps, plan.labels, lr,
            group["accumulator_decay_step"], group["accumulator_decay_rate"], group["initial_accumulator_value"],
            group["duplicates"],
        )  # fmt: skip

    def _check_sparse_view(self, group: Mapping[str, Any], label: str, shape: tuple[int, int]) -> None:
        raise ValueError(_DECAY_SPARSE_TEXT.format(label=label, view=f"addresses a {shape} view"))

    def _check_fallback(self, p: torch.Tensor, group: Mapping[str, Any], label: str) -> None:
        if not p.is_floating_point():
            raise TypeError(f"{label} has dtype {p.dtype}; {type(self).__name__} takes real floating-point params")

    def _fallback_step(self, group: Mapping[str, Any], params: list[torch.Tensor]) -> None:
        """The rule's formula in torch ops (params of other dtypes or devices), per-row catch-up
        included: the same maths, not the same bits (torch rounds each op on its own)."""
        lr = group["lr"]
        lr = lr.item() if isinstance(lr, torch.Tensor) else lr
        rate, floor = group["accumulator_decay_rate"], group["initial_accumulator_value"]
        labels = {
            id(q): label for gr, ls in zip(self.param_groups, self._labels()) for q, label in zip(gr["params"], ls)
        }
        for p in params:
            g = p.grad
            if g is None:
                continue
            state, label, count_rows = self.state[p], labels[id(p)], self._count_rows(p)
            counts = state["decay_count"] = _state_in_layout(
                state["decay_count"], "decay_count", p, (count_rows,), torch.int64, label
            )
            x, s = p.detach(), state["sum"]
            per_row = p.dim() == 2 and count_rows == p.shape[0] and p.is_contiguous()
            if g.is_sparse and (not per_row or g.sparse_dim() != 1):
                raise ValueError(_DECAY_SPARSE_TEXT.format(label=label, view=f"has {g.sparse_dim()} sparse dims"))
            state["step"].add_(1)  # in place: replacing the entry would rebuild the plans
            target = int(state["step"]) // group["accumulator_decay_step"]
            if not g.is_sparse:
                table = s if per_row else s.unsqueeze(0)  # a view: the catch-up writes s
                _catch_up(table, target - counts, rate, floor)
                counts.clamp_(min=target)
                s.addcmul_(g, g)
                x.sub_(g * lr / s.sqrt())
                continue
            if group["duplicates"] == "sum":
                g = g.coalesce()
                batches = [(g.indices()[0], g.values())]
            else:
                indices, values = g._indices()[0], g._values()
                batches = [(indices[k : k + 1], values[k : k + 1]) for k in range(values.shape[0])]
            for rows, v in batches:
                picked = s[rows]  # a copy of the addressed rows (distinct within a batch)
                _catch_up(picked, target - counts[rows], rate, floor)
                counts[rows] = counts[rows].clamp(min=target)
                picked.addcmul_(v, v)
                s[rows] = picked
                x[rows] = x[rows] - v * lr / picked.sqrt()


_DECAY_SPARSE_TEXT = (
    "{label}: AdagradDecay takes sparse grads of a 2-D C-contiguous param by rows (one sparse dim, as "
    "nn.Embedding gives), one decay count per row; its sparse grad {view}"
)


def _catch_up(table: torch.Tensor, due: torch.Tensor, rate: float, floor: float) -> None:
    """Row r of ``table`` (in place) takes ``due[r]`` decays, one rounding each:
    ``s <- max(s * rate, floor)`` (a NaN stays NaN). Stops once every row still due is at its
    fixed point (the floor), as the native kernel does."""
    if due.numel() == 0:
        return
    for k in range(int(due.max())):
        active = due > k
        rows = table[active]
        decayed = (rows * rate).clamp_min(floor)
        if bool(((decayed == rows) | (decayed.isnan() & rows.isnan())).all()):
            return  # later decays of these rows (the only ones still due) change nothing
        table[active] = decayed


def _check_like_torch(lr: Any, *checks: tuple[Any, ...]) -> None:
    """torch.optim's own checks of a constructor's arguments, with its exception types and texts,
    in its order, for the values it checks (real numbers and tensors); each check is (value, text)
    or (value, text, True) for a value that must be > 0. The rest of the validation (types,
    infinities) is ours and comes after."""
    if isinstance(lr, torch.Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    for value, text, *positive in ((lr, "Invalid learning rate: {}"), *checks):
        if isinstance(value, (int, float, np.integer, np.floating, torch.Tensor)) and (
            not value > 0.0 if positive else not value >= 0.0
        ):  # torch: not 0.0 <= value (NaN fails)
            raise ValueError(text.format(value))


def _native_order(p: torch.Tensor, dtypes: tuple[torch.dtype, ...]) -> Any:
    """None if the native kernel takes p as it is; a dim order that makes it C-contiguous (e.g.
    channels_last); False if p is not a dense CPU tensor of one of `dtypes`."""
    if p.device.type != "cpu" or p.dtype not in dtypes or p.layout != torch.strided:
        return False
    if p.is_contiguous():
        return None
    order = tuple(sorted(range(p.dim()), key=lambda d: -p.stride()[d]))
    return order if p.permute(order).is_contiguous() else False


def _state_in_layout(
    s: Any, name: str, p: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype, label: str
) -> torch.Tensor:
    """A state tensor as the native kernel needs it: of ``dtype`` (p's, for most states), p's
    device and ``shape`` (a ValueError naming the param otherwise: a tensor put in the state by hand
    is used, never converted behind the user's back), in p's memory layout if shaped like p, else
    contiguous (a copy of the same values if not)."""
    if not isinstance(s, torch.Tensor):
        raise ValueError(f"state {name} of {label} must be a tensor, got {type(s).__name__}")
    if tuple(s.shape) != shape or s.dtype != dtype or s.device != p.device:
        raise ValueError(
            f"state {name} of {label} must be a {dtype} tensor of shape {shape} on {p.device}, got a "
            f"{s.dtype} tensor of shape {tuple(s.shape)} on {s.device}"
        )
    if shape != tuple(p.shape):
        return s if s.is_contiguous() else s.contiguous()
    if s.stride() == p.stride():
        return s
    return torch.empty_like(p, memory_format=torch.preserve_format).copy_(s)  # p's layout, same values


def _step_count(step: Any, label: str) -> int:
    value = float(step)
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise ValueError(f"state step of {label} must be a whole number >= 0, got {value}")
    return int(value)


def _quoted(names: tuple[str, ...]) -> str:
    quoted = [f"'{name}'" for name in names]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _unscale_grads(params: list[torch.Tensor], scale: torch.Tensor, *, exact: bool) -> None:
    """Each grad divided by the loss scale in place: by an IEEE division in its dtype (``exact``,
    torch's fused kernel's write-back) or times the float32 reciprocal (GradScaler.unscale_'s)."""
    factor = scale if exact else scale.double().reciprocal().float()
    for p in params:
        g = p.grad
        if g is None:
            continue
        values = g._values() if g.is_sparse else g
        if exact:
            values.div_(factor.to(values.device))
        else:
            values.mul_(factor.to(values.device))


def _make_grads_contiguous(grad_lists: list[list[Any]]) -> bool:
    """Replace strided dense grads by C-ordered copies, in place in the lists; False if there was none."""
    changed = False
    for grads in grad_lists:
        for i, g in enumerate(grads):
            if isinstance(g, np.ndarray) and not g.flags.c_contiguous:
                grads[i] = np.ascontiguousarray(g)
                changed = True
    return changed


def _sparse_entries(g: torch.Tensor, duplicates: str) -> list[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
    """A sparse COO grad as (index, values) batches for the torch fallback: one batch of its
    coalesced entries (``"sum"``), or one per entry in input order (``"sequential"``)."""
    if duplicates == "sum":
        g = g.coalesce()
        return [(tuple(g.indices()), g.values())]
    indices, values = g._indices(), g._values()
    return [(tuple(indices[:, k : k + 1]), values[k : k + 1]) for k in range(values.shape[0])]
