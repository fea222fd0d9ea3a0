"""The torch drop-ins' ``state``: a table that notes when an entry, or a tensor in an entry, is
replaced, so that a step checks one flag instead of every entry's tensors (the adapter's plans of
zero-copy views are then rebuilt)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .._state_table import StateEntry

__all__ = ["StateEntry", "StateTable"]


class StateTable(defaultdict):  # type: ignore[type-arg]
    """The optimizer's ``state``: a defaultdict that notes when an entry, or a tensor in an entry, is
    replaced (``opt.state[p] = {...}``, ``opt.state[p]["sum"] = t``), so that the next step rebuilds
    its plan; a step then checks one flag instead of every entry's tensors."""

    replaced = False

    def __init__(self, items: Any = ()) -> None:
        super().__init__(None, ((k, StateEntry(self, v)) for k, v in dict(items).items()))

    def __missing__(self, key: Any) -> StateEntry:
        entry = StateEntry(self, {})
        super().__setitem__(key, entry)
        return entry

    def __setitem__(self, key: Any, value: Any) -> None:
        self.replaced = True
        super().__setitem__(key, StateEntry(self, value) if isinstance(value, dict) else value)

    def __delitem__(self, key: Any) -> None:
        self.replaced = True
        super().__delitem__(key)

    def __reduce__(self) -> Any:  # pickles as the plain defaultdict torch would have
        return (defaultdict, (dict,), None, None, ((k, dict(v)) for k, v in self.items()))
