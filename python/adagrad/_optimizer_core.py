"""What every optimizer over NumPy arrays shares, whatever its rule: param groups, state, the one
native call per step, ``state_dict`` and checkpoints. A rule (Adagrad, Proximal Adagrad, Adagrad-DA)
is a subclass that names its options, its state arrays and its native group tuple."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from . import _checkpoint, _core
from ._groups import GroupLayout, check_unique_keys, grads_per_group, group_params, label, split_groups

__all__ = ["Optimizer", "check_initial_value"]


def check_initial_value(value: Any, name: str, where: str, *, positive: bool) -> None:
    """TypeError / ValueError unless `value` is a finite real number >= 0 (or > 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}{name} must be a real number, got {type(value).__name__}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond float range
        finite = False
    if not finite or value < 0 or (positive and value == 0):
        raise ValueError(f"{where}{name} must be a finite number {'>' if positive else '>='} 0, got {value}")


def check_duplicates(group: Mapping[str, Any], where: str) -> None:
    if group["duplicates"] not in ("sum", "sequential"):
        raise ValueError(f"{where}duplicates must be 'sum' or 'sequential', got {group['duplicates']!r}")


class Optimizer:
    """The shared core; see :class:`adagrad.Adagrad` for the API every rule offers.

    A subclass sets the class attributes below and implements ``_check_group``,
    ``_initial_states`` and ``_native_group``; it may override ``_apply`` (the native call).
    """

    # Per-group options, in the order a state_dict and a checkpoint list them.
    GROUP_OPTION_NAMES: ClassVar[tuple[str, ...]]
    # Options of the whole step (attributes of the optimizer), read at every step.
    STEP_OPTION_NAMES: ClassVar[tuple[str, ...]] = ("nonfinite",)
    # The state arrays of each param, as opt.state[key] names them; "sum" is always one of them.
    STATE_NAMES: ClassVar[tuple[str, ...]] = ("sum",)
    # Group options that fix the state's shapes: a state_dict or checkpoint must agree on them.
    SHAPE_OPTION_NAMES: ClassVar[tuple[str, ...]] = ()
    CHECKPOINT_FORMAT: ClassVar[str]
    nonfinite: str  # every rule's step option; the others are the subclass's to declare

    def __init__(self, params: Any, defaults: dict[str, Any], step_options: dict[str, Any]) -> None:
        self.defaults: dict[str, Any] = defaults
        self._check_group(self.defaults, "")
        self._check_step_options(step_options)
        for name, value in step_options.items():
            setattr(self, name, value)
        groups, self._as_groups = split_groups(params)
        self.param_groups: list[dict[str, Any]] = []
        self._layouts: list[GroupLayout] = []
        self.state: dict[Any, dict[str, np.ndarray]] = {}

        all_arrays: list[Any] = []
        all_keys: list[Any] = []
        for index, given in enumerate(groups):
            unknown = set(given) - set(self.GROUP_OPTION_NAMES) - {"params"}
            if unknown:
                raise TypeError(f"param group {index}: unknown option {sorted(unknown)[0]!r}")
            group = {**self.defaults, **given}
            self._check_group(group, f"param group {index}: ")
            arrays, keys, by_name = group_params(group, first_index=len(all_keys))
            group["params"] = arrays
            if by_name:
                group["param_names"] = list(keys)
            self.param_groups.append(group)
            self._layouts.append(
                GroupLayout(keys, by_name, [label(k) for k in keys], [], np.zeros(0, np.int64), first=len(all_keys))
            )
            all_arrays += arrays
            all_keys += keys
        check_unique_keys(k for k in all_keys if isinstance(k, str))
        _core.check_params(all_arrays, [label(k) for k in all_keys])

        for group, layout in zip(self.param_groups, self._layouts):
            per_param = [self._initial_states(group, p, name) for p, name in zip(group["params"], layout.labels)]
            layout.states = {name: [states[j] for states in per_param] for j, name in enumerate(self.STATE_NAMES)}
            layout.sums = layout.states["sum"]
            layout.steps = np.zeros(len(layout.keys), np.int64)
            for i, key in enumerate(layout.keys):
                self.state[key] = {
                    **{name: layout.states[name][i] for name in self.STATE_NAMES},
                    "step": layout.steps[i : i + 1].reshape(()),
                }

    # -- the rule's part ------------------------------------------------------------------------

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        raise NotImplementedError

    @classmethod
    def _check_step_options(cls, options: Mapping[str, Any]) -> None:
        _core.check_step_options(options["nonfinite"], None)

    def _initial_states(self, group: Mapping[str, Any], param: np.ndarray, name: str) -> list[np.ndarray]:
        """The param's state arrays, in STATE_NAMES order."""
        raise NotImplementedError

    def _native_group(self, group: Mapping[str, Any], layout: GroupLayout, grads: Any) -> tuple[Any, ...]:
        """The group's tuple for the native step (adagrad/_core: step)."""
        raise NotImplementedError

    def _apply(self, batches: list[tuple[Any, ...]]) -> bool:
        return _core.step(batches, self.nonfinite) is True

    # -- shared ---------------------------------------------------------------------------------

    def step(self, grads: Any) -> bool:
        """One update of every param whose grad is not None; grads mirror ``params``.

        Returns True if the update was applied; False if it was skipped (``nonfinite="skip"`` and a
        grad holds a NaN or an infinity: nothing changed, step counts included).
        """
        if type(grads) in (list, tuple) and not self._as_groups and not self._layouts[0].by_name:
            per_group: Any = (grads,)  # the common case; the native call checks the length
        else:
            per_group = grads_per_group(grads, self._layouts, self._as_groups)
        # Options are read at every step, so that changes to param_groups take effect (schedulers).
        return self._apply(
            [
                self._native_group(group, layout, group_grads)
                for group, layout, group_grads in zip(self.param_groups, self._layouts, per_group)
            ]
        )

    def state_dict(self) -> dict[str, Any]:
        """A copy of the state: ``{"state": {key: {"step", <state arrays>}}, "param_groups": [...]}``."""
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
            group.update({name: saved[name] for name in self.GROUP_OPTION_NAMES if name in saved})
            for i, key in enumerate(layout.keys):
                for name in self.STATE_NAMES:
                    np.copyto(layout.states[name][i], saved_state[key][name])
                layout.steps[i] = int(saved_state[key]["step"])

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

    def save(self, path: Any, *, params: bool = False) -> None:
        """Write the optimizer's state to ``path`` (a ``.npz`` file), atomically.

        The file holds every state array and step count, each group's hyper-parameters and param
        keys, the step options, a format version, and with ``params=True`` the params too. It is
        written to a temporary file in the same folder, flushed and fsync'ed, then renamed over
        ``path`` (and the folder fsync'ed): a crash or a kill at any moment leaves either the
        previous file or the new one, never a mix. (A kill can leave the temporary
        ``.<name>.<random>.tmp`` behind; it is safe to delete.) The file is a plain NumPy ``.npz``
        archive with no pickled objects. Resuming from it with :meth:`load` gives bit-identical
        training to never stopping.
        """
        _checkpoint.save(self, path, params=params)

    def load(self, path: Any) -> None:
        """Restore a checkpoint written by :meth:`save` into this optimizer; all or nothing.

        The optimizer must be of the same class, built over the same params: the same groups,
        keys, shapes and dtypes. Everything is read and checked (format and version, keys, shapes,
        dtypes, step counts, hyper-parameters) before anything is changed; a mismatch raises
        ValueError (or TypeError) saying what differs, and leaves the optimizer and its params
        untouched. If the file holds the params (``save(..., params=True)``), they are copied into
        this optimizer's params in place. Restores the groups' hyper-parameters and the step
        options. Pickled objects are refused (``allow_pickle=False``).
        """
        _checkpoint.load(self, path)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            options = ", ".join(f"{name}={group[name]}" for name in self.GROUP_OPTION_NAMES)
            lines.append(f"  param group {index}: {len(group['params'])} params, {options}")
        lines.append("  " + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.STEP_OPTION_NAMES))
        return "\n".join(lines + [")"])
