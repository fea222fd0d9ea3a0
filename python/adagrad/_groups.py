"""How params are handed to an optimizer, and how grads must mirror them.

Three shapes, as in torch.optim:

- a list of arrays                      -> one group; state keys 0..n-1; grads: a list
- a dict name -> array                  -> one group; state keys the names; grads: a dict
- a list of group dicts {"params": ..., "lr": ...} -> one group each; each group's "params" a
  list or a dict; grads: a list with one entry per group, each shaped like that group's params.

In every shape a grad may be None: that param is skipped this step (its step count stays).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np

if TYPE_CHECKING:
    from ._core import Record

Key = Union[int, str]


@dataclass
class GroupLayout:
    """What the optimizer keeps beside one param group: keys, state buffers, error labels."""

    keys: list[Key]
    by_name: bool  # the group's params came as a dict
    labels: list[str]
    sums: list[np.ndarray]  # states["sum"]
    steps: np.ndarray  # int64, updates done so far per param
    # Every state array per param by name (the rule's STATE_NAMES), "sum" among them.
    states: dict[str, list[np.ndarray]] = field(default_factory=dict)
    first: int = 0  # the ordinal of the group's first param among all the optimizer's params
    # The group's record for the native step (adagrad._core.step), made once; a step sets its
    # options, params and grads.
    record: Record = field(default_factory=lambda: empty_record())
    # The params list the step last saw and where its 1-D params are (adagrad._vector_rows).
    vectors: tuple[list[Any], tuple[int, ...]] | None = None


def empty_record() -> Record:
    return {}


def _is_group_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and "params" in obj


def split_groups(params: Any) -> tuple[list[dict[str, Any]], bool]:
    """Normalise `params` to a list of group dicts; the flag says it was given as groups."""
    if isinstance(params, np.ndarray):
        raise TypeError("params must be a list or dict of arrays (or a list of param groups), got a single ndarray")
    if isinstance(params, Mapping):
        if "params" in params:
            raise TypeError("a single param group must be wrapped in a list: [{'params': ...}]")
        if not params:
            raise ValueError("the optimizer got an empty parameter dict")
        return [{"params": dict(params)}], False
    if isinstance(params, (str, bytes)) or not isinstance(params, Iterable):
        raise TypeError(
            f"params must be a list or dict of arrays, or a list of param groups, got {type(params).__name__}"
        )
    items = list(params)
    if not items:
        raise ValueError("the optimizer got an empty parameter list")
    if all(_is_group_dict(item) for item in items):
        return [dict(item) for item in items], True
    if any(_is_group_dict(item) for item in items):
        raise TypeError("params mixes arrays and param-group dicts; give one or the other")
    return [{"params": items}], False


def group_params(group: Mapping[str, Any], first_index: int) -> tuple[list[Any], list[Key], bool]:
    """The group's arrays, their state keys, and whether they came by name."""
    raw = group["params"]
    if isinstance(raw, np.ndarray):
        raise TypeError("a group's 'params' must be a list or dict of arrays, got a single ndarray")
    if isinstance(raw, Mapping):
        for name in raw:
            if not isinstance(name, str):
                raise TypeError(f"param names must be str, got {type(name).__name__}: {name!r}")
        return list(raw.values()), list(raw.keys()), True
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
        raise TypeError(f"a group's 'params' must be a list or dict of arrays, got {type(raw).__name__}")
    arrays = list(raw)
    return arrays, list(range(first_index, first_index + len(arrays))), False


def label(key: Key) -> str:
    return f"params[{key}]" if isinstance(key, int) else repr(key)


def grads_for_group(grads: Any, layout: GroupLayout, where: str) -> Any:
    """The group's grads as a list in the order of its params (a list or tuple passes through)."""
    if not layout.by_name:
        if isinstance(grads, Mapping):
            raise TypeError(f"{where} must be a list of arrays like the params, got a dict")
        return grads  # the native call checks list/tuple type and length
    if not isinstance(grads, Mapping):
        raise TypeError(f"{where} must be a dict name -> array like the params, got {type(grads).__name__}")
    missing = [k for k in layout.keys if k not in grads]
    if missing:
        raise ValueError(f"{where} has no entry for {missing[0]!r} (use None to skip a param)")
    if len(grads) != len(layout.keys):
        extra = next(k for k in grads if k not in set(layout.keys))
        raise ValueError(f"{where} has an entry {extra!r} that is not a param of this optimizer")
    return [grads[k] for k in layout.keys]


def grads_per_group(grads: Any, layouts: list[GroupLayout], as_groups: bool) -> list[Any]:
    if not as_groups:
        return [grads_for_group(grads, layouts[0], "grads")]
    if not isinstance(grads, (list, tuple)):
        raise TypeError(f"grads must be a list with one entry per param group, got {type(grads).__name__}")
    if len(grads) != len(layouts):
        raise ValueError(f"grads must have one entry per param group: expected {len(layouts)}, got {len(grads)}")
    return [grads_for_group(g, layout, f"grads[{i}]") for i, (g, layout) in enumerate(zip(grads, layouts))]


def check_unique_keys(keys: Iterable[Hashable]) -> None:
    seen: set[Hashable] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"param name {key!r} appears in more than one param group")
        seen.add(key)


def check_no_duplicates(params: Iterable[Any], labels: Iterable[str], noun: str) -> None:
    """ValueError if one param object (an array, a tensor) is given twice: torch calls it a duplicate
    parameter. Other params sharing memory are refused later, by the native checks."""
    names = list(labels)
    first: dict[int, int] = {}
    for i, param in enumerate(params):
        earlier = first.setdefault(id(param), i)
        if earlier != i:
            raise ValueError(
                f"duplicate param: {names[earlier]} and {names[i]} are the same {noun}; give each param once"
            )
