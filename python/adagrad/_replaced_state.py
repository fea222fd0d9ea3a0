"""State replaced by hand: ``opt.state[key]["sum"] = a``, ``opt.state[key]["step"] = 5`` or a whole
entry ``opt.state[key] = {"sum": a, "step": 5}``. The table notes it (:mod:`adagrad._state_table`);
the next ``step`` (or ``state_dict``, ``save``) adopts it here, as the torch drop-ins do:

- an array of the state's dtype and shape is used as it is when it has the state's memory layout
  (the next steps update it in place), else a copy of it in that layout takes its place in
  ``opt.state``;
- a step count is an int (or a 0-d int array) from 0 to 2**63 - 2;
- anything else (another dtype or shape, a read-only array, one sharing memory with a param or
  another state, a missing name) is a ValueError naming the param, and nothing changes: the step
  that found it is not taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ._groups import GroupLayout
from ._memory import full_like_at_same_line_offset

if TYPE_CHECKING:
    from .optim import Optimizer

__all__ = ["adopt_replaced_state"]

_STEP_LIMIT = 2**63 - 2


def _checked_array(given: Any, current: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(given, np.ndarray):
        raise ValueError(f"{what} must be a numpy.ndarray, got {type(given).__name__}")
    if given.dtype != current.dtype or given.shape != current.shape:
        raise ValueError(
            f"{what} must be {current.dtype}{list(current.shape)} like the one it replaces, "
            f"got {given.dtype}{list(given.shape)}"
        )
    if not given.flags.writeable:
        raise ValueError(f"{what} is read-only: the optimizer updates its states in place")
    if given.strides == current.strides:
        return given
    copy = full_like_at_same_line_offset(current, 0)  # the layout the kernels were given so far
    np.copyto(copy, given)
    return copy


def _checked_count(given: Any, what: str) -> int:
    if isinstance(given, np.ndarray) and given.shape == () and given.dtype.kind in "iu":
        given = given[()]
    if isinstance(given, (bool, np.bool_)) or not isinstance(given, (int, np.integer)):
        raise ValueError(f"{what} must be an int, got {type(given).__name__}")
    if not 0 <= int(given) <= _STEP_LIMIT:
        raise ValueError(f"{what} must be from 0 to 2**63 - 2, got {int(given)}")
    return int(given)


def _is_live_count(given: Any, steps: np.ndarray, i: int) -> bool:
    """Whether `given` is the 0-d view of ``steps[i]`` the table was made with."""
    return (
        isinstance(given, np.ndarray)
        and given.shape == ()
        and given.dtype == steps.dtype
        and given.ctypes.data == steps.ctypes.data + i * steps.itemsize
    )


def adopt_replaced_state(opt: Optimizer) -> None:
    """Check every entry of ``opt.state`` that differs from the step plan, then take them all."""
    table = opt.state
    layouts: list[GroupLayout] = []
    counts: list[tuple[np.ndarray, int, int, Any]] = []  # (steps, i, count, entry)
    copies: list[tuple[Any, str, np.ndarray]] = []  # (entry, name, the copy in the state's layout)
    fresh: list[tuple[str, np.ndarray, Any]] = []  # (what, array, its slot) of each array new to the plan
    for g, (group, layout) in enumerate(zip(opt.param_groups, opt._layouts)):
        states = {name: list(arrays) for name, arrays in layout.states.items()}
        for i, key in enumerate(layout.keys):
            where = f"opt.state[{key!r}]"
            entry = table.get(key)
            if not isinstance(entry, Mapping):
                raise ValueError(f"{where} (the state of {layout.labels[i]}) is missing or not a dict")
            for name in opt.STATE_NAMES:
                if name not in entry:
                    raise ValueError(f"{where} has no {name!r}")
                given = entry[name]
                if given is states[name][i]:
                    continue
                used = _checked_array(given, states[name][i], f"{where}[{name!r}]")
                if used is not given:
                    copies.append((entry, name, used))
                states[name][i] = used
                fresh.append((f"{where}[{name!r}]", used, (g, i, name)))
            if "step" not in entry:
                raise ValueError(f"{where} has no 'step'")
            if not _is_live_count(entry["step"], layout.steps, i):
                counts.append((layout.steps, i, _checked_count(entry["step"], f"{where}['step']"), entry))
        if all(a is b for name in states for a, b in zip(states[name], layout.states[name])):
            layouts.append(layout)
            continue
        new = GroupLayout(
            layout.keys,
            layout.by_name,
            layout.labels,
            states[opt.STATE_NAMES[0]],
            layout.steps,
            states,
            layout.first,
        )
        new.record = opt._record(group, new)
        layouts.append(new)
    _check_no_overlap(fresh, opt, layouts)

    # Nothing left that can fail.
    opt._layouts = layouts
    for entry, name, used in copies:
        dict.__setitem__(entry, name, used)
    for steps, i, count, entry in counts:
        steps[i] = count
        dict.__setitem__(entry, "step", steps[i : i + 1].reshape(()))
    table.replaced = False


def _check_no_overlap(fresh: list[tuple[str, np.ndarray, Any]], opt: Optimizer, layouts: list[GroupLayout]) -> None:
    """A ValueError if an array put in the state shares memory with a param or another state."""
    if not fresh:
        return
    others: list[tuple[str, np.ndarray, Any]] = []
    for g, (group, layout) in enumerate(zip(opt.param_groups, layouts)):
        for i, param in enumerate(group["params"]):
            label = layout.labels[i]
            others.append((f"param {label}", param, None))
            others += [(f"state {n!r} of {label}", layout.states[n][i], (g, i, n)) for n in opt.STATE_NAMES]
    for what, array, slot in fresh:
        clashes = [name for name, other, at in others if at != slot and np.may_share_memory(array, other)]
        if clashes:
            raise ValueError(f"{what} shares memory with the {clashes[0]}")
