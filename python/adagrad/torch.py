r"""A drop-in ``torch.optim.Adagrad`` that runs the native kernel: ``adagrad.torch.Adagrad``.

Switch with one line::

    optimizer = adagrad.torch.Adagrad(model.parameters(), lr=0.01)   # was torch.optim.Adagrad(...)

Dense CPU float32/float64 params are updated in place, zero-copy, by one native call per step
for all of them, bit for bit ``torch.optim.Adagrad(fused=True)``. Sparse COO grads (``nn.Embedding``
and ``nn.EmbeddingBag`` with ``sparse=True``, and any other layout) go through the sparse kernel in
the same call. Importing this module runs adagrad's parallel steps on torch's OpenMP thread team
(:func:`share_torch_threads`).
Params on other devices or of other dtypes (float16, bfloat16, complex) are updated by torch's
own single-tensor Adagrad, correct but not accelerated. Importing ``adagrad`` never needs torch;
this module does (``pip install 'adagrad[torch]'``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar, cast

import numpy as np
import torch
from torch.optim.adagrad import adagrad as _torch_adagrad

from . import _core
from ._torch_grads import NATIVE_DTYPES as _NATIVE_DTYPES
from ._torch_grads import SparseRows, as_array, native_grads
from .optimizer import check_group_options

__all__ = ["Adagrad", "share_torch_threads"]

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
    sum_arrays: list[np.ndarray] = field(default_factory=list)
    orders: list[tuple[int, ...] | None] = field(default_factory=list)  # None: already C order
    pointers: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    fallback: list[torch.Tensor] = field(default_factory=list)  # torch's own Adagrad updates these
    # The state entries, and the tensors in them, that the arrays above were made from: a step
    # compares them by identity, so that a tensor the user put in the state is honoured.
    entries: list[dict[str, Any]] = field(default_factory=list)
    entry_sums: list[torch.Tensor] = field(default_factory=list)
    entry_steps: list[torch.Tensor] = field(default_factory=list)
    sparse_seen: bool = False  # a grad was sparse: skip the all-dense fast path, whose failure costs ~10 us


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


_CLIP_DEFAULTS = {"max_grad_norm": None, "norm_type": 2.0, "clip_norm_per_tensor": None, "clip_value": None}


class Adagrad(torch.optim.Optimizer):
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
        max_grad_norm: float | None = None,
        norm_type: float | str = 2.0,
        clip_norm_per_tensor: float | None = None,
        clip_value: float | None = None,
    ) -> None:
        _check_like_torch(lr, lr_decay, weight_decay, initial_accumulator_value, eps)
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
        }
        _check_group(defaults, "")
        self._plans: list[_GroupPlan] | None = None
        super().__init__(params, defaults)
        self.state = _StateTable(dict, self.state)
        for group, labels in zip(self.param_groups, self._labels()):
            for p, label in zip(group["params"], labels):
                _init_state(self.state[p], p, group, label)

    def _labels(self) -> list[list[str]]:
        """How messages name each param of each group: its name, or its place among all params."""
        labels, index = [], 0
        for group in self.param_groups:
            names = group.get("param_names")
            count = len(group["params"])
            labels.append([repr(names[i]) if names else f"params[{index + i}]" for i in range(count)])
            index += count
        return labels

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        _check_group(self.param_groups[-1], f"param group {len(self.param_groups) - 1}: ")
        self._plans = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        return {**state, **{name: getattr(self, name) for name in _CLIP_DEFAULTS}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.state = _StateTable(dict, self.state)
        self.__dict__.setdefault("_fused_by_default", True)
        for name, value in {**_CLIP_DEFAULTS, "last_grad_norm": None}.items():  # pickled before clipping
            self.__dict__.setdefault(name, value)
        for group in self.param_groups:  # a group saved without some option gets the default
            for name, value in self.defaults.items():
                group.setdefault(name, value)
        self._plans = None

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

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state of this optimizer or of ``torch.optim.Adagrad``; checked before anything changes."""
        _check_loaded_state(state_dict, self.param_groups, self.defaults)
        super().load_state_dict(state_dict)
        self._current_plans()  # adopt the loaded tensors now, so that problems surface here

    @_not_traced  # one native call: nothing for dynamo to trace (as torch's fused step)
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adagrad update of every param with a grad; returns ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        plans = self._current_plans()
        batches, stepped = [], []
        for group, plan in zip(self.param_groups, plans):
            grads = native_grads(plan.params, plan.orders, plan.labels, not plan.sparse_seen and not any(plan.orders))
            params, sums = plan.param_arrays, plan.sum_arrays
            if any(isinstance(g, SparseRows) for g in grads):
                plan.sparse_seen = True
                grads, params, sums = _as_rows(grads, params, sums, plan.labels, group["rowwise"])
            stepped += [p for p, g in zip(plan.params, grads) if g is not None]
            lr = group["lr"]
            batches.append(
                (params, grads, sums, plan.steps, plan.labels,
                 lr.item() if isinstance(lr, torch.Tensor) else lr, group["lr_decay"], group["weight_decay"],
                 group["eps"], group["maximize"], group["decoupled_weight_decay"], group["eps_inside_sqrt"],
                 group["duplicates"])
            )  # fmt: skip
        clip = (self.max_grad_norm, self.norm_type, self.clip_norm_per_tensor, self.clip_value)
        clipping = clip[0] is not None or clip[2] is not None or clip[3] is not None
        if clipping and any(plan.fallback for plan in plans):
            p = next(p for plan in plans for p in plan.fallback)
            raise ValueError(
                f"a clip option is set, and a param of dtype {p.dtype} on {p.device} is updated by torch's own "
                "Adagrad, outside the native call that measures and clips; use float32/float64 CPU params, or "
                "torch.nn.utils.clip_grad_norm_ before step()"
            )
        try:
            result = _core.step(batches, "propagate", None, *clip)
        except ValueError:
            # A strided dense grad (rare: autograd gives grads the param's layout). Checking every
            # grad's layout up front would cost ~0.4 us per tensor per step; the native call
            # validates everything before it writes, so copying the odd ones and retrying is safe.
            if not _make_grads_contiguous(batches):
                raise
            result = _core.step(batches, "propagate", None, *clip)
        if type(result) is tuple:  # a norm clip: (applied, norm)
            self.last_grad_norm = result[1]
        if stepped:
            torch.autograd.graph.increment_version(stepped)  # as an in-place torch op would
        for group, plan in zip(self.param_groups, plans):
            if plan.fallback:
                self._step_with_torch(group, plan.fallback)
        return loss

    def _step_with_torch(self, group: dict[str, Any], params: list[torch.Tensor]) -> None:
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

    def _current_plans(self) -> list[_GroupPlan]:
        plans = self._plans
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
            e["sum"] is s and e["step"] is t
            for plan in plans
            for e, s, t in zip(plan.entries, plan.entry_sums, plan.entry_steps)
        ):
            plans = self._plans = self._build_plans()  # a state tensor or entry was replaced: honour it
        return plans

    def _build_plans(self) -> list[_GroupPlan]:
        plans = []
        for gi, (group, labels) in enumerate(zip(self.param_groups, self._labels())):
            _check_group(group, f"param group {gi}: ")
            plan = _GroupPlan(source=group["params"])
            counts = []
            for p, label in zip(group["params"], labels):
                state = self.state[p]
                _init_state(state, p, group, label)
                order = _native_order(p)
                if order is False:
                    if group["decoupled_weight_decay"] or group["eps_inside_sqrt"] or group["rowwise"]:
                        raise ValueError(
                            f"{label} ({p.dtype} on {p.device}) is updated by torch's own Adagrad, which has no "
                            "decoupled_weight_decay, eps_inside_sqrt or rowwise; use float32/float64 CPU params"
                        )
                    plan.fallback.append(p)
                    continue
                if "sum" not in state or "step" not in state:
                    raise ValueError(f"the state of {label} must hold 'sum' and 'step', has {sorted(state)}")
                state["sum"] = _sum_in_layout(state["sum"], p, group, label)
                counts.append(_step_count(state["step"], label))
                plan.params.append(p)
                plan.orders.append(order)
                plan.param_arrays.append(as_array(p.detach(), order))
                plan.sum_arrays.append(as_array(state["sum"], None if group["rowwise"] else order))
                plan.pointers.append(p.data_ptr())
                plan.labels.append(label)
            plan.steps = np.array(counts, dtype=np.int64)
            shared_steps = torch.from_numpy(plan.steps)
            for i, p in enumerate(plan.params):
                entry = self.state[p]
                entry["step"] = shared_steps[i]  # a 0-d view the native step increments
                plan.entries.append(entry)
                plan.entry_sums.append(entry["sum"])
                plan.entry_steps.append(entry["step"])
            plans.append(plan)
        _core.check_params([a for plan in plans for a in plan.param_arrays], [n for plan in plans for n in plan.labels])
        cast(_StateTable, self.state).replaced = False  # after the entries this build created
        return plans


