"""The one optimizer core over NumPy arrays, whatever the rule: param groups, states, the one native
call per step, ``state_dict`` and checkpoints. A rule's optimizer is this core with its declaration
(:mod:`adagrad.rules`): ``class ProximalAdagrad(Optimizer): RULE = PROXIMAL``; its constructor's
keywords, its checks, its states and its docstring all derive from it."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NamedTuple, TypeVar

import numpy as np

from . import _checkpoint, _core, _docs
from ._core import NonFiniteGradError
from ._groups import (
    GroupLayout,
    check_no_duplicates,
    check_unique_keys,
    grads_per_group,
    group_params,
    label,
    split_groups,
)
from ._memory import full_like_at_same_line_offset
from ._plain import is_plain, plain
from ._replaced_state import adopt_replaced_state
from ._state_table import StateTable
from ._turns import new_turn, taking_turns
from ._vector_rows import vector_positions, vectors_as_rows
from .rules import GROUP_OPTIONS, STEP_OPTIONS, Rule, State

if TYPE_CHECKING:
    from ._core import Record

__all__ = ["NonFiniteGradError", "Optimizer", "SparseGrad", "check_group", "check_step_options"]


class SparseGrad(NamedTuple):
    """The gradient of some rows of a 2-D param: row ``indices[i]`` receives ``values[i]``.

    Give it (or a plain ``(indices, values)`` tuple) to an optimizer's ``step`` in place of a dense
    grad; see :func:`adagrad.sparse_update` for the semantics.
    """

    indices: np.ndarray
    values: np.ndarray


def _check_real(value: Any, name: str, where: str, *, positive: bool) -> None:
    """TypeError / ValueError unless `value` is a finite real number >= 0 (or > 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}{name} must be a real number, got {type(value).__name__}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond float range
        finite = False
    if not finite or value < 0 or (positive and value == 0):
        raise ValueError(f"{where}{name} must be a finite number {'>' if positive else '>='} 0, got {value}")


def _check_flag(value: Any, name: str, where: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}{name} must be a bool, got {type(value).__name__}")


def _check_state_dtype(value: Any, name: str, where: str) -> None:
    if value not in (None, "float32"):
        raise ValueError(f"{where}{name} must be None (the param's dtype) or 'float32', got {value!r}")


# The checks of the options the kernels do not read (the others are the kernels': check_group).
_PYTHON_CHECKS = {
    "non_negative": lambda v, n, w: _check_real(v, n, w, positive=False),
    "positive": lambda v, n, w: _check_real(v, n, w, positive=True),
    "flag": _check_flag,
    "state_dtype": _check_state_dtype,
}


def check_group(rule: Rule, group: Mapping[str, Any], where: str) -> None:
    """TypeError / ValueError unless a param group's options are valid for the rule; messages say
    where. The options the kernel reads are checked by the kernel's own checks, the rest here."""
    try:
        _core.check_options(rule.name, dict(group))
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}{error}") from None
    for option in rule.group_options:  # what a checkpoint could not save (see adagrad._plain)
        if not is_plain(group[option.name]):
            raise TypeError(f"{where}{option.name} must be a plain number, got {type(group[option.name]).__name__}")
    for option in rule.group_options:
        if not option.kernel:
            _PYTHON_CHECKS[option.check](group[option.name], option.name, where)


def check_step_options(options: Mapping[str, Any]) -> None:
    """TypeError / ValueError unless the step options (nonfinite, grad_scale, the clip) are valid."""
    _core.check_step_options(dict(options))


def _state_dtype(group: Mapping[str, Any], param: np.ndarray, name: str) -> np.dtype[Any]:
    """The dtype of a param's float states: its own, or float32 (``state_dtype="float32"``, 16-bit params)."""
    if group["state_dtype"] is None or param.dtype == np.float32:
        return param.dtype
    if param.dtype.itemsize != 2:
        raise ValueError(f"param {name} is {param.dtype}: state_dtype='float32' is for float16 and bfloat16 params")
    return np.dtype(np.float32)


def decay_count_rows(shape: tuple[int, ...], c_contiguous: bool) -> int:
    """How many decay counts a param keeps: one per row of a 2-D C-contiguous param, else one."""
    return shape[0] if len(shape) == 2 and c_contiguous and shape[0] > 0 else 1


