"""``opt.state`` of the NumPy optimizers: a dict that notes when an entry, or an array in an entry,
is replaced, so that the next step rebuilds its plan (the arrays the native call is handed) after a
check of one flag; the torch drop-ins' table (:mod:`adagrad.torch.state_table`) shares the entry
type."""

from __future__ import annotations

from typing import Any

__all__ = ["StateEntry", "StateTable", "TracksReplacement"]


class TracksReplacement(dict):  # type: ignore[type-arg]
    """A state table's bookkeeping: ``opt.state[key] = {...}``, ``del opt.state[key]``, any other
    change of the table or a change to an entry (``opt.state[key]["sum"] = a``) sets
    ``replaced``; the optimizer clears it. Both optimizers' tables are made of it."""

    replaced = False

    def __setitem__(self, key: Any, value: Any) -> None:
        self.replaced = True
        super().__setitem__(key, StateEntry(self, value) if isinstance(value, dict) else value)

    def __delitem__(self, key: Any) -> None:
        self.replaced = True
        super().__delitem__(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, *args: Any) -> Any:
        self.replaced = True
        return super().pop(*args)

    def popitem(self) -> Any:
        self.replaced = True
        return super().popitem()

    def clear(self) -> None:
        self.replaced = True
        super().clear()

    def __ior__(self, other: Any) -> Any:  # type: ignore[misc]
        self.update(other)
        return self


class StateTable(TracksReplacement):
    """The NumPy optimizers' ``state``: a dict whose entries and their arrays may be replaced."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__((k, StateEntry(self, v)) for k, v in dict(items).items())


class StateEntry(dict):  # type: ignore[type-arg]
    """One param's state: a dict that tells its table when one of its arrays is replaced."""

    def __init__(self, table: Any, items: Any) -> None:
        super().__init__(items)
        self._table = table

    def __setitem__(self, key: Any, value: Any) -> None:
        self._table.replaced = True
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._table.replaced = True
        super().__delitem__(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._table.replaced = True
        super().update(*args, **kwargs)

    def pop(self, *args: Any) -> Any:
        self._table.replaced = True
        return super().pop(*args)

    def popitem(self) -> Any:
        self._table.replaced = True
        return super().popitem()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._table.replaced = True
        return super().setdefault(key, default)

    def clear(self) -> None:
        self._table.replaced = True
        super().clear()

    def __ior__(self, other: Any) -> Any:  # type: ignore[misc]
        self._table.replaced = True
        return super().__ior__(other)

    def __reduce__(self) -> Any:  # pickles (and deep-copies) as a plain dict
        return (dict, (dict(self),))
