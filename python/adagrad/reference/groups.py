"""How params are handed to an optimizer and how grads mirror them (torch.optim's shapes):

- a list of arrays                      -> one group; state keys 0..n-1; grads: a list
- a dict name -> array                  -> one group; state keys the names; grads: a dict
- a list of group dicts {"params": ..., "lr": ...} -> one group each, its "params" a list or a
  dict; grads: a list with one entry per group, each shaped like that group's params.

A grad of None skips its param this step; keys of list params count on across groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Union

import numpy as np

__all__ = ["Key", "Layout", "SparseGrad", "grads_per_group", "label", "sparse_parts", "split_groups"]

Key = Union[int, str]


class SparseGrad(NamedTuple):
    """The gradient of some rows of a 2-D param: row ``indices[i]`` receives ``values[i]``."""

    indices: np.ndarray
    values: np.ndarray


def sparse_parts(grad: Any) -> tuple[Any, Any] | None:
    """(indices, values) of a sparse grad (a SparseGrad or any 2-tuple); None for anything else."""
    if isinstance(grad, tuple) and len(grad) == 2:
        return grad[0], grad[1]
    return None


@dataclass
class Layout:
    """What an optimizer keeps beside one param group."""

    keys: list[Key]
    by_name: bool  # the group's params came as a dict
    first: int  # the ordinal of the group's first param among all the optimizer's params
    states: dict[str, list[np.ndarray]] = field(default_factory=dict)  # per state name, per param
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # updates done, per param

    @property
    def labels(self) -> list[str]:
        return [label(k) for k in self.keys]


def label(key: Key) -> str:
    """How messages name a param: params[i] for list params, 'name' for named ones."""
    return f"params[{key}]" if isinstance(key, int) else repr(key)


def _is_group(obj: Any) -> bool:
    return isinstance(obj, Mapping) and "params" in obj


def _is_sequence(obj: Any) -> bool:
    return isinstance(obj, Iterable) and not isinstance(obj, (str, bytes, np.ndarray, Mapping))


def split_groups(params: Any) -> tuple[list[dict[str, Any]], bool]:
    """`params` as a list of group dicts, and whether it was given as groups."""
    if isinstance(params, Mapping):
        if "params" in params:
            raise TypeError("a single param group must be wrapped in a list: [{'params': ...}]")
        if not params:
            raise ValueError("the optimizer got an empty parameter dict")
        return [{"params": dict(params)}], False
    if not _is_sequence(params):
        raise TypeError(
            f"params must be a list or dict of arrays, or a list of param groups, got {type(params).__name__}"
        )
    items = list(params)
    if not items:
        raise ValueError("the optimizer got an empty parameter list")
    if all(_is_group(item) for item in items):
        return [dict(item) for item in items], True
    if any(_is_group(item) for item in items):
        raise TypeError("params mixes arrays and param-group dicts; give one or the other")
    return [{"params": items}], False


def group_params(raw: Any, first: int) -> tuple[list[Any], list[Key], bool]:
    """A group's arrays, their state keys (names, or flat indices from `first`), and whether named."""
    if isinstance(raw, Mapping):
        for name in raw:
            if not isinstance(name, str):
                raise TypeError(f"param names must be str, got {type(name).__name__}: {name!r}")
        return list(raw.values()), list(raw.keys()), True
    if not _is_sequence(raw):
        raise TypeError(f"a group's 'params' must be a list or dict of arrays, got {type(raw).__name__}")
    arrays = list(raw)
    return arrays, list(range(first, first + len(arrays))), False


def _group_grads(grads: Any, layout: Layout, where: str) -> list[Any]:
    if layout.by_name:
        if not isinstance(grads, Mapping):
            raise TypeError(f"{where} must be a dict name -> array like the params, got {type(grads).__name__}")
        missing = [k for k in layout.keys if k not in grads]
        if missing:
            raise ValueError(f"{where} has no entry for {missing[0]!r} (use None to skip a param)")
        extra = [k for k in grads if k not in layout.keys]
        if extra:
            raise ValueError(f"{where} has an entry {extra[0]!r} that is not a param of this optimizer")
        return [grads[k] for k in layout.keys]
    if not isinstance(grads, (list, tuple)):
        raise TypeError(f"{where} must be a list of arrays like the params, got {type(grads).__name__}")
    if len(grads) != len(layout.keys):
        raise ValueError(
            f"{where} must have one entry per param (None to skip): expected {len(layout.keys)}, got {len(grads)}"
        )
    return list(grads)


def grads_per_group(grads: Any, layouts: list[Layout], as_groups: bool) -> list[list[Any]]:
    """Each group's grads as a list in the order of its params."""
    if not as_groups:
        return [_group_grads(grads, layouts[0], "grads")]
    if not isinstance(grads, (list, tuple)):
        raise TypeError(f"grads must be a list with one entry per param group, got {type(grads).__name__}")
    if len(grads) != len(layouts):
        raise ValueError(f"grads must have one entry per param group: expected {len(layouts)}, got {len(grads)}")
    return [_group_grads(g, layout, f"grads[{i}]") for i, (g, layout) in enumerate(zip(grads, layouts))]