def initial_state(state: State, group: Mapping[str, Any], param: np.ndarray, name: str) -> np.ndarray:
    """A param's state array at the start: the declared initial value in the param's layout (on the
    same cache-line offset), one per row with ``rowwise``; decay counts int64 zeros."""
    if state.kind == "decay_count":
        return np.zeros(decay_count_rows(param.shape, param.flags.c_contiguous), np.int64)
    initial = group[state.initial] if isinstance(state.initial, str) else state.initial
    dtype = _state_dtype(group, param, name)
    if not group.get("rowwise", False):
        return full_like_at_same_line_offset(param, initial, dtype)
    if param.ndim != 2:
        raise ValueError(f"param {name} has shape {param.shape}: rowwise=True needs 2-D params (rows, dim)")
    return np.full(param.shape[0], initial, dtype)


_V = TypeVar("_V")


class _StepOption(Generic[_V]):
    """An option of the whole step, an attribute of the optimizer (``opt.grad_scale = ...``) kept in
    the dict the native step reads (the instance attribute ``values``): no dict is built per step."""

    def __init__(self, values: str = "_step_options") -> None:
        self.values = values

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else getattr(obj, self.values)[self.name]

    def __set__(self, obj: Any, value: _V) -> None:
        getattr(obj, self.values)[self.name] = plain(value)


