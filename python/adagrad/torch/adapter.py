"""The one torch adapter every rule's drop-in is: a ``torch.optim.Optimizer`` over zero-copy NumPy
views of its params and states, stepping them all in one native call.

It keeps per-group plans of the views (rebuilt when a param, a state tensor or a group changes),
turns sparse COO grads into rows, hands params the kernels do not take to the rule's torch fallback
(:mod:`adagrad.torch.fallbacks`), and checks a ``state_dict`` before anything changes. A rule's
drop-in is ``class ProximalAdagrad(NativeOptimizer): RULE = PROXIMAL``: its options, checks, states
and docstring derive from the declaration (:mod:`adagrad.rules`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, cast

import numpy as np
import torch
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

from .. import _core, _docs
from .._groups import check_no_duplicates, empty_record
from .._turns import new_turn, taking_turns
from ..optim import _StepOption, check_group, check_step_options
from ..rules import STEP_OPTIONS, Rule, State
from .fallbacks import FALLBACKS, decay_count_rows
from .grads import HALF_DTYPES, SparseRows, as_array, native_grad, native_grads
from .state_table import StateTable
from .tensors import make_grads_contiguous, native_order, quoted, state_in_layout, step_count, unscale_grads

if TYPE_CHECKING:
    from .._core import Record

__all__ = ["NativeOptimizer"]


# Per group, its natively updated params with their states, and its step counts as one tensor.
_GraphTensors = list[tuple[list[tuple[torch.Tensor, tuple[torch.Tensor, ...]]], torch.Tensor]]

_STEP_OPTION_DEFAULTS = {o.name: o.default for o in STEP_OPTIONS}
# torch's own texts for a constructor's bad values (torch.optim.Adagrad's), by option name.
_TORCH_TEXTS = {"lr": "Invalid learning rate: {}", "eps": "Invalid epsilon value: {}"}


@dataclass
class _GroupPlan:
    """The arrays one param group hands the native step, built once and reused while valid."""

    source: list[Any]  # the group's params list, to notice a replaced list
    params: list[torch.Tensor] = field(default_factory=list)  # natively updated, in group order
    param_arrays: list[np.ndarray] = field(default_factory=list)
    # The state arrays per state name (the rule's states), one per natively updated param.
    states: dict[str, list[np.ndarray]] = field(default_factory=dict)
    elementwise: list[tuple[str, ...]] = field(default_factory=list)  # the states shaped like the param
    orders: list[tuple[int, ...] | None] = field(default_factory=list)  # None: already C order
    pointers: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    steps_tensor: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))  # steps' memory
    state_pointers: list[tuple[int, ...]] = field(default_factory=list)  # per param, its states' data_ptr()
    fallback: list[torch.Tensor] = field(default_factory=list)  # torch ops update these
    count: int = 0  # the group's params when the plan was built
    sparse_seen: bool = False  # a grad was sparse: skip the all-dense fast path, whose failure costs ~10 us
    record: Record = field(default_factory=lambda: empty_record())  # the native step's record, its grads set per step


def check_like_torch(rule: Rule, options: Mapping[str, Any]) -> None:
    """torch.optim's own checks of a constructor's arguments, with its exception types and texts, in
    the declaration's order (Adagrad's is torch's), for the values it checks (real numbers and
    tensors): ``not value >= 0``, or ``> 0`` (and ``< 1``) for the options that must be. The rest of
    the validation (types, infinities) is ours and comes after."""
    lr = options.get("lr")
    if isinstance(lr, torch.Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    for option in rule.options:
        value = options.get(option.name, option.default)
        if option.check not in ("non_negative", "positive", "open_unit", "positive_int") or not isinstance(
            value, (int, float, np.integer, np.floating, torch.Tensor)
        ):
            continue
        text = _TORCH_TEXTS.get(option.name, f"Invalid {option.name} value: {{}}")
        bad = not value >= 0.0 if option.check == "non_negative" else not value > 0.0  # NaN fails either
        if bad or (option.check == "open_unit" and not value < 1.0):
            raise ValueError(text.format(value))


class NativeOptimizer(torch.optim.Optimizer):
    """What every torch drop-in is, whatever its rule (see the module's docstring)."""

    RULE: ClassVar[Rule]
    STATE_NAMES: ClassVar[tuple[str, ...]]
    # torch.amp.GradScaler then hands the step its scale and its inf check (attributes grad_scale and
    # found_inf) instead of unscaling the grads itself: the division happens inside the update (as
    # torch's fused optimizers do).
    _step_supports_amp_scaling = True
    # A bag's backward in progress (adagrad.torch.EmbeddingBag, EmbeddingBagCollection): each
    # group's grads, in the native step's bag form (None: no update), instead of the params' .grad.
    _bag_grads: list[list[Any]] | None = None

    # The step options (but grad_scale, GradScaler's), attributes read at every step.
    nonfinite: _StepOption[str] = _StepOption("_step_option_values")
    max_grad_norm: _StepOption[float | None] = _StepOption("_step_option_values")
    norm_type: _StepOption[float | str] = _StepOption("_step_option_values")
    clip_norm_per_tensor: _StepOption[float | None] = _StepOption("_step_option_values")
    clip_value: _StepOption[float | None] = _StepOption("_step_option_values")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.STATE_NAMES = cls.RULE.state_names
        if cls.__doc__ is None:
            cls.__doc__ = _docs.torch_doc(cls.RULE)
        if "__init__" not in cls.__dict__:  # the derived constructor's keywords
            keywords = [
                inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default)
                for o in cls.RULE.group_options + _torch_step_options()
            ]
            params = inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD)
            cls.__signature__ = inspect.Signature([params, *keywords])  # type: ignore[attr-defined]

    def __init__(self, params: Any, **options: Any) -> None:
        rule = self.RULE
        names = {o.name for o in rule.group_options} | set(_STEP_OPTION_DEFAULTS) | {"differentiable"}
        unknown = sorted(set(options) - names - {"grad_scale"})
        if unknown or "grad_scale" in options:
            name = unknown[0] if unknown else "grad_scale"
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {name!r}")
        check_like_torch(rule, options)
        step_options = {name: options.pop(name, _STEP_OPTION_DEFAULTS[name]) for name in _torch_step_names()}
        check_step_options(step_options)
        self._step_option_values: dict[str, Any] = {**step_options, "grad_scale": None}
        self._has_fallback = False
        self.last_grad_norm: float | None = None
        self.last_step_applied: bool | None = None
        defaults = {o.name: options.get(o.name, o.default) for o in rule.group_options}
        if options.get("differentiable"):
            raise ValueError("differentiable=True is not supported: the native update does not record autograd")
        self._init_optimizer(params, defaults)

    def _init_optimizer(self, params: Any, defaults: dict[str, Any]) -> None:
        self._check_group(defaults, "")
        self._plans: list[_GroupPlan] | None = None
        self._graph_tensors: _GraphTensors | None = None
        self._graph_places: dict[int, tuple[int, int]] = {}
        self._turn = new_turn(self)  # two threads stepping this optimizer take turns (adagrad._turns)
        super().__init__(params, defaults)
        self.state = StateTable(self.state)
        for group, labels in zip(self.param_groups, self._labels()):
            for p, label in zip(group["params"], labels):
                self._init_state(self.state[p], p, group, label)

    # -- the rule's states ----------------------------------------------------------------------

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        lr = group["lr"]
        if isinstance(lr, torch.Tensor):
            if lr.numel() != 1:
                raise ValueError(f"{where}Tensor lr must be 1-element")
            lr = lr.item()
        check_group(cls.RULE, {**group, "lr": lr}, where)
        if group.get("differentiable"):
            raise ValueError(f"{where}differentiable=True is not supported: the native update does not record autograd")

    def _state_layout(
        self, p: torch.Tensor, group: Mapping[str, Any], state: State
    ) -> tuple[tuple[int, ...], torch.dtype]:
        """The shape and dtype of the param's state: decay counts int64, one per row; a float state
        p's shape (one per row with rowwise) in p's dtype, or float32 for a 16-bit p with
        state_dtype="float32"."""
        if state.kind == "decay_count":
            return (decay_count_rows(p),), torch.int64
        master = group.get("state_dtype") == "float32" and p.dtype in HALF_DTYPES
        shape = (p.shape[0],) if group.get("rowwise") and p.dim() == 2 else tuple(p.shape)
        return shape, torch.float32 if master else p.dtype

    def _initial_state(self, p: torch.Tensor, group: Mapping[str, Any], label: str) -> dict[str, torch.Tensor]:
        if group.get("rowwise") and p.dim() != 2:
            raise ValueError(f"rowwise=True needs 2-D params (rows, dim); {label} has shape {tuple(p.shape)}")
        out = {}
        for state in self.RULE.states:
            shape, dtype = self._state_layout(p, group, state)
            if state.kind == "decay_count":
                out[state.name] = torch.zeros(shape, dtype=dtype, device=p.device)
                continue
            initial = group[state.initial] if isinstance(state.initial, str) else state.initial
            if torch.is_complex(p):
                initial = complex(initial, initial)
            if shape != tuple(p.shape):
                out[state.name] = torch.full(shape, initial, dtype=dtype, device=p.device)
            else:
                out[state.name] = torch.full_like(p, initial, dtype=dtype, memory_format=torch.preserve_format)
        return out

    def _init_state(self, state: dict[str, Any], p: torch.Tensor, group: Mapping[str, Any], label: str) -> None:
        """The rule's initial state, with step 0 as torch keeps it (a 0-d float32 tensor)."""
        if state:
            return
        initial = self._initial_state(p, group, label)
        state["step"] = torch.zeros((), dtype=torch.float32)
        state.update(initial)

    def _labels(self) -> list[list[str]]:
        """How messages name each param of each group: its name, or its place among all params."""
        labels, index = [], 0
        for group in self.param_groups:
            names = group.get("param_names")
            count = len(group["params"])
            labels.append([repr(names[i]) if names else f"params[{index + i}]" for i in range(count)])
            index += count
        return labels

    @taking_turns
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        params = param_group.get("params") if isinstance(param_group, dict) else None
        if params is not None and not isinstance(params, (torch.Tensor, set)):  # torch refuses a set
            param_group["params"] = params = list(params)  # as torch does, before it warns of duplicates
            _check_no_duplicates(params, sum(len(group["params"]) for group in self.param_groups))
        super().add_param_group(param_group)
        try:
            self._check_group(self.param_groups[-1], f"param group {len(self.param_groups) - 1}: ")
        except BaseException:
            self.param_groups.pop()  # refused: the optimizer stays as it was
            raise
        self._plans = None
        self._graph_tensors = None  # fails a compiled step's guard: the next call traces the new group

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {**state, "_step_option_values": dict(self._step_option_values)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.state = StateTable(self.state)
        for group in self.param_groups:  # a group saved without some option gets the default
            for name, value in self.defaults.items():
                group.setdefault(name, value)
        values = self.__dict__.setdefault("_step_option_values", {"grad_scale": None})
        for name in _torch_step_names():  # pickled before the step options existed
            values.setdefault(name, self.__dict__.pop(name, _STEP_OPTION_DEFAULTS[name]))
        self.__dict__.setdefault("_has_fallback", False)
        self.__dict__.setdefault("last_grad_norm", None)
        self.__dict__.setdefault("last_step_applied", None)
        self._plans = None
        self._graph_tensors = None
        self.__dict__.setdefault("_turn", new_turn(self))  # torch's load_state_dict calls this too: keep a held one

    @taking_turns
    def state_dict(self) -> dict[str, Any]:
        """torch's ``state_dict``, its entries plain dicts (``torch.load(weights_only=True)`` takes
        nothing else)."""
        saved = super().state_dict()
        saved["state"] = {key: dict(entry) for key, entry in saved["state"].items()}
        return saved

    @taking_turns
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state of this optimizer (or, for Adagrad, of ``torch.optim.Adagrad``); checked
        before anything changes."""
        self._check_loaded_state(state_dict)
        super().load_state_dict(state_dict)
        self._restore_exact_states(state_dict)
        self._current_plans()  # adopt the loaded tensors now, so that problems surface here

    # -- the step -------------------------------------------------------------------------------

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every param with a grad; returns ``closure()``'s loss if given."""
        if torch.compiler.is_compiling():
            return self._step_in_graph(closure)
        self._opt_called = True  # what an LR scheduler's wrapper of step() would record (see below)
        return self._eager_step(closure)

    # An LR scheduler wraps an optimizer's step() unless it carries this mark; its wrapper (which
    # only sets _opt_called) lives in a file torch's compiler skips, a graph break before our step.
    step._wrapped_by_lr_sched = True  # type: ignore[attr-defined]

    def _step_in_graph(self, closure: Callable[[], Any] | None) -> Any:
        """What ``torch.compile`` traces: the closure, then one ``adagrad::step`` operator over the
        natively updated params that have a grad (see :mod:`adagrad.torch.graph_op`). The plans are
        built, and what a compiled step cannot do is refused, in Python at trace time
        (``_prepare_graph_step``); the grads are read here, in the trace, since a traced backward
        assigns them only when the graph ends."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        handle = _prepare_graph_step(self)
        params: list[torch.Tensor] = []
        grads: list[torch.Tensor] = []
        states: list[torch.Tensor] = []
        steps: list[torch.Tensor] = []
        for members, group_steps in self._graph_tensors or ():
            for p, p_states in members:
                g = p.grad  # a sparse grad: torch.compile refuses it itself (fullgraph), or breaks here
                if g is None:
                    continue
                params.append(p)
                grads.append(g)
                states.extend(p_states)
            steps.append(group_steps)
        with torch.no_grad():  # an in-place update of leaves that require grad, as in eager steps
            torch.ops.adagrad.step.default(handle, params, grads, states, steps)  # registered by _prepare_graph_step
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """torch's ``zero_grad``; under ``torch.compile`` traced (torch's own is a graph break) over
        the natively updated params, all the params a compiled step takes."""
        if not torch.compiler.is_compiling():
            super().zero_grad(set_to_none)
            return
        _prepare_graph_step(self)
        for members, _steps in self._graph_tensors or ():
            for p, _states in members:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                    continue
                if g.grad_fn is not None:
                    g.detach_()
                else:
                    g.requires_grad_(False)
                g.zero_()

    @taking_turns
    def _step_from_graph(
        self,
        params: list[torch.Tensor],
        grads: list[torch.Tensor],
        states: list[torch.Tensor],
        steps: list[torch.Tensor],
    ) -> None:
        """The kernel of the ``adagrad::step`` operator: the eager step, its grads the ones the graph
        hands (its own backward's, which it assigns to ``p.grad`` only after the step); ``steps``
        holds each group's step counts. The states and step counts handed must be the memory the
        plans view, unless the plans were rebuilt in this call (a state tensor replaced since the
        trace: the eager step uses the new one, and the tensors' guards retrace the next call): a
        graph handing copies would write them back over the update, an error, not a silent loss."""
        before = self._plans
        plans = self._current_plans()
        graph_grads: list[list[Any]] = [[None] * len(plan.params) for plan in plans]
        n = len(self.STATE_NAMES)
        handed = len(steps) == len(plans) and len(states) == len(params) * n
        handed = handed and all(s.data_ptr() == plan.steps_tensor.data_ptr() for s, plan in zip(steps, plans))
        for k, (p, g) in enumerate(zip(params, grads)):
            gi, i = self._graph_places.get(p.data_ptr(), (-1, -1))
            if gi < 0:
                raise RuntimeError(
                    f"adagrad::step was handed a param {type(self).__name__} does not update (a copy?): its update "
                    "would be lost"
                )
            plan = plans[gi]
            handed = handed and tuple(s.data_ptr() for s in states[k * n : k * n + n]) == plan.state_pointers[i]
            graph_grads[gi][i] = native_grad(g.detach(), plan.orders[i], plan.labels[i])
        if plans is before and not handed:
            raise RuntimeError(
                f"adagrad::step was handed states or step counts of {type(self).__name__} that are not the memory it "
                "updates (copies?): its update would be lost"
            )
        grad_enabled = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)
        try:
            self._step(graph_grads)
        finally:
            torch._C._set_grad_enabled(grad_enabled)

    def _eager_step(self, closure: Callable[[], Any] | None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # No autograd record of the torch ops below (the fallbacks, the grads' write-back); the
        # switch itself, not torch.no_grad()'s context manager: ~1 us a step.
        grad_enabled = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)
        try:
            self._step()
        finally:
            torch._C._set_grad_enabled(grad_enabled)
        return loss

    @taking_turns
    def _step(self, graph_grads: list[list[Any]] | None = None) -> None:
        """The update; ``graph_grads``: each group's grads as a compiled graph hands them (NumPy
        views, None for a param without one) instead of the params' ``grad``."""
        if self._amp_found_inf():
            return  # torch.amp.GradScaler saw an inf or a NaN: no update, no step counted (as fused)
        plans = self._current_plans()
        records: list[Record] = []
        grad_lists: list[list[Any]] = []
        stepped: list[torch.Tensor] = []
        for gi, (group, plan) in enumerate(zip(self.param_groups, plans)):
            if graph_grads is not None:
                grads = graph_grads[gi]
            elif self._bag_grads is not None:
                grads = self._bag_grads[gi]
            else:
                grads = native_grads(
                    plan.params, plan.orders, plan.labels, not plan.sparse_seen and not any(plan.orders)
                )
            record = plan.record
            if any(isinstance(g, SparseRows) for g in grads):
                plan.sparse_seen = True
                grads, params, states = self._as_rows(group, plan, grads)
                record = record.copy()
                record["params"], record["states"] = params, states
            record["grads"] = grads
            records.append(record)
            grad_lists.append(grads)
            stepped += [p for p, g in zip(plan.params, grads) if g is not None]
        step_options = self._step_options()
        try:
            result = _core.step(records, step_options)
        except ValueError:
            # A strided dense grad (rare: autograd gives grads the param's layout). Checking every
            # grad's layout up front would cost ~0.4 us per tensor per step; the native call
            # validates everything before it writes, so copying the odd ones and retrying is safe.
            if not make_grads_contiguous(grad_lists):
                raise
            result = _core.step(records, step_options)
        finally:
            # The grads' views go with the step: kept, they would keep last step's grads alive
            # through the next backward, which would then write fresh memory.
            for plan in plans:
                plan.record["grads"] = None
        if type(result) is tuple:  # a norm clip: (applied, norm)
            result, self.last_grad_norm = result
        self.last_step_applied = result is True
        if not self.last_step_applied:
            return  # nonfinite="skip": nothing written
        scale = self._amp_grad_scale()
        if scale is not None:
            unscale_grads(stepped, scale, exact=True)  # torch's fused kernel writes the unscaled grads back
        if stepped:
            torch.autograd.graph.increment_version(stepped)  # as an in-place torch op would
        labels = None
        for group, plan in zip(self.param_groups, plans):
            if not plan.fallback:
                continue
            if scale is not None:
                unscale_grads(plan.fallback, scale, exact=False)  # as GradScaler.unscale_ would have
            if labels is None:
                labels = {
                    id(q): label
                    for gr, ls in zip(self.param_groups, self._labels())
                    for q, label in zip(gr["params"], ls)
                }
            FALLBACKS[self.RULE.name][1](self.state, group, plan.fallback, labels)

    @taking_turns
    def _bag_step(
        self,
        grads: list[list[Any]],
        grad_scale: torch.Tensor | None = None,
        found_inf: torch.Tensor | None = None,
    ) -> None:
        """The fused update of a bag's backward (adagrad.torch.EmbeddingBag, EmbeddingBagCollection):
        each group's grads in the native step's bag form, one native call for all. ``grad_scale``
        and ``found_inf``: torch.amp.GradScaler's scale and verdict, handed over as GradScaler.step
        hands them to an optimizer that takes the loss scale itself."""
        self._bag_grads = grads
        if grad_scale is not None:  # the attributes GradScaler.step sets
            self.__dict__.update(grad_scale=grad_scale, found_inf=found_inf)
        try:
            if self._bare_step():
                self._opt_called = True  # as step() records it: LR schedulers read it
                self._eager_step(None)
            else:
                self.step()  # through the wrappers LR schedulers, hooks and the profiler put on it
        finally:
            self._bag_grads = None
            if grad_scale is not None:
                del self.__dict__["grad_scale"], self.__dict__["found_inf"]

    def _bare_step(self) -> bool:
        """Whether ``step()`` would only run the update: no step hooks, no profiler, no wrapper but
        the ones torch puts on every optimizer (the profiler's) and LR schedulers (``_opt_called``),
        not compiling. torch's wrappers cost ~15 us a step, a tenth of a small bag's backward."""
        if (
            _global_optimizer_pre_hooks
            or _global_optimizer_post_hooks
            or self._optimizer_step_pre_hooks
            or self._optimizer_step_post_hooks
            or torch._C._autograd._profiler_enabled()
            or torch.compiler.is_compiling()
        ):
            return False
        bound = self.__dict__.get("step")
        if bound is not None and not (
            getattr(bound, "_wrapped_by_lr_sched", False) and getattr(bound, "__wrapped__", None) is type(self).step
        ):
            return False
        return getattr(type(self).step, "__wrapped__", type(self).step) is NativeOptimizer.step

    def _step_options(self) -> dict[str, Any]:
        """The native step's options (the step options' own dict), with the loss scale GradScaler
        hands over. The clip and the nonfinite policy act inside the native call: refused beside
        params torch ops update."""
        options = self._step_option_values
        if self._has_fallback and (
            options["nonfinite"] != "propagate"
            or any(options[name] is not None for name in ("max_grad_norm", "clip_norm_per_tensor", "clip_value"))
        ):
            clipped = options["nonfinite"] == "propagate"
            p = next(p for plan in self._plans or [] for p in plan.fallback)
            what = "a clip option is set" if clipped else f"nonfinite={options['nonfinite']!r}"
            raise ValueError(
                f"{what}, and a param of dtype {p.dtype} on {p.device} is updated by torch ops, outside the native "
                "call that checks and clips; use CPU params, or torch.nn.utils.clip_grad_norm_ before step()"
            )
        scale = self._amp_grad_scale()
        options["grad_scale"] = None if scale is None else float(scale.item())
        options["openmp_team"] = True  # torch's team, where share_torch_threads() made it available
        return options

    def _amp_found_inf(self) -> bool:
        """torch.amp.GradScaler's verdict, set as an attribute when the optimizer says it handles
        the loss scale itself (``_step_supports_amp_scaling``, as torch's fused optimizers do)."""
        found_inf = getattr(self, "found_inf", None)
        return found_inf is not None and bool(found_inf.item())

    def _amp_grad_scale(self) -> torch.Tensor | None:
        """GradScaler's scale (a float32 0-d tensor) the grads still carry, or None."""
        return getattr(self, "grad_scale", None)

    def _native_record(self, group: dict[str, Any], plan: _GroupPlan, first: int) -> Record:
        """The group's record for the native step (cpp/bindings/register_step.cpp), but its grads."""
        return {
            "rule": self.RULE.name,
            "options": group,
            "params": plan.param_arrays,
            "grads": None,
            "states": plan.states,
            "steps": plan.steps,
            "labels": plan.labels,
            "first_stream": first,
        }

    def _check_sparse_view(self, group: Mapping[str, Any], label: str, shape: tuple[int, int]) -> None:
        """Raise if a sparse grad addressing the param as a ``shape`` table is refused: row-wise state
        and decay counts are per row of the param itself."""
        if group.get("rowwise"):
            raise ValueError(
                f"{label} has rowwise=True, which takes row-sparse grads of a 2-D param (one sparse dim, "
                f"as nn.Embedding gives); its sparse grad addresses a {shape} view"
            )
        if any(s.kind == "decay_count" for s in self.RULE.states):
            raise ValueError(
                f"{label}: AdagradDecay takes sparse grads of a 2-D C-contiguous param by rows (one sparse dim, as "
                f"nn.Embedding gives), one decay count per row; its sparse grad addresses a {shape} view"
            )

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

    # -- plans ----------------------------------------------------------------------------------

    def _current_plans(self) -> list[_GroupPlan]:
        """The plans, rebuilt when a group's params list, a param's memory (``p.data = ...``) or a
        state entry or tensor (the state table's flag) changed."""
        plans = self._plans
        if plans is None or cast(StateTable, self.state).replaced or len(plans) != len(self.param_groups):
            plans = self._plans = self._build_plans()
            return plans
        for plan, group in zip(plans, self.param_groups):
            if plan.source is not group["params"] or len(plan.source) != plan.count:
                plans = self._plans = self._build_plans()
                return plans
            for p, pointer in zip(plan.params, plan.pointers):
                if p.data_ptr() != pointer:
                    plans = self._plans = self._build_plans()
                    return plans
        return plans

    def _build_plans(self) -> list[_GroupPlan]:
        plans = []
        native_before = 0
        for gi, (group, labels) in enumerate(zip(self.param_groups, self._labels())):
            self._check_group(group, f"param group {gi}: ")
            plan = _GroupPlan(source=group["params"], states={name: [] for name in self.STATE_NAMES})
            counts = []
            for p, label in zip(group["params"], labels):
                state = self.state[p]
                self._init_state(state, p, group, label)
                order = native_order(p)
                if order is False:
                    if self.RULE.name not in FALLBACKS:
                        raise TypeError(f"{label} ({p.dtype} on {p.device}): {type(self).__name__} takes CPU params")
                    FALLBACKS[self.RULE.name][0](p, group, label)
                    for s in self.RULE.states:
                        if s.kind == "decay_count":  # the fallback's per-row catch-up reads them
                            shape, dtype = self._state_layout(p, group, s)
                            state[s.name] = state_in_layout(state[s.name], s.name, p, shape, dtype, label)
                    plan.fallback.append(p)
                    continue
                if any(name not in state for name in (*self.STATE_NAMES, "step")):
                    raise ValueError(
                        f"the state of {label} must hold {quoted((*self.STATE_NAMES, 'step'))}, has {sorted(state)}"
                    )
                elementwise = []
                for s in self.RULE.states:
                    shape, dtype = self._state_layout(p, group, s)
                    state[s.name] = state_in_layout(state[s.name], s.name, p, shape, dtype, label)
                    like_p = shape == tuple(p.shape)
                    plan.states[s.name].append(as_array(state[s.name], order if like_p else None))
                    if like_p:
                        elementwise.append(s.name)
                counts.append(step_count(state["step"], label))
                plan.params.append(p)
                plan.elementwise.append(tuple(elementwise))
                plan.orders.append(order)
                plan.param_arrays.append(as_array(p.detach(), order))
                plan.pointers.append(p.data_ptr())
                plan.labels.append(label)
            plan.steps = np.array(counts, dtype=np.int64)
            plan.steps_tensor = torch.from_numpy(plan.steps)
            for i, p in enumerate(plan.params):
                self.state[p]["step"] = plan.steps_tensor[i]  # a 0-d view the native step increments
            plan.count = len(group["params"])
            plan.record = self._native_record(group, plan, native_before)
            native_before += len(plan.params)
            plans.append(plan)
        _core.check_params([a for plan in plans for a in plan.param_arrays], [n for plan in plans for n in plan.labels])
        self._has_fallback = any(plan.fallback for plan in plans)
        # What a traced step reads: each group's params with their states, and the group's step
        # counts as one tensor (its params' "step" entries are views of it: handed to a compiled
        # graph, those aliasing views would make it step copies).
        self._graph_tensors = [
            ([(p, tuple(self.state[p][name] for name in self.STATE_NAMES)) for p in plan.params], plan.steps_tensor)
            for plan in plans
        ]
        # Where a compiled graph's tensors are in the plans, by data_ptr() (see _step_from_graph).
        self._graph_places = {p.data_ptr(): (gi, i) for gi, plan in enumerate(plans) for i, p in enumerate(plan.params)}
        for (members, _steps), plan in zip(self._graph_tensors, plans):
            plan.state_pointers = [tuple(s.data_ptr() for s in p_states) for _p, p_states in members]
        cast(StateTable, self.state).replaced = False  # after the entries this build created
        return plans

    # -- state_dict -----------------------------------------------------------------------------

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
                    raise ValueError(f"state_dict state {key!r} has no {quoted((*self.STATE_NAMES, 'step'))}")
                extra = sorted(set(entry) - {*self.STATE_NAMES, "step"})
                if extra:  # another rule's state: loading it would keep tensors this rule ignores
                    raise ValueError(
                        f"state_dict state {key!r} holds {extra}, which {type(self).__name__} does not keep (a state "
                        "of another optimizer?)"
                    )
                for s in self.RULE.states:
                    shape, dtype = self._state_layout(p, options, s)
                    saved_shape = tuple(entry[s.name].shape)
                    if saved_shape != shape:
                        raise ValueError(
                            f"state_dict {s.name} {key!r} has shape {saved_shape}, its param needs {shape}"
                        )
                    saved_dtype = getattr(entry[s.name], "dtype", None)
                    if dtype != p.dtype and saved_dtype != dtype:
                        raise ValueError(f"state_dict {s.name} {key!r} must be a {dtype} tensor, got {saved_dtype}")
                step_count(entry["step"], f"state_dict state {key!r}")

    def _restore_exact_states(self, state_dict: dict[str, Any]) -> None:
        """The loaded states of a dtype other than their param's (checked by ``_check_loaded_state``)
        taken as saved: torch's ``load_state_dict`` casts every state tensor but "step" to the
        param's floating dtype, which would round large counts in float16."""
        for saved, group in zip(state_dict["param_groups"], self.param_groups):
            for key, p in zip(saved["params"], group["params"]):
                entry = state_dict["state"].get(key)
                if entry is None:
                    continue
                for s in self.RULE.states:
                    _shape, dtype = self._state_layout(p, group, s)
                    if dtype != p.dtype:
                        self.state[p][s.name] = entry[s.name].to(device=p.device, dtype=dtype, copy=True)


def _check_no_duplicates(params: list[Any], first_index: int) -> None:
    """ValueError if a group holds one tensor twice (torch only warns, then updates it twice)."""
    named = [isinstance(item, tuple) and len(item) == 2 for item in params]
    labels = [repr(item[0]) if n else f"params[{first_index + i}]" for i, (item, n) in enumerate(zip(params, named))]
    check_no_duplicates((item[1] if n else item for item, n in zip(params, named)), labels, "tensor")


def _prepare_graph_step(opt: NativeOptimizer) -> int:
    """Run by torch's compiler in Python at trace time, its result taken as a constant (the mark
    ``torch.compiler.assume_constant_result`` sets, set here without importing the compiler): the
    optimizer's plans and ``_graph_tensors`` for the trace to read, and its graph handle. Refuses
    what the compiled step cannot do, before any graph exists. Registers the operator (importing
    graph_op) at the first trace, not with ``import adagrad.torch`` (5-13 ms)."""
    from . import graph_op

    if opt._amp_grad_scale() is not None or getattr(opt, "found_inf", None) is not None:
        raise RuntimeError(
            f"{type(opt).__name__}.step under torch.compile does not take torch.amp.GradScaler's scale: step "
            "this optimizer eagerly"
        )
    plans = opt._current_plans()
    # An LR scheduler's check that step() came first (a traced attribute store is dropped: here,
    # once, at trace time, when the compiled step is about to exist).
    opt._opt_called = True
    if opt._has_fallback:
        p = next(p for plan in plans for p in plan.fallback)
        raise RuntimeError(
            f"{type(opt).__name__}.step under torch.compile takes dense CPU params of a native dtype; a param of "
            f"dtype {p.dtype} on {p.device} is updated by torch ops: step this optimizer eagerly"
        )
    if torch.compiler.is_compiling():
        # Traced as a frame of its own, where the compiler gave up on the step's (a sparse grad,
        # without fullgraph): the step runs eagerly, and mark_static_address may not be traced.
        return graph_op.graph_handle(opt)
    # Guards on these tensors' identity (as torch's compiled optimizers have on their states): a
    # state tensor replaced after the trace retraces the step, whose graph would hand the old one.
    mark_static = torch._dynamo.mark_static_address  # imported by torch.compile, which runs this
    for members, group_steps in opt._graph_tensors or []:
        for _p, p_states in members:
            for state in p_states:
                mark_static(state, guard=True)
        mark_static(group_steps, guard=True)
    return graph_op.graph_handle(opt)


_prepare_graph_step._dynamo_marked_constant = True  # type: ignore[attr-defined]


def _torch_step_names() -> tuple[str, ...]:
    """The step options a torch drop-in takes: all but grad_scale (GradScaler hands it over)."""
    return tuple(o.name for o in _torch_step_options())


def _torch_step_options() -> tuple[Any, ...]:
    return tuple(o for o in STEP_OPTIONS if o.name != "grad_scale")
