"""Steps from several Python threads at once.

- Independent optimizers stepped concurrently from N Python threads give bitwise the results of
  running them one after the other (every ISA; the library's own pool at 1 and 2 threads, so
  that concurrent calls also compete for it).
- The GIL is released during the arithmetic: another Python thread keeps running while a long
  step is in flight (dense and sparse).
- Two threads stepping the same arrays at the same time is refused with a clear error (the
  second one writes nothing), instead of racing.
- A step started on the same thread while another step gathers its arrays (an lr whose
  ``__float__`` steps another optimizer) leaves both exact, even when the inner one is refused.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import adagrad
from conftest import assert_same_bits

BIG = adagrad.cpu_info()["parallel_threshold"] * 2 + 3  # splits over the pool
STEPS = 25


def model(seed: int) -> tuple[dict[str, np.ndarray], adagrad.Adagrad]:
    rng = np.random.default_rng(seed)
    params = {
        "big": rng.standard_normal(BIG).astype(np.float32),
        "small": rng.standard_normal((7, 5)),
        "emb": rng.standard_normal((500, 16)).astype(np.float32),
    }
    opt = adagrad.Adagrad(
        [
            {"params": {"big": params["big"], "small": params["small"]}, "lr_decay": 0.01},
            {"params": {"emb": params["emb"]}},
        ],
        lr=0.05,
        nonfinite="skip" if seed % 2 else "propagate",
    )
    return params, opt


def grads(seed: int, k: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed * 1000 + k)
    ids = rng.integers(0, 500, size=300)
    return [
        {"big": rng.standard_normal(BIG).astype(np.float32), "small": rng.standard_normal((7, 5))},
        {"emb": adagrad.SparseGrad(ids, rng.standard_normal((300, 16)).astype(np.float32))},
    ]


def train(seed: int, start: threading.Barrier | None = None) -> dict[str, np.ndarray]:
    params, opt = model(seed)
    batches = [grads(seed, k) for k in range(STEPS)]
    if start is not None:
        start.wait()
    for batch in batches:
        opt.step(batch)
    return {**params, **{f"sum {k}": s["sum"] for k, s in opt.state.items()}}


@pytest.mark.parametrize("n_threads", [2, 4])
def test_concurrent_independent_optimizers_match_sequential_runs(n_threads: int, isa: str, threads: int) -> None:
    expected = [train(seed) for seed in range(n_threads)]
    results: list[Any] = [None] * n_threads
    start = threading.Barrier(n_threads)

    def run(seed: int) -> None:
        try:
            results[seed] = train(seed, start)
        except BaseException as error:  # surfaced below
            results[seed] = error

    workers = [threading.Thread(target=run, args=(seed,)) for seed in range(n_threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for seed in range(n_threads):
        assert not isinstance(results[seed], BaseException), results[seed]
        for name, array in expected[seed].items():
            assert_same_bits(results[seed][name], array)


def long_dense_call() -> Callable[[], None]:
    # 2**25 elements: a one-thread step of 2**24 took 6.6 ms on a quiet Zen 4, under the 10 ms the
    # test needs to tell a released GIL from a held one.
    n = 1 << 25
    rng = np.random.default_rng(0)
    p, g, s = (
        rng.standard_normal(n).astype(np.float32),
        rng.standard_normal(n).astype(np.float32),
        np.zeros(n, np.float32),
    )
    return lambda: adagrad.update(p, g, s, step=1) and None


def long_sparse_call() -> Callable[[], None]:
    rng = np.random.default_rng(0)
    table, state = rng.standard_normal((1 << 16, 64)).astype(np.float32), np.zeros((1 << 16, 64), np.float32)
    ids = rng.integers(0, 1 << 16, size=1 << 17)
    values = rng.standard_normal((1 << 17, 64)).astype(np.float32)
    return lambda: adagrad.sparse_update(table, ids, values, state, step=1) and None


@pytest.mark.parametrize("make_call", [long_dense_call, long_sparse_call], ids=["update", "sparse_update"])
def test_the_gil_is_released_during_a_step(make_call: Callable[[], Callable[[], None]]) -> None:
    call = make_call()
    before, switch = adagrad.get_num_threads(), sys.getswitchinterval()
    adagrad.set_num_threads(1)  # the step keeps one core; this thread may have the other
    # The GIL passes between the threads every 0.1 ms while both run Python code: the Python
    # around the native call (after t0, before t1) then lets this thread in for microseconds,
    # not for the default 5 ms slices.
    sys.setswitchinterval(1e-4)
    try:
        call()  # warm up: pages touched, pool started
        span: list[float] = []
        # Both threads running before the call: free-threaded 3.13 returns from Thread.start() only
        # once the new thread leaves a long C call it went straight into (NumPy's own ufuncs too).
        ready = threading.Barrier(2)

        def worker() -> None:
            ready.wait()
            span.append(time.perf_counter())
            call()
            span.append(time.perf_counter())

        thread = threading.Thread(target=worker)
        ticks = [0.0] * 4_000_000  # preallocated: no list growth (a long copy under ASan) in the loop
        count = 0
        thread.start()
        ready.wait()
        while thread.is_alive() and count < len(ticks):
            ticks[count] = time.perf_counter()  # Python code: runs only while this thread has the GIL
            count += 1
        thread.join()
    finally:
        adagrad.set_num_threads(before)
        sys.setswitchinterval(switch)
    t0, t1 = span
    inside = np.array([t0] + [t for t in ticks[:count] if t0 < t < t1] + [t1])
    # With the GIL held for the whole native call, this loop could not run between t0 and t1 (but
    # for the Python around the call: a few 0.1 ms slices at most); released, it runs whenever
    # the OS gives it a core: much of the call is covered by short gaps between its iterations
    # (not all of it on a machine shared with other work: with both cores busy compiling, 18% of a
    # 108 ms step was measured). Held, the slices add up to almost nothing: 0.12-0.14% for a pure C
    # call holding the GIL for 70-100 ms (sum(range(4_000_000))) on the same machine.
    gaps = np.diff(inside)
    covered = gaps[gaps < 1e-3].sum() / (t1 - t0)
    assert t1 - t0 > 0.01, "the call is too short to tell"
    assert covered > 0.05, f"another thread ran during {covered:.0%} of a {1e3 * (t1 - t0):.1f} ms step"


def test_two_threads_stepping_the_same_arrays_is_refused() -> None:
    n = 1 << 23
    p, s = np.zeros(n, np.float32), np.zeros(n, np.float32)
    g = np.ones(n, np.float32)
    started, errors, applied = threading.Barrier(2), [], []  # both running first (see above)

    def long_steps() -> None:
        started.wait()
        t = 1
        while t <= 5:
            try:
                applied.append(adagrad.update(p, g, s, step=t))
                t += 1
            except ValueError:  # the other thread's short step came first: refused before any write, again
                pass

    thread = threading.Thread(target=long_steps)
    thread.start()
    started.wait()
    other = np.ones(16, np.float32)
    deadline = time.monotonic() + 10
    while thread.is_alive() and time.monotonic() < deadline:
        snapshot = (other.copy(), s[:16].copy())
        try:
            adagrad.update(p[:16], other, s[:16], step=1)  # views of the arrays being stepped
        except ValueError as error:
            errors.append(str(error))
            assert_same_bits(other, snapshot[0])
        time.sleep(0.0005)
    thread.join()
    assert applied == [True] * 5
    assert errors, "no concurrent attempt was seen (the other thread's steps were too short?)"
    assert re.match(r"(param|state_sum) is being updated by another thread right now; two threads must not", errors[0])


def test_the_same_arrays_from_two_threads_one_after_the_other_are_fine() -> None:
    p, s, g = np.zeros(1000), np.zeros(1000), np.ones(1000)
    for t in range(1, 4):
        thread = threading.Thread(target=adagrad.update, args=(p, g, s), kwargs={"step": t})
        thread.start()
        thread.join()
    p2, s2 = np.zeros(1000), np.zeros(1000)
    for t in range(1, 4):
        adagrad.reference.update(p2, g, s2, step=t)
    assert_same_bits(p, p2)


class SteppingLr:
    """An lr that, when the native step converts it to a float, first steps another optimizer:
    a step started on this thread while another step's arrays are being gathered."""

    def __init__(self, value: float, inner: Callable[[], None]) -> None:
        self.value, self.inner = value, inner

    def __float__(self) -> float:
        self.inner()
        return self.value