class Optimizer:
    """The shared core; see :class:`adagrad.Adagrad` for the API every rule offers.

    A rule's optimizer is a subclass naming its declaration: ``RULE``. Everything else derives from
    it: the constructor's keywords (the rule's options, the transforms of :data:`adagrad.rules.GROUP_OPTIONS`
    and the step options), the checks, the states, the checkpoint format and the docstring.
    """

    RULE: ClassVar[Rule]
    # Derived from RULE (__init_subclass__); _checkpoint reads them.
    GROUP_OPTION_NAMES: ClassVar[tuple[str, ...]]
    STEP_OPTION_NAMES: ClassVar[tuple[str, ...]] = tuple(o.name for o in STEP_OPTIONS)
    STATE_NAMES: ClassVar[tuple[str, ...]]
    SIGNED_STATE_NAMES: ClassVar[tuple[str, ...]]  # the states whose values may be below 0
    SHAPE_OPTION_NAMES: ClassVar[tuple[str, ...]]
    CHECKPOINT_FORMAT: ClassVar[str]
    # The transforms' defaults: what a checkpoint written before every rule had them holds.
    TRANSFORM_DEFAULTS: ClassVar[dict[str, Any]] = {o.name: o.default for o in GROUP_OPTIONS}

    # The step options (STEP_OPTIONS), attributes read at every step.
    nonfinite: _StepOption[str] = _StepOption()
    grad_scale: _StepOption[float | None] = _StepOption()
    max_grad_norm: _StepOption[float | None] = _StepOption()
    norm_type: _StepOption[float | str] = _StepOption()
    clip_norm_per_tensor: _StepOption[float | None] = _StepOption()
    clip_value: _StepOption[float | None] = _StepOption()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        rule = cls.RULE
        cls.GROUP_OPTION_NAMES = tuple(o.name for o in rule.group_options)
        cls.STATE_NAMES = rule.state_names
        cls.SIGNED_STATE_NAMES = tuple(s.name for s in rule.states if s.signed)
        cls.SHAPE_OPTION_NAMES = tuple(o.name for o in rule.group_options if o.shapes_states)
        cls.CHECKPOINT_FORMAT = f"adagrad.{rule.optimizer} checkpoint"
        keywords = [
            inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default)
            for o in rule.group_options + STEP_OPTIONS
        ]
        params = inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        cls.__signature__ = inspect.Signature([params, *keywords])  # type: ignore[attr-defined]
        if cls.__doc__ is None:
            cls.__doc__ = _docs.optimizer_doc(rule)

    def __init__(self, params: Any, **options: Any) -> None:
        rule = self.RULE
        known = {o.name: o for o in rule.group_options + STEP_OPTIONS}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}")
        options = {name: plain(value) for name, value in options.items()}
        self._turn = new_turn(self)  # two threads stepping this optimizer take turns (adagrad._turns)
        self.defaults: dict[str, Any] = {o.name: options.get(o.name, o.default) for o in rule.group_options}
        check_group(rule, self.defaults, "")
        step_options = {o.name: options.get(o.name, o.default) for o in STEP_OPTIONS}
        check_step_options(step_options)
        self._step_options = step_options
        # The norm of all grads of the last step with max_grad_norm or clip_norm_per_tensor set.
        self.last_grad_norm: float | None = None
        groups, self._as_groups = split_groups(params)
        self.param_groups: list[dict[str, Any]] = []
        self._layouts: list[GroupLayout] = []
        self.state: StateTable = StateTable()
        for group, layout in self._checked_groups(groups):
            self.param_groups.append(group)
            self._layouts.append(layout)
        self.state = self._table(self._layouts)

    def _checked_groups(self, groups: list[dict[str, Any]]) -> list[tuple[dict[str, Any], GroupLayout]]:
        """New param groups, checked against each other and against the optimizer's groups, with
        their states made; the optimizer itself is left unchanged."""
        rule = self.RULE
        made: list[tuple[dict[str, Any], GroupLayout]] = []
        first = sum(len(layout.keys) for layout in self._layouts)
        for index, given in enumerate(groups, start=len(self.param_groups)):
            unknown = sorted(set(given) - set(self.GROUP_OPTION_NAMES) - {"params"})
            if unknown:
                raise TypeError(f"param group {index}: unknown option {unknown[0]!r}")
            group = {**self.defaults, **{k: v if k == "params" else plain(v) for k, v in given.items()}}
            check_group(rule, group, f"param group {index}: ")
            arrays, keys, by_name = group_params(group, first_index=first)
            group["params"] = arrays
            if by_name:
                group["param_names"] = list(keys)
            made.append(
                (group, GroupLayout(keys, by_name, [label(k) for k in keys], [], np.zeros(0, np.int64), first=first))
            )
            first += len(keys)
        layouts = self._layouts + [layout for _, layout in made]
        all_arrays = [array for group in self.param_groups + [group for group, _ in made] for array in group["params"]]
        all_labels = [name for layout in layouts for name in layout.labels]
        check_unique_keys(key for layout in layouts for key in layout.keys if isinstance(key, str))
        check_no_duplicates(
            (a for a in all_arrays if isinstance(a, np.ndarray)),
            (name for a, name in zip(all_arrays, all_labels) if isinstance(a, np.ndarray)),
            "array",
        )
        _core.check_params(all_arrays, all_labels)

        for group, layout in made:
            per_param = [
                [initial_state(s, group, p, name) for s in rule.states]
                for p, name in zip(group["params"], layout.labels)
            ]
            layout.states = {s.name: [states[j] for states in per_param] for j, s in enumerate(rule.states)}
            layout.sums = layout.states[rule.states[0].name]
            layout.steps = np.zeros(len(layout.keys), np.int64)
            layout.record = self._record(group, layout)
        return made

    @taking_turns
    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a param group, as ``torch.optim.Optimizer.add_param_group``: a dict with ``params``
        (a list or dict of arrays) and any of the constructor's group options (the others are the
        constructor's values). Checked as the constructor checks (nothing changes when refused);
        its params start with fresh states and step 0. From then on ``step`` takes one grads entry
        per group, as for groups given to the constructor; ``state_dict``, ``save`` and ``load``
        cover the new group (``load`` needs an optimizer with the same groups)."""
        if not isinstance(param_group, Mapping) or "params" not in param_group:
            raise TypeError(f"a param group must be a dict with 'params', got {type(param_group).__name__}")
        if self.state.replaced:  # opt.state[key][name] = array: keep it
            adopt_replaced_state(self)
        made = self._checked_groups([dict(param_group)])
        for group, layout in made:
            self.param_groups.append(group)
            self._layouts.append(layout)
        self._as_groups = True
        self.state = self._table(self._layouts)

    def _record(self, group: dict[str, Any], layout: GroupLayout) -> Record:
        """The group's record for the native step (a step sets its options, params and grads)."""
        return {
            "rule": self.RULE.name,
            "options": group,
            "params": group["params"],
            "grads": None,
            "states": layout.states,
            "steps": layout.steps,
            "labels": layout.labels,
            "first_stream": layout.first,
        }

    def _table(self, layouts: list[GroupLayout]) -> StateTable:
        """``opt.state`` over the layouts' arrays: each entry's states, and its step as a 0-d view."""
        return StateTable(
            (
                key,
                {
                    **{name: layout.states[name][i] for name in self.STATE_NAMES},
                    "step": layout.steps[i : i + 1].reshape(()),
                },
            )
            for layout in layouts
            for i, key in enumerate(layout.keys)
        )

    # -- checks, for _checkpoint and load_state_dict --------------------------------------------

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        check_group(cls.RULE, group, where)

    @classmethod
    def _check_step_options(cls, options: Mapping[str, Any]) -> None:
        check_step_options(options)

    # -- the step -------------------------------------------------------------------------------

    @taking_turns
    def step(self, grads: Any) -> bool:
        """One update of every param whose grad is not None; grads mirror ``params``.

        Returns True if the update was applied; False if it was skipped (``nonfinite="skip"`` and a
        grad holds a NaN or an infinity: nothing changed, step counts included).
        """
        if self.state.replaced:  # opt.state[key][name] = array: the next step uses it
            adopt_replaced_state(self)
        if type(grads) in (list, tuple) and not self._as_groups and not self._layouts[0].by_name:
            per_group: Any = (grads,)  # the common case; the native call checks the length
        else:
            per_group = grads_per_group(grads, self._layouts, self._as_groups)
        # Options are read at every step, so that changes to param_groups take effect (schedulers).
        records: list[Record] = []
        try:
            for group, layout, group_grads in zip(self.param_groups, self._layouts, per_group):
                record = layout.record
                params = group["params"]
                record["options"], record["params"], record["grads"] = group, params, group_grads
                if layout.vectors is None or layout.vectors[0] is not params:
                    layout.vectors = (params, vector_positions(params))
                if layout.vectors[1]:  # 1-D params: a sparse grad takes them as (n, 1) tables
                    record = vectors_as_rows(record, layout.vectors[1], self.RULE)
                records.append(record)
            result = _core.step(records, self._step_options)
        finally:
            for layout in self._layouts:  # the caller's grads are not kept beyond the step
                layout.record["grads"] = None
        if type(result) is tuple:  # a norm clip: (applied, norm)
            applied, self.last_grad_norm = result
            return applied is True
        return result is True

    # -- state ----------------------------------------------------------------------------------

    @taking_turns
    def state_dict(self) -> dict[str, Any]:
        """A copy of the state: ``{"state": {key: {"step", <state arrays>}}, "param_groups": [...]}``."""
        if self.state.replaced:
            adopt_replaced_state(self)
        state = {
            key: {"step": int(layout.steps[i]), **{name: layout.states[name][i].copy() for name in self.STATE_NAMES}}
            for layout in self._layouts
            for i, key in enumerate(layout.keys)
        }
        groups = [
            {
                **{k: list(v) if isinstance(v, list) else v for k, v in group.items() if k != "params"},
                "params": list(layout.keys),
            }
            for group, layout in zip(self.param_groups, self._layouts)
        ]
        return {"state": state, "param_groups": groups}

    @taking_turns
    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()`` of an optimizer over the same params; all or nothing."""
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            raise TypeError("state_dict must be a dict with 'state' and 'param_groups'")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not all(isinstance(g, Mapping) for g in saved_groups):
            raise TypeError("state_dict 'param_groups' must be a list of dicts")
        if not isinstance(saved_state, Mapping):
            raise TypeError("state_dict 'state' must be a dict")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"state_dict has {len(saved_groups)} param groups, this optimizer {len(self.param_groups)}"
            )
        for index, (saved, layout) in enumerate(zip(saved_groups, self._layouts)):
            if list(saved.get("params", [])) != layout.keys:
                raise ValueError(
                    f"param group {index}: state_dict holds params {saved.get('params')}, expected {layout.keys}"
                )
            self._check_group({**self.param_groups[index], **saved}, f"state_dict param group {index}: ")
            for name in self.SHAPE_OPTION_NAMES:
                if name in saved and saved[name] != self.param_groups[index][name]:
                    raise ValueError(
                        f"state_dict param group {index}: {name}={saved[name]}, "
                        f"this optimizer {name}={self.param_groups[index][name]}"
                    )
            for i, key in enumerate(layout.keys):
                self._check_saved_entry(saved_state.get(key), layout, i)

        for saved, group, layout in zip(saved_groups, self.param_groups, self._layouts):
            group.update({name: plain(saved[name]) for name in self.GROUP_OPTION_NAMES if name in saved})
            for i, key in enumerate(layout.keys):
                for name in self.STATE_NAMES:
                    np.copyto(layout.states[name][i], saved_state[key][name])
                layout.steps[i] = int(saved_state[key]["step"])
        if self.state.replaced:  # entries replaced by hand before: the loaded state is the layouts'
            self.state = self._table(self._layouts)

    def _check_saved_entry(self, entry: Any, layout: GroupLayout, i: int) -> None:
        name = layout.labels[i]
        if not isinstance(entry, Mapping) or "step" not in entry or any(s not in entry for s in self.STATE_NAMES):
            names = " and ".join(f"'{s}'" for s in (*self.STATE_NAMES, "step"))
            raise ValueError(f"state_dict has no {names} for {name}")
        for state_name in self.STATE_NAMES:
            saved, current = entry[state_name], layout.states[state_name][i]
            if not isinstance(saved, np.ndarray):
                raise TypeError(
                    f"state_dict '{state_name}' of {name} must be a numpy.ndarray, got {type(saved).__name__}"
                )
            if saved.dtype != current.dtype or saved.shape != current.shape:
                raise ValueError(
                    f"state_dict '{state_name}' of {name} is {saved.dtype}{list(saved.shape)}, "
                    f"the param is {current.dtype}{list(current.shape)}"
                )
        step = entry["step"]
        if (
            isinstance(step, (bool, np.bool_))
            or not isinstance(step, (int, np.integer))
            or not 0 <= int(step) <= 2**63 - 2
        ):
            raise ValueError(f"state_dict 'step' of {name} must be an int from 0 to 2**63 - 2, got {step!r}")

    @taking_turns
    def save(self, path: Any, *, params: bool = False) -> None:
        """Write the optimizer's state to ``path`` (a ``.npz`` file, or a binary file object), atomically.

        The file holds every state array and step count, each group's hyper-parameters and param
        keys, the step options, a format version, and with ``params=True`` the params too. It is
        written to a temporary file in the same folder, flushed and fsync'ed, then renamed over
        ``path`` (and the folder fsync'ed): a crash or a kill at any moment leaves either the
        previous file or the new one, never a mix. (A kill can leave the temporary
        ``.<name>.<random>.tmp`` behind; it is safe to delete.) The file is a plain NumPy ``.npz``
        archive with no pickled objects. Resuming from it with :meth:`load` gives bit-identical
        training to never stopping.

        - A file already at ``path`` keeps its permission bits (a 0600 checkpoint stays 0600); a
          new one gets ``0o666`` minus the umask.
        - A symlink at ``path`` is followed: the file it points to is replaced, the link stays.
        - The folder must exist: ``save`` creates none (FileNotFoundError naming ``path`` and the folder).
        - A file object (``io.BytesIO``, an open file) gets the archive written at its position;
          it is not atomic, not fsync'ed and not closed.
        - A state :meth:`load` would refuse is refused here: a NaN or negative sum of squares, a
          NaN sum of grads (ValueError naming the param).

        >>> import io, numpy as np, adagrad
        >>> opt = adagrad.Adagrad([np.ones(3, np.float32)], lr=np.float32(0.5))
        >>> buffer = io.BytesIO()
        >>> opt.save(buffer)
        >>> _ = buffer.seek(0)
        >>> opt.load(buffer)
        >>> opt.param_groups[0]["lr"]  # hyper-parameters are plain Python numbers
        0.5
        """
        _checkpoint.save(self, path, params=params)

    @taking_turns
    def load(self, path: Any) -> None:
        """Restore a checkpoint written by :meth:`save` (a path or a binary file object); all or nothing.

        The optimizer must be of the same class, built over the same params: the same groups,
        keys, shapes and dtypes. The file is read as if an attacker wrote it: its members must
        be ``.npy`` arrays, each name once; a member's size is checked against what its expected
        shape and dtype take *before* it is decompressed, its header before its data; the meta
        JSON nests at most 8 deep; a sum of squares holds no NaN and nothing below 0, a sum of
        grads no NaN. A mismatch raises ValueError (or TypeError) saying what differs, naming the
        member, and leaves the optimizer and its params untouched. Pickled objects are refused.

        The new state is built completely beside the old one (fresh arrays), then the params are
        copied in place (``save(..., params=True)``) and the optimizer's ``state``, ``param_groups``
        and step options are swapped in at once, with SIGINT held back until then: an interrupt
        or an error at any moment leaves the optimizer either as it was or fully loaded. So after a
        load ``opt.state`` and ``opt.param_groups`` are new objects: references taken before it
        no longer follow the optimizer (as after torch's ``load_state_dict``).
        """
        _checkpoint.load(self, path)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (and deep-copied) without its lock: the copy gets one of its own."""
        return {name: value for name, value in self.__dict__.items() if name != "_turn"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._turn = new_turn(self)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            options = ", ".join(f"{name}={group[name]}" for name in self.GROUP_OPTION_NAMES)
            lines.append(f"  param group {index}: {len(group['params'])} params, {options}")
        lines.append("  " + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.STEP_OPTION_NAMES))
        return "\n".join(lines + [")"])
