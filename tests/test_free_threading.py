"""Python threads and the shared state of adagrad, with or without the GIL (docs/free_threading.md).

Meaningful under both builds: with the GIL, a step releases it for its native part, so the threads
below overlap there; on a free-threaded build (3.13t, 3.14t) they overlap everywhere.

- Importing adagrad leaves a free-threaded interpreter without the GIL (the module declares it
  needs none).
- Four threads stepping four optimizers at once give the bits of running them one after another
  (NumPy optimizers with dense and sparse grads; the torch adapter where torch is installed).
- Two threads stepping one optimizer take turns: every step of both is applied whole (grads whose
  squares are small integers make the sums exact in any order, so a step applied with the other
  thread's grads, applied twice or skipped shows), the step count is both threads' steps, and
  neither is refused.
- ``set_num_threads`` and ``set_isa`` from one thread while another steps change no bit of it.
"""

from __future__ import annotations

import copy
import statistics
import sys
import sysconfig
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import adagrad
from conftest import AVAILABLE_ISAS, assert_same_bits

try:
    import torch

    import adagrad.torch
except ImportError:
    torch = None
NEEDS_TORCH = pytest.mark.skipif(torch is None, reason="the torch adapter needs torch")
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

BIG = adagrad.cpu_info()["parallel_threshold"] * 2 + 3  # a step splits over the pool
ROWS, DIM = 300, 8


def run_threads(work: list[Callable[[], Any]]) -> list[Any]:
    """Each callable on a thread of its own, all released at once; their results (or exceptions)."""
    start = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = work[i]()
        except BaseException as error:  # surfaced by the caller
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


@pytest.mark.skipif(not FREE_THREADED, reason="a GIL build has the GIL whatever the module declares")
def test_importing_adagrad_leaves_the_gil_off() -> None:
    if getattr(sys.flags, "gil", None) == 1:
        pytest.skip("PYTHON_GIL=1 (or -X gil=1): the GIL was asked for")
    import adagrad.functional  # noqa: F401  (and with it everything adagrad imports)

    assert sys._is_gil_enabled() is False


# -- four optimizers on four threads ------------------------------------------------------------


def numpy_training(kind: str, seed: int, steps: int = 20) -> Callable[[], dict[str, np.ndarray]]:
    """A NumPy optimizer and its grads, made now; the returned call trains it and returns its arrays."""
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal(BIG).astype(np.float32)
    table = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    if kind == "dense":
        opt: Any = adagrad.Adagrad([dense, table], lr=0.05, lr_decay=0.01)
        batches = [
            [rng.standard_normal(BIG).astype(np.float32), rng.standard_normal((ROWS, DIM)).astype(np.float32)]
            for _ in range(steps)
        ]
    else:  # sparse rows (duplicates among them) of a table, beside a dense param
        opt = adagrad.Ftrl([dense, table], lr=0.05, l1=0.001)
        batches = [
            [
                rng.standard_normal(BIG).astype(np.float32),
                adagrad.SparseGrad(rng.integers(0, ROWS, 64), rng.standard_normal((64, DIM)).astype(np.float32)),
            ]
            for _ in range(steps)
        ]

    def train() -> dict[str, np.ndarray]:
        for batch in batches:
            opt.step(batch)
        states = {f"{k} {name}": array for k, entry in opt.state.items() for name, array in entry.items()}
        return {"dense": dense, "table": table, **states}

    return train


def torch_training(seed: int, steps: int = 10) -> Callable[[], dict[str, np.ndarray]]:
    assert torch is not None
    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    opt = adagrad.torch.Adagrad(net.parameters(), lr=0.05)
    batches = [(torch.randn(16, 64, generator=gen), torch.randn(16, 4, generator=gen)) for _ in range(steps)]

    def train() -> dict[str, np.ndarray]:
        for x, y in batches:
            opt.zero_grad()
            torch.nn.functional.mse_loss(net(x), y).backward()
            opt.step()
        arrays = {f"param {i}": p.detach().numpy().copy() for i, p in enumerate(net.parameters())}
        arrays.update({f"sum {i}": opt.state[p]["sum"].numpy().copy() for i, p in enumerate(net.parameters())})
        return arrays

    return train


TRAININGS = [
    pytest.param(lambda seed: numpy_training("dense", seed), id="numpy-dense"),
    pytest.param(lambda seed: numpy_training("sparse", seed), id="numpy-sparse"),
    pytest.param(torch_training, id="torch", marks=NEEDS_TORCH),
]


@pytest.mark.parametrize("training", TRAININGS)
@pytest.mark.parametrize("pool_threads", [1, 2])
def test_four_threads_four_optimizers_give_the_bits_of_one_after_another(
    training: Callable[[int], Callable[[], dict[str, np.ndarray]]], pool_threads: int
) -> None:
    before = adagrad.get_num_threads()
    torch_before = torch.get_num_threads() if torch is not None else 0
    adagrad.set_num_threads(pool_threads)  # 2: the threads also compete for the pool
    if torch is not None:
        torch.set_num_threads(1)  # four threads each running torch's ops on a team of their own: seconds
    try:
        expected = [training(seed)() for seed in range(4)]
        got = run_threads([training(seed) for seed in range(4)])
    finally:
        adagrad.set_num_threads(before)
        if torch is not None:
            torch.set_num_threads(torch_before)
    for mine, theirs in zip(got, expected):
        assert mine.keys() == theirs.keys()
        for name in theirs:
            assert_same_bits(mine[name], theirs[name])


