"""The torch drop-ins' ``state``: a table that notes when an entry, or a tensor in an entry, is
replaced, so that a step checks one flag instead of every entry's tensors (the adapter's plans of
zero-copy views are then rebuilt)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .._state_table import StateEntry, TracksReplacement

__all__ = ["StateEntry", "StateTable"]


class StateTable(TracksReplacement, defaultdict):  # type: ignore[type-arg]
    """The optimizer's ``state``: a defaultdict that notes when an entry, or a tensor in an entry, is
    replaced (``opt.state[p] = {...}``, ``opt.state[p]["sum"] = t``), so that the next step rebuilds
    its plan; a step then checks one flag instead of every entry's tensors."""

    def __init__(self, items: Any = ()) -> None:
        defaultdict.__init__(self, None, ((k, StateEntry(self, v)) for k, v in dict(items).items()))

    def __missing__(self, key: Any) -> StateEntry:
        entry = StateEntry(self, {})
        dict.__setitem__(self, key, entry)  # a new empty entry is no replacement
        return entry

    def __reduce__(self) -> Any:  # pickles as the plain defaultdict torch would have
        return (defaultdict, (dict,), None, None, ((k, dict(v)) for k, v in self.items()))
