"""The load guard (cpp/src/thread_pool.cpp): a parallel step that a descheduled worker stalled makes
the steps after it run on the calling thread alone for a while; the bits never change.

A stall is made on purpose: `_core._slow_workers(us)` makes every task a worker thread runs sleep
first, as if the OS had descheduled it mid-task for a busy process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

import adagrad
from adagrad import reference
from conftest import assert_same_bits

# (native step, reference step, native arrays, reference arrays)
Steps = tuple[Callable[[], None], Callable[[], None], list[np.ndarray], list[np.ndarray]]

SLEEP_US = 20_000  # a scheduler time slice or so: far longer than the caller's share of a step
ATTEMPTS = 200  # steps in which a worker must claim a task once (it wakes in ~0.1 ms; later on a busy machine)
BACK_OFF = 30.0  # seconds, for the tests (1 ms by default): no test step outlasts it, loaded or not


@pytest.fixture
def two_threads() -> Iterator[None]:
    before = adagrad.get_num_threads()
    adagrad.set_num_threads(2)
    adagrad._core._reset_load_guard()
    adagrad._core._set_first_back_off(BACK_OFF)
    yield
    adagrad._core._slow_workers(0)
    adagrad._core._set_first_back_off(0)
    adagrad._core._reset_load_guard()
    adagrad.set_num_threads(before)


def dense_steps(rng: np.random.Generator) -> Steps:
    """A 1M-element update."""
    p, g = rng.standard_normal(1 << 20).astype(np.float32), rng.standard_normal(1 << 20).astype(np.float32)
    s = np.full_like(p, 0.1)
    p2, s2 = p.copy(), s.copy()
    count = [0, 0]

    def native() -> None:
        count[0] += 1
        adagrad.update(p, g, s, step=count[0], lr=0.1)

    def ref() -> None:
        count[1] += 1
        reference.update(p2, g, s2, step=count[1], lr=0.1)

    return native, ref, [p, s], [p2, s2]


def sparse_steps(rng: np.random.Generator) -> Steps:
    """A `sum` step of 20,000 ids into a 5,000 x 64 table."""
    table = rng.standard_normal((5_000, 64)).astype(np.float32)
    ids = rng.integers(0, 5_000, 20_000)
    values = rng.standard_normal((20_000, 64)).astype(np.float32)
    state = np.full_like(table, 0.1)
    t2, s2 = table.copy(), state.copy()

    def native() -> None:
        adagrad.sparse_update(table, ids, values, state, step=1, lr=0.1, duplicates="sum")

    def ref() -> None:
        reference.sparse_update(t2, ids, values, s2, step=1, lr=0.1, duplicates="sum")

    return native, ref, [table, state], [t2, s2]


def stall(native: Callable[[], None]) -> int:
    """Steps with slow workers until one stalls; returns the steps taken. (A busy machine may have
    stalled a step before: its back-off ends first, or no step could stall.)"""
    adagrad._core._reset_load_guard(keep_level=True)
    before = adagrad.cpu_info()["stalls"]
    adagrad._core._slow_workers(SLEEP_US)
    try:
        for taken in range(1, ATTEMPTS + 1):
            native()
            if adagrad.cpu_info()["stalls"] > before:
                return taken
    finally:
        adagrad._core._slow_workers(0)
    raise AssertionError(f"no stall was seen in {ATTEMPTS} steps with workers that sleep {SLEEP_US} us per task")


@pytest.mark.parametrize("make_steps", [dense_steps, sparse_steps], ids=["dense", "sparse"])
def test_a_stalled_step_sends_the_next_ones_to_the_calling_thread(two_threads: None, make_steps: Callable) -> None:
    native, ref, got, want = make_steps(np.random.default_rng(0))
    native()
    assert adagrad._core._last_thread_team() == "own"
    steps = 1 + stall(native)
    assert adagrad.cpu_info()["stall_back_off"] > BACK_OFF / 2
    native()
    assert adagrad._core._last_thread_team() == "inline"
    adagrad._core._reset_load_guard()
    native()
    assert adagrad._core._last_thread_team() == "own"
    for _ in range(steps + 2):
        ref()
    for a, b in zip(got, want):
        assert_same_bits(a, b)


def test_stalls_back_off_longer_each_time(two_threads: None) -> None:
    """A stall within a second of the last one backs off four times as long."""
    native = dense_steps(np.random.default_rng(1))[0]
    stall(native)
    first = adagrad.cpu_info()["stall_back_off"]
    stall(native)
    second = adagrad.cpu_info()["stall_back_off"]
    assert first > BACK_OFF / 2 and 3 * first < second <= 4 * first + 1  # a second: the steps between


def test_a_quiet_machine_keeps_both_threads(two_threads: None) -> None:
    """Without slow workers a step's waits stay under its own work: no back-off starts (a test on a
    busy machine might see one; it then says so rather than fail)."""
    native = dense_steps(np.random.default_rng(2))[0]
    before = adagrad.cpu_info()["stalls"]
    for _ in range(5):
        native()
    if adagrad.cpu_info()["stalls"] > before:
        pytest.skip("this machine stalled a step without help: it is busy")
    assert adagrad._core._last_thread_team() == "own"


def test_steps_on_torchs_team_back_off_too(two_threads: None) -> None:
    torch = pytest.importorskip("torch")
    import adagrad.torch

    threads, before = torch.get_num_threads(), adagrad.cpu_info()["thread_team"] == "openmp"
    torch.set_num_threads(2)
    shared = adagrad.torch.share_torch_threads(True)
    try:
        if not shared:
            pytest.skip("this torch build has no OpenMP team")
        rng = np.random.default_rng(3)
        p = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(1 << 20).astype(np.float32)))
        p.grad = torch.from_numpy(rng.standard_normal(1 << 20).astype(np.float32))
        want, s = p.detach().numpy().copy(), np.zeros(1 << 20, np.float32)
        opt = adagrad.torch.Adagrad([p], lr=0.1)
        opt.step()
        assert adagrad._core._last_thread_team() == "openmp"
        for k in range(1, stall(opt.step) + 3):
            reference.update(want, p.grad.numpy(), s, step=k, lr=0.1)
        opt.step()
        assert adagrad._core._last_thread_team() == "inline"
        assert_same_bits(p.detach().numpy(), want)
    finally:
        adagrad.torch.share_torch_threads(before)
        torch.set_num_threads(threads)
