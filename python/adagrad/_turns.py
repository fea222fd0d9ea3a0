"""One thread at a time in an optimizer's methods that read or write its states.

A step fills the optimizer's own records (reused from step to step) with the grads, then hands them
to the native step, which runs without the GIL; a second thread stepping the same optimizer at that
moment would overwrite the first one's grads, or clear them. So such methods take the optimizer's
lock (``_turn``, reentrant: ``load`` and ``save`` call others): two threads stepping one optimizer
take turns, each step whole, as if they ran one after the other (docs/free_threading.md).
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, TypeVar

__all__ = ["new_turn", "taking_turns"]

_F = TypeVar("_F", bound=Callable[..., Any])


def new_turn() -> threading.RLock:
    """The lock an optimizer keeps as ``_turn``."""
    return threading.RLock()


def taking_turns(method: _F) -> _F:
    """``method`` run holding ``self._turn``."""

    @functools.wraps(method)
    def holding_the_turn(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._turn:
            return method(self, *args, **kwargs)

    return holding_the_turn  # type: ignore[return-value]
