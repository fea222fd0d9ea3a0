"""What every reference optimizer shares, whatever its rule: param groups, state, the step (every
grad checked, then each param updated in turn by :mod:`adagrad.reference.updates`), and the
native optimizers' ``state_dict`` format. A rule is a subclass naming its options, states and
update."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np

from . import updates
from .checks import (
    check_all_finite,
    check_dense,
    check_sparse,
    duplicates_mode,
    flag,
    sr_seed,
    step_options,
)
from .groups import Key, Layout, grads_per_group, group_params, label, sparse_parts, split_groups
from .precision import Stochastic, is_16bit
from .rules import Rule
from .transforms import Transforms

__all__ = ["COMMON_OPTIONS", "COMMON_OPTION_NAMES", "STEP_OPTIONS", "STEP_OPTION_NAMES", "ReferenceOptimizer", "Work"]

# The group options every rule has after its own, in the state_dict's order, with their defaults.
COMMON_OPTIONS: dict[str, Any] = {
    "maximize": False,
    "duplicates": "sum",
    "state_dtype": None,
    "stochastic_rounding": False,
    "seed": 0,
}
COMMON_OPTION_NAMES = tuple(COMMON_OPTIONS)
# Options of the whole step (not per group): attributes of the optimizer, read at every step.
STEP_OPTIONS: dict[str, Any] = {
    "nonfinite": "propagate",
    "grad_scale": None,
    "max_grad_norm": None,
    "norm_type": 2.0,
    "clip_norm_per_tensor": None,
    "clip_value": None,
}
STEP_OPTION_NAMES = tuple(STEP_OPTIONS)


class Work(NamedTuple):
    """One param's part of a step, checked: its grad (dense) or its rows and values (sparse)."""

    group: dict[str, Any]
    layout: Layout
    i: int
    param: np.ndarray
    grad: np.ndarray  # the dense grad, or the sparse grad's values
    rows: list[int] | None


