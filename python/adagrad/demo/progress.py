"""Progress display for the training loops: a tqdm bar, or nothing (``--quiet``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, TypeVar

__all__ = ["Progress", "no_progress", "tqdm_progress"]

T = TypeVar("T")


class Progress(Protocol):
    def __call__(self, items: Iterable[T], *, total: int, desc: str) -> Iterable[T]: ...


def no_progress(items: Iterable[T], *, total: int, desc: str) -> Iterable[T]:
    """Shows nothing."""
    return items


def tqdm_progress(items: Iterable[T], *, total: int, desc: str) -> Iterator[T]:
    """One tqdm bar on stderr per training run; it stays on screen when done."""
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit="step", dynamic_ncols=True, mininterval=0.2)
