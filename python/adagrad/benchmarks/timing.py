"""Interleaved timing: peers take turns, so the noise of a shared machine hits them alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

# Each sample repeats the call until it lasts this long. After an idle gap this VM's CPUs take a
# few milliseconds to come back to speed (a 1M-element step on 2 threads: 791 us, 440, 298, then
# ~240 us), so a short sample would mostly measure the ramp; at 50 ms it is a few percent.
MIN_SAMPLE_S = 0.05
# Idle time before every sample, for every peer alike. Thread pools spin-wait after their work
# (torch's OpenMP pool for milliseconds): without the gap they steal a core from whichever peer
# runs next. Measured here: adagrad's 16M step right after torch's took 12.4-13.5 ms, after a
# 20 ms gap 10.8-11.3 ms, while torch's own time did not move.
IDLE_GAP_S = 0.02
# Each sample starts with one untimed call. On this VM (with DAMON monitoring memory) an array left
# idle for ~0.5 s is slower to touch again: adagrad's 16M step took 17.4 ms after 500 ms idle,
# 13.3 ms back to back. Interleaving leaves every peer's arrays idle while the others run.


def calls_per_sample(fn: Callable[[], object]) -> int:
    fn()  # warm-up: state allocated, pages faulted in, threads started
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < MIN_SAMPLE_S:
        fn()
        count += 1
    return max(1, count)


def interleaved_medians(peers: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each peer over `repeats` rounds of one sample each."""
    split = interleaved_split_medians({name: (fn, _no_clock) for name, fn in peers.items()}, repeats)
    return {name: whole for name, (whole, _) in split.items()}


def interleaved_split_medians(
    peers: dict[str, tuple[Callable[[], object], Callable[[], float]]], repeats: int
) -> dict[str, tuple[float, float]]:
    """As `interleaved_medians`, for peers given as (call, clock), where clock() is the seconds the
    peer has spent so far in one part of its calls (the optimizer step inside a training step).
    Gives each peer's medians of (seconds per call, seconds in the part per call)."""
    counts = {name: calls_per_sample(fn) for name, (fn, _) in peers.items()}
    wholes: dict[str, list[float]] = {name: [] for name in peers}
    parts: dict[str, list[float]] = {name: [] for name in peers}
    for _ in range(repeats):
        for name, (fn, clock) in peers.items():
            n = counts[name]
            time.sleep(IDLE_GAP_S)
            fn()  # untimed: memory left idle during the other peers' turns is slow to touch again
            before = clock()
            start = time.perf_counter()
            for _ in range(n):
                fn()
            wholes[name].append((time.perf_counter() - start) / n)
            parts[name].append((clock() - before) / n)
    return {name: (statistics.median(wholes[name]), statistics.median(parts[name])) for name in peers}


def _no_clock() -> float:
    return 0.0