class ReferenceOptimizer:
    """The shared core; see :class:`adagrad.reference.Adagrad` for the API every rule offers."""

    GROUP_OPTION_NAMES: ClassVar[tuple[str, ...]]
    STEP_OPTION_NAMES: ClassVar[tuple[str, ...]] = STEP_OPTION_NAMES
    STATE_NAMES: ClassVar[tuple[str, ...]] = ("sum",)
    FLOAT_STATE_NAMES: ClassVar[tuple[str, ...]] = ("sum",)  # the ones the update widens and narrows
    SIGNED_STATE_NAMES: ClassVar[tuple[str, ...]] = ()  # the ones whose values may be below 0
    SHAPE_OPTION_NAMES: ClassVar[tuple[str, ...]] = ("state_dtype",)  # a state_dict must agree on them
    CHECKPOINT_FORMAT: ClassVar[str]

    nonfinite: str
    grad_scale: float | None
    max_grad_norm: float | None
    norm_type: float | str
    clip_norm_per_tensor: float | None
    clip_value: float | None

    def __init__(self, params: Any, own: dict[str, Any], transforms: dict[str, Any]) -> None:
        """`own`: the rule's options; `transforms`: the common ones and the step options given."""
        unknown = sorted(set(transforms) - set(COMMON_OPTIONS) - set(STEP_OPTIONS))
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {unknown[0]!r}")
        defaults = {**own, **{name: transforms.get(name, value) for name, value in COMMON_OPTIONS.items()}}
        options = {name: transforms.get(name, value) for name, value in STEP_OPTIONS.items()}
        self.defaults = defaults
        self._check_group(defaults, "")
        step_options(*(options[name] for name in STEP_OPTION_NAMES))
        for name, value in options.items():
            setattr(self, name, value)
        self.last_grad_norm: float | None = None  # the total norm of the last step with a norm clip
        groups, self._as_groups = split_groups(params)
        self.param_groups: list[dict[str, Any]] = []
        self._layouts: list[Layout] = []
        self.state: dict[Key, dict[str, np.ndarray]] = {}
        seen: set[Key] = set()
        for index, given in enumerate(groups):
            unknown = sorted(set(given) - set(self.GROUP_OPTION_NAMES) - {"params"})
            if unknown:
                raise TypeError(f"param group {index}: unknown option {unknown[0]!r}")
            group = {**defaults, **given}
            self._check_group(group, f"param group {index}: ")
            arrays, keys, by_name = group_params(group["params"], len(seen))
            for key, array in zip(keys, arrays):
                if key in seen:
                    raise ValueError(f"param name {key!r} appears in more than one param group")
                seen.add(key)
                if not isinstance(array, np.ndarray) or not (
                    array.dtype in (np.float32, np.float64) or is_16bit(array.dtype)
                ):
                    raise TypeError(f"param {label(key)} must be a float16, bfloat16, float32 or float64 numpy.ndarray")
            group["params"] = arrays
            if by_name:
                group["param_names"] = list(keys)
            layout = Layout(keys, by_name, first=len(seen) - len(keys), steps=np.zeros(len(keys), np.int64))
            per_param = [self._initial_states(group, p, name) for p, name in zip(arrays, layout.labels)]
            layout.states = {name: [states[j] for states in per_param] for j, name in enumerate(self.STATE_NAMES)}
            for i, key in enumerate(keys):
                self.state[key] = {
                    **{name: layout.states[name][i] for name in self.STATE_NAMES},
                    "step": layout.steps[i : i + 1].reshape(()),
                }
            self.param_groups.append(group)
            self._layouts.append(layout)

    # -- the rule's part ------------------------------------------------------------------------

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        """TypeError / ValueError unless the group's options are valid; messages start with where."""
        raise NotImplementedError

    def _initial_states(self, group: Mapping[str, Any], param: np.ndarray, name: str) -> list[np.ndarray]:
        """The param's state arrays, in STATE_NAMES order."""
        raise NotImplementedError

    def _rule(self, group: Mapping[str, Any], step: int, rowwise: bool) -> Rule:
        """The rule of one param's update at `step` (1-based)."""
        raise NotImplementedError

    def _update(self, work: Work, states: dict[str, np.ndarray], step: int, transforms: Transforms) -> None:
        """One param's update: dense, or the rows of its sparse grad."""
        group, layout = work.group, work.layout
        seed = sr_seed(group["stochastic_rounding"], group["seed"])
        sr = None if seed is None else Stochastic(seed, layout.first + work.i, step)
        floats = [states[name] for name in self.FLOAT_STATE_NAMES]
        rule = self._rule(group, step, rowwise=floats[0].shape != work.param.shape)
        if work.rows is None:
            updates.dense(rule, work.param, work.grad, floats, transforms=transforms, sr=sr)
        else:
            mode = duplicates_mode(group["duplicates"])
            updates.sparse(
                rule, work.param, work.rows, work.grad, floats, duplicates=mode, transforms=transforms, sr=sr
            )

    # -- shared ---------------------------------------------------------------------------------

    def _states(self, layout: Layout, i: int) -> dict[str, np.ndarray]:
        return {name: layout.states[name][i] for name in self.STATE_NAMES}

    def _checked(self, grads: Any) -> list[Work]:
        """Every group's options and every grad checked against its param; nothing written."""
        work: list[Work] = []
        per_group = grads_per_group(grads, self._layouts, self._as_groups)
        for index, (group, layout, group_grads) in enumerate(zip(self.param_groups, self._layouts, per_group)):
            self._check_group(group, f"param group {index}: ")
            for i, (param, grad) in enumerate(zip(group["params"], group_grads)):
                if grad is None:
                    continue
                name = layout.labels[i]
                floats = {f"{s} of {name}": layout.states[s][i] for s in self.FLOAT_STATE_NAMES}
                rowwise = next(iter(floats.values())).shape != param.shape
                parts = sparse_parts(grad)
                if parts is not None:
                    rows = check_sparse(param, parts[0], parts[1], floats, rowwise=rowwise, name=name)
                    work.append(Work(group, layout, i, param, parts[1], rows))
                elif rowwise:
                    raise ValueError(f"param {name} keeps row-wise state: give its grad as (indices, values)")
                else:
                    check_dense(param, grad, floats, (name, f"grad of {name}"))
                    work.append(Work(group, layout, i, param, grad, None))
        return work

    def step(self, grads: Any) -> bool:
        """One update of every param whose grad is not None; grads mirror ``params``. Returns
        False, changing nothing, when nonfinite="skip" and a grad holds a NaN or an infinity."""
        options = step_options(*(getattr(self, name) for name in STEP_OPTION_NAMES))
        work = self._checked(grads)
        clips, total = updates.clips(
            [w.grad for w in work], [w.param.dtype for w in work], options.grad_scale, options.clip, options.norm_type
        )
        finite = check_all_finite({f"grad of {w.layout.labels[w.i]}": w.grad for w in work}, options.nonfinite)
        if total is not None:
            self.last_grad_norm = total
        if not finite:
            return False
        for w, clip in zip(work, clips):
            step = int(w.layout.steps[w.i]) + 1
            transforms = Transforms(options.grad_scale, clip, flag(w.group["maximize"], "maximize"))
            self._update(w, self._states(w.layout, w.i), step, transforms)
            w.layout.steps[w.i] += 1
        return True

    def state_dict(self) -> dict[str, Any]:
        """A copy of the state, in the native optimizers' format:
        ``{"state": {key: {"step": int, <state arrays>}}, "param_groups": [{<options>, "params": keys}]}``."""
        state = {
            key: {"step": int(layout.steps[i]), **{n: a.copy() for n, a in self._states(layout, i).items()}}
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

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()`` (of this or a native optimizer of the rule, over the same
        params); everything checked first, all or nothing. Options it lacks keep their values."""
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            raise TypeError("state_dict must be a dict with 'state' and 'param_groups'")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not all(isinstance(g, Mapping) for g in saved_groups):
            raise TypeError("state_dict 'param_groups' must be a list of dicts")
        if not isinstance(saved_state, Mapping):
            raise TypeError("state_dict 'state' must be a dict")
        chosen = self._checked_groups(saved_groups, "state_dict ")
        restore: list[tuple[np.ndarray, Any]] = []
        steps: list[tuple[Layout, int, int]] = []
        for group, layout in zip(saved_groups, self._layouts):
            if list(group.get("params", [])) != layout.keys:
                raise ValueError(f"state_dict holds params {group.get('params')}, expected {layout.keys}")
            for i, key in enumerate(layout.keys):
                entry = saved_state.get(key)
                name = layout.labels[i]
                if not isinstance(entry, Mapping) or any(s not in entry for s in (*self.STATE_NAMES, "step")):
                    raise ValueError(
                        f"state_dict has no {' and '.join(repr(s) for s in self.STATE_NAMES)} and 'step' for {name}"
                    )
                for state_name, current in self._states(layout, i).items():
                    restore.append(
                        (current, _same_kind(entry[state_name], current, f"state_dict '{state_name}' of {name}"))
                    )
                steps.append((layout, i, _step_count(entry["step"], f"state_dict 'step' of {name}")))
        self._restore(chosen, restore, steps, {})

    def _checked_groups(self, saved_groups: Any, where: str) -> list[dict[str, Any]]:
        """The options each saved group sets (those it lacks keep theirs), checked."""
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{where}has {len(saved_groups)} param groups, this optimizer {len(self.param_groups)}")
        chosen = []
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            prefix = f"{where}param group {index}: "
            options = {name: saved[name] for name in self.GROUP_OPTION_NAMES if name in saved}
            self._check_group({**group, **options}, prefix)
            for name in self.SHAPE_OPTION_NAMES:
                if name in options and options[name] != group[name]:
                    raise ValueError(f"{prefix}{name}={options[name]}, this optimizer {name}={group[name]}")
            chosen.append(options)
        return chosen

    def _restore(
        self,
        options: list[dict[str, Any]],
        arrays: list[tuple[np.ndarray, Any]],
        steps: list[tuple[Layout, int, int]],
        attributes: dict[str, Any],
    ) -> None:
        """Apply what was checked: nothing here can fail."""
        for group, chosen in zip(self.param_groups, options):
            group.update(chosen)
        for destination, source in arrays:
            np.copyto(destination, source)
        for layout, i, count in steps:
            layout.steps[i] = count
        for name, value in attributes.items():
            setattr(self, name, value)

    def load(self, path: Any) -> None:
        """Restore a checkpoint written by the native optimizer's ``save`` (or its rule's); all or
        nothing (see :mod:`adagrad.reference.checkpoint`)."""
        from .checkpoint import load

        load(self, path)


def _same_kind(saved: Any, current: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(saved, np.ndarray):
        raise TypeError(f"{what} must be a numpy.ndarray, got {type(saved).__name__}")
    if saved.dtype != current.dtype or saved.shape != current.shape:
        raise ValueError(
            f"{what} is {saved.dtype}{list(saved.shape)}, the param's is {current.dtype}{list(current.shape)}"
        )
    return saved


def _step_count(step: Any, what: str) -> int:
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)) or not 0 <= int(step) <= 2**63 - 2:
        raise ValueError(f"{what} must be an int from 0 to 2**63 - 2, got {step!r}")
    return int(step)