def _check_like_torch(lr: Any, lr_decay: Any, weight_decay: Any, initial_accumulator_value: Any, eps: Any) -> None:
    """torch.optim.Adagrad's own checks of its constructor's arguments, with its exception types
    and texts, in its order, for the values it checks (real numbers and tensors); the rest of the
    validation (types, infinities) is ours and comes after."""
    if isinstance(lr, torch.Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    for value, text in (
        (lr, "Invalid learning rate: {}"),
        (lr_decay, "Invalid lr_decay value: {}"),
        (weight_decay, "Invalid weight_decay value: {}"),
        (initial_accumulator_value, "Invalid initial_accumulator_value value: {}"),
        (eps, "Invalid epsilon value: {}"),
    ):
        if (
            isinstance(value, (int, float, np.integer, np.floating, torch.Tensor)) and not value >= 0.0
        ):  # torch: not 0.0 <= value (NaN fails)
            raise ValueError(text.format(value))


def _check_group(group: dict[str, Any], where: str) -> None:
    lr = group["lr"]
    if isinstance(lr, torch.Tensor):
        if lr.numel() != 1:
            raise ValueError(f"{where}Tensor lr must be 1-element")
        lr = lr.item()
    check_group_options({**group, "lr": lr}, where)
    if group.get("differentiable"):
        raise ValueError(f"{where}differentiable=True is not supported: the native update does not record autograd")


def _init_state(state: dict[str, Any], p: torch.Tensor, group: dict[str, Any], label: str) -> None:
    """torch's initial state: step 0 and sums full of initial_accumulator_value (per row if rowwise)."""
    if state:
        return
    if group["rowwise"] and p.dim() != 2:
        raise ValueError(f"rowwise=True needs 2-D params (rows, dim); {label} has shape {tuple(p.shape)}")
    state["step"] = torch.zeros((), dtype=torch.float32)
    initial = group["initial_accumulator_value"]
    if group["rowwise"]:
        state["sum"] = torch.full((p.shape[0],), initial, dtype=p.dtype, device=p.device)
    else:
        if torch.is_complex(p):
            initial = complex(initial, initial)
        state["sum"] = torch.full_like(p, initial, memory_format=torch.preserve_format)


def _native_order(p: torch.Tensor) -> Any:
    """None if the native kernel takes p as it is; a dim order that makes it C-contiguous (e.g.
    channels_last); False if p is not a dense CPU float32/float64 tensor."""
    if p.device.type != "cpu" or p.dtype not in _NATIVE_DTYPES or p.layout != torch.strided:
        return False
    if p.is_contiguous():
        return None
    order = tuple(sorted(range(p.dim()), key=lambda d: -p.stride()[d]))
    return order if p.permute(order).is_contiguous() else False


def _sum_in_layout(s: Any, p: torch.Tensor, group: dict[str, Any], label: str) -> torch.Tensor:
    """The state sum as the native kernel needs it: a tensor of p's dtype, device and shape (a
    ValueError naming the param otherwise: a sum put in the state by hand is used, never
    converted behind the user's back), in p's memory layout (a copy of the same values if not)."""
    shape = (p.shape[0],) if group["rowwise"] else p.shape
    if not isinstance(s, torch.Tensor):
        raise ValueError(f"state sum of {label} must be a tensor, got {type(s).__name__}")
    if s.shape != shape or s.dtype != p.dtype or s.device != p.device:
        raise ValueError(
            f"state sum of {label} must be a {p.dtype} tensor of shape {tuple(shape)} on {p.device}, got a "
            f"{s.dtype} tensor of shape {tuple(s.shape)} on {s.device}"
        )
    if group["rowwise"]:
        return s if s.is_contiguous() else s.contiguous()
    if s.stride() == p.stride():
        return s
    return torch.empty_like(p, memory_format=torch.preserve_format).copy_(s)  # p's layout, same values


def _step_count(step: Any, label: str) -> int:
    value = float(step)
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise ValueError(f"state step of {label} must be a whole number >= 0, got {value}")
    return int(value)


def _as_rows(
    grads: list[Any], params: list[np.ndarray], sums: list[np.ndarray], labels: list[str], rowwise: bool
) -> tuple[list[Any], list[np.ndarray], list[np.ndarray]]:
    """The step's arrays with each SparseRows grad's param (and element-wise sum) viewed as its
    2-D table: a view of the same memory, no copy."""
    grads, params, sums = list(grads), list(params), list(sums)
    for i, g in enumerate(grads):
        if not isinstance(g, SparseRows):
            continue
        if g.shape != params[i].shape:
            if rowwise:
                raise ValueError(
                    f"{labels[i]} has rowwise=True, which takes row-sparse grads of a 2-D param (one sparse dim, "
                    f"as nn.Embedding gives); its sparse grad addresses a {g.shape} view"
                )
            params[i] = params[i].reshape(g.shape)
            sums[i] = sums[i].reshape(g.shape)
        grads[i] = g.native()
    return grads, params, sums


def _make_grads_contiguous(batches: Iterable[tuple[Any, ...]]) -> bool:
    """Replace strided dense grads by C-ordered copies; False if there was none."""
    changed = False
    for batch in batches:
        grads = batch[1]
        for i, g in enumerate(grads):
            if isinstance(g, np.ndarray) and not g.flags.c_contiguous:
                grads[i] = np.ascontiguousarray(g)
                changed = True
    return changed


def _check_loaded_state(state_dict: Any, groups: list[dict[str, Any]], defaults: dict[str, Any]) -> None:
    """Options, shapes and step counts of a state_dict, checked against our params before torch
    loads it. A saved group's missing options will be the defaults (see ``__setstate__``)."""
    if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
        raise ValueError("state_dict must be a dict with 'state' and 'param_groups'")
    saved_groups = state_dict["param_groups"]
    if len(saved_groups) != len(groups):
        raise ValueError(f"state_dict has {len(saved_groups)} param groups, this optimizer {len(groups)}")
    for gi, (saved, group) in enumerate(zip(saved_groups, groups)):
        if len(saved["params"]) != len(group["params"]):
            raise ValueError(
                f"param group {gi} of the state_dict has {len(saved['params'])} params, this optimizer's "
                f"{len(group['params'])}"
            )
        options = {**defaults, **{k: v for k, v in saved.items() if k != "params"}}
        _check_group(options, f"state_dict param group {gi}: ")
        rowwise = options["rowwise"]
        for key, p in zip(saved["params"], group["params"]):
            entry = state_dict["state"].get(key)
            if entry is None:
                continue
            if "sum" not in entry or "step" not in entry:
                raise ValueError(f"state_dict state {key!r} has no 'sum' and 'step'")
            shape = (p.shape[0],) if rowwise and p.dim() == 2 else tuple(p.shape)
            if tuple(entry["sum"].shape) != shape:
                raise ValueError(
                    f"state_dict sum {key!r} has shape {tuple(entry['sum'].shape)}, its param needs {shape}"
                )
            _step_count(entry["step"], f"state_dict state {key!r}")
