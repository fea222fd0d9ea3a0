"""One thread at a time in an optimizer's methods that read or write its states.

A step fills the optimizer's own records (reused from step to step) with the grads, then hands them
to the native step, which runs without the GIL; a second thread stepping the same optimizer at that
moment would overwrite the first one's grads, or clear them. So such methods take the optimizer's
lock (``_turn``, reentrant: ``load`` and ``save`` call others): two threads stepping one optimizer
take turns, each step whole, as if they ran one after the other (docs/free_threading.md).

A forked child gets every optimizer's lock anew: one that another thread of the parent held at the
fork would never be released there (the native step's fork gate has already made the child's states
whole: tests/test_faults.py).
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from typing import Any, Callable, TypeVar

__all__ = ["new_turn", "taking_turns"]

_F = TypeVar("_F", bound=Callable[..., Any])

_OWNERS: weakref.WeakSet[Any] = weakref.WeakSet()  # whose _turn a forked child replaces
_REGISTERING = threading.Lock()


def new_turn(owner: Any) -> threading.RLock:
    """The lock ``owner`` (an optimizer) keeps as ``_turn``."""
    with _REGISTERING:
        _OWNERS.add(owner)
    return threading.RLock()


def _fresh_turns_in_child() -> None:
    global _REGISTERING
    _REGISTERING = threading.Lock()
    for owner in list(_OWNERS):
        owner._turn = threading.RLock()


os.register_at_fork(after_in_child=_fresh_turns_in_child)


def taking_turns(method: _F) -> _F:
    """``method`` run holding ``self._turn``."""

    @functools.wraps(method)
    def holding_the_turn(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._turn:
            return method(self, *args, **kwargs)

    return holding_the_turn  # type: ignore[return-value]