@pytest.mark.parametrize("inner_kind", ["optimizer", "sparse_update", "refused"])
def test_a_step_started_inside_another_steps_validation_leaves_both_exact(inner_kind: str) -> None:
    rng = np.random.default_rng(3)
    outer = [rng.standard_normal(n).astype(np.float32) for n in (5, 300, 7)]
    outer_grads = [rng.standard_normal(a.shape).astype(np.float32) for a in outer]
    inner_param, inner_grad = rng.standard_normal(11), rng.standard_normal(11)
    table, values = rng.standard_normal((20, 4)), rng.standard_normal((3, 4))
    indices = np.array([2, 7, 2])
    expected_outer = [a.copy() for a in outer]
    expected_inner, expected_table = inner_param.copy(), table.copy()

    inner_opt = adagrad.Adagrad([inner_param], lr=0.3)
    state = np.zeros_like(table)

    def inner() -> None:
        if inner_kind == "optimizer":
            inner_opt.step([inner_grad])
        elif inner_kind == "refused":  # a step that gathers its arrays, then refuses one
            with pytest.raises(ValueError, match="shape"):
                inner_opt.step([inner_grad[:5]])
        else:
            adagrad.sparse_update(table, indices, values, state, step=1, lr=0.3)

    # Two groups: the first's arrays are gathered before the second's lr is converted.
    opt = adagrad.Adagrad([{"params": outer[:2]}, {"params": outer[2:], "lr": 0.2}], lr=0.1)
    opt.param_groups[1]["lr"] = SteppingLr(0.2, inner)
    assert opt.step([outer_grads[:2], outer_grads[2:]]) is True

    for i, (p, g) in enumerate(zip(expected_outer, outer_grads)):
        adagrad.reference.update(p, g, np.zeros_like(p), step=1, lr=0.1 if i < 2 else 0.2)
        assert_same_bits(outer[i], p)
    if inner_kind == "refused":
        assert_same_bits(inner_param, expected_inner)
    elif inner_kind == "optimizer":
        adagrad.reference.update(expected_inner, inner_grad, np.zeros(11), step=1, lr=0.3)
        assert_same_bits(inner_param, expected_inner)
    else:
        adagrad.reference.sparse_update(expected_table, indices, values, np.zeros_like(table), step=1, lr=0.3)
        assert_same_bits(table, expected_table)