# -- two threads, one optimizer -------------------------------------------------------------------

STEPS_EACH = 15
# Steps long enough (~0.3 ms) that, with the GIL too, a thread's step starts while the other's runs.
DENSE_N, TABLE = 1 << 20, (1 << 14, 64)


def exact_grads(kind: str, value: float) -> list[Any]:
    """Grads whose every element is `value` (1 or 2: squares sum exactly in any order)."""
    if kind == "dense":
        return [np.full(DENSE_N, value, np.float32)]
    ids = np.arange(0, TABLE[0], 3)  # every third row once
    return [adagrad.SparseGrad(ids, np.full((ids.size, TABLE[1]), value, np.float32))]


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_two_threads_stepping_one_optimizer_take_turns(kind: str) -> None:
    param = np.zeros(DENSE_N, np.float32) if kind == "dense" else np.zeros(TABLE, np.float32)
    opt = adagrad.Adagrad([param], lr=0.01)
    ones, twos = exact_grads(kind, 1.0), exact_grads(kind, 2.0)

    def steps(grads: list[Any]) -> list[bool]:
        return [opt.step(grads) for _ in range(STEPS_EACH)]

    applied = run_threads([lambda: steps(ones), lambda: steps(twos)])
    assert applied == [[True] * STEPS_EACH] * 2  # none refused, none skipped
    entry = opt.state[0]
    assert int(entry["step"]) == 2 * STEPS_EACH
    touched = slice(None) if kind == "dense" else slice(0, TABLE[0], 3)
    # Each thread's steps add 1 (or 4) to every touched element's sum: 15 + 60, exactly.
    assert_same_bits(entry["sum"][touched], np.full_like(entry["sum"][touched], STEPS_EACH * (1 + 4)))
    if kind == "sparse":
        untouched = np.ones(TABLE[0], bool)
        untouched[touched] = False
        assert not entry["sum"][untouched].any() and not param[untouched].any()
    assert (param[touched] < 0).all() and np.isfinite(param).all()


@NEEDS_TORCH
def test_two_threads_stepping_one_torch_optimizer_take_turns() -> None:
    assert torch is not None
    p = torch.zeros(1 << 17)
    p.grad = torch.full_like(p, 1.0)  # the one grad both threads step with
    opt = adagrad.torch.Adagrad([p], lr=0.01)
    run_threads([lambda: [opt.step() for _ in range(STEPS_EACH)]] * 2)
    q = torch.zeros(1 << 17)
    q.grad = torch.full_like(q, 1.0)
    alone = adagrad.torch.Adagrad([q], lr=0.01)
    for _ in range(2 * STEPS_EACH):
        alone.step()
    assert int(opt.state[p]["step"]) == 2 * STEPS_EACH
    assert_same_bits(p.numpy(), q.numpy())
    assert_same_bits(opt.state[p]["sum"].numpy(), alone.state[q]["sum"].numpy())


def test_a_copied_optimizer_has_a_lock_of_its_own() -> None:
    param = np.ones(1000, np.float32)
    opt = adagrad.Adagrad([param], lr=0.1)
    twin = copy.deepcopy(opt)
    assert twin._turn is not opt._turn
    with opt._turn:  # held here: the copy steps all the same (it would hang if it shared the lock)
        run_threads([lambda: twin.step([np.ones(1000, np.float32)])])
    assert int(twin.state[0]["step"]) == 1 and int(opt.state[0]["step"]) == 0


# -- the knobs, from another thread ----------------------------------------------------------------


def test_set_num_threads_and_set_isa_while_another_thread_steps() -> None:
    expected = numpy_training("sparse", 7, steps=40)()
    train = numpy_training("sparse", 7, steps=40)
    before_threads, before_isa = adagrad.get_num_threads(), adagrad.cpu_info()["isa"]
    done = threading.Event()

    def turn_knobs() -> int:
        turns = 0
        while not done.is_set() or turns < 4:
            adagrad.set_num_threads(1 + turns % 2)
            adagrad.set_isa(AVAILABLE_ISAS[turns % len(AVAILABLE_ISAS)])
            assert adagrad.cpu_info()["isa"] in AVAILABLE_ISAS
            turns += 1
        return turns

    def train_then_stop() -> dict[str, np.ndarray]:
        try:
            return train()
        finally:
            done.set()

    try:
        got, turns = run_threads([train_then_stop, turn_knobs])
    finally:
        adagrad.set_num_threads(before_threads)
        adagrad.set_isa(before_isa)
    assert turns >= 4
    for name in expected:
        assert_same_bits(got[name], expected[name])


def test_the_two_model_bench_runs_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    from adagrad.benchmarks import free_threading

    monkeypatch.setattr(free_threading, "ROUND_S", 0.005)
    row = free_threading.measure(1 << 10, rounds=2)
    assert row["case"] == "1K-f32" and row["models"] == 2 and row["steps_per_model"] >= 1
    assert len(row["serial_rounds_s"]) == len(row["threads_rounds_s"]) == 2
    one, two = statistics.median(row["serial_rounds_s"]), statistics.median(row["threads_rounds_s"])
    assert row["speedup"] == one / two
    assert row["serial_us_per_step"] == one / (2 * row["steps_per_model"]) * 1e6
