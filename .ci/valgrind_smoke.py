"""A short run of every native entry point, for valgrind memcheck (.ci/sanitize valgrind).

Small arrays (memcheck runs ~50x slower), but every path: each instruction set available, one and
two threads (the pool), vector bodies and scalar tails, dense and sparse (element-wise and
row-wise, both duplicate modes), loss scaling, the non-finite pre-pass (skip and raise), every
kind of refused input, checkpoints, and the concurrent-step guard. Exits non-zero if a result
differs from the NumPy reference.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading

import numpy as np

import adagrad
from adagrad import _core


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.tobytes() == b.tobytes()


def check(condition: bool, what: str) -> None:
    if not condition:
        print(f"valgrind smoke: FAILED: {what}")
        sys.exit(1)


def dense(rng: np.random.Generator, n: int, dtype: type, **options: object) -> None:
    p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    s = np.abs(rng.standard_normal(n)).astype(dtype)
    p2, s2 = p.copy(), s.copy()
    adagrad.update(p, g, s, step=2, **options)
    adagrad.reference.update(p2, g, s2, step=2, **options)
    check(same(p, p2) and same(s, s2), f"update n={n} {dtype.__name__} {options}")


def sparse(rng: np.random.Generator, rowwise: bool, duplicates: str, **options: object) -> None:
    table = rng.standard_normal((40, 19)).astype(np.float32)
    state = np.zeros(40 if rowwise else (40, 19), np.float32)
    ids = rng.integers(0, 40, size=300).astype(np.int32)
    values = rng.standard_normal((300, 19)).astype(np.float32)
    t2, s2 = table.copy(), state.copy()
    adagrad.sparse_update(table, ids, values, state, step=1, duplicates=duplicates, **options)
    adagrad.reference.sparse_update(t2, ids, values, s2, step=1, duplicates=duplicates, **options)
    check(same(table, t2) and same(state, s2), f"sparse rowwise={rowwise} {duplicates} {options}")


def refused(call: object, what: str) -> None:
    try:
        call()  # type: ignore[operator]
    except (TypeError, ValueError):
        return
    check(False, f"{what} was accepted")


def main() -> None:
    rng = np.random.default_rng(0)
    info = adagrad.cpu_info()
    print("valgrind smoke:", info["isa"], info["available"], flush=True)
    big = info["parallel_threshold"] + 37  # over the threshold: the thread pool runs
    for isa in info["available"]:
        adagrad.set_isa(isa)
        for threads in (1, 2):
            adagrad.set_num_threads(threads)
            for n in (0, 1, 7, 9, 33):
                for dtype in (np.float32, np.float64):
                    dense(rng, n, dtype, lr=0.1, weight_decay=0.1, maximize=True, grad_scale=3.0)
            dense(rng, big, np.float32, lr_decay=0.1)
            dense(rng, big, np.float64, eps_inside_sqrt=True, weight_decay=0.2, decoupled_weight_decay=True)
            for rowwise in (False, True):
                for duplicates in ("sum", "sequential"):
                    sparse(rng, rowwise, duplicates, weight_decay=0.01, grad_scale=2.0)

    adagrad.set_num_threads(2)
    # The optimizer: mixed groups, the non-finite pre-pass (skip, raise), checkpoints.
    params = {"w": rng.standard_normal(big).astype(np.float32), "emb": rng.standard_normal((50, 8))}
    opt = adagrad.Adagrad([{"params": {"w": params["w"]}}, {"params": {"emb": params["emb"]}, "rowwise": True}])
    grads = [{"w": rng.standard_normal(big).astype(np.float32)}, {"emb": (np.array([1, 4, 1]), np.ones((3, 8)))}]
    check(opt.step(grads) is True, "step")
    opt.nonfinite = "skip"
    grads[0]["w"][big - 1] = np.nan
    check(opt.step(grads) is False, "skip")
    opt.nonfinite = "raise"
    try:
        opt.step(grads)
        check(False, "raise")
    except adagrad.NonFiniteGradError:
        pass
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "c.npz")
        opt.save(path, params=True)
        opt.load(path)

    # Refused input: every validation path, nothing written.
    p = np.zeros(5, np.float32)
    refused(lambda: adagrad.update(p, p, np.zeros(5, np.float32), step=1), "aliasing")
    refused(lambda: adagrad.update(p, np.zeros(5), np.zeros(5, np.float32), step=1), "dtype")
    refused(lambda: adagrad.update(p, np.zeros(10, np.float32)[::2], np.zeros(5, np.float32), step=1), "strided")
    refused(lambda: adagrad.update(p, np.zeros(5, np.float32), np.zeros(5, np.float32), step=0), "step")
    refused(lambda: adagrad.update(p, np.zeros(5, np.float32), np.zeros(5, np.float32), step=1, lr=-1), "lr")
    refused(lambda: adagrad.update(p, np.zeros(5, np.float32), np.zeros(5, np.float32), step=1, grad_scale=0), "scale")
    refused(
        lambda: adagrad.sparse_update(p.reshape(5, 1), np.array([9]), np.zeros((1, 1), np.float32), p.reshape(5, 1) * 0, step=1),
        "index",
    )
    refused(lambda: adagrad.Adagrad([p, p]), "shared params")
    check(not p.any(), "a refused call wrote")

    # The concurrent-step guard: two threads on the same arrays.
    n = 1 << 20
    a, b, g = np.zeros(n, np.float32), np.zeros(n, np.float32), np.ones(n, np.float32)
    worker = threading.Thread(target=lambda: [adagrad.update(a, g, b, step=t) for t in (1, 2, 3)])
    worker.start()
    while worker.is_alive():
        try:
            adagrad.update(a[:8], g[:8], b[:8], step=1)
        except ValueError:
            pass
    worker.join()
    _core.stream_ceiling([a], [g], [b])
    print("valgrind smoke: all results equal the reference", flush=True)


if __name__ == "__main__":
    main()
