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


def rules(rng: np.random.Generator, n: int, dtype: type, **transforms: object) -> None:
    """Proximal Adagrad, Adagrad-DA, AdagradDecay and FTRL, dense and sparse, against the reference; with
    `transforms` (the loss scale, a clip, maximize, stochastic rounding) added to every call."""
    p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    a, s, k = rng.standard_normal(n).astype(dtype), np.full(n, 0.1, dtype), np.zeros(1, np.int64)
    for name, states, options in (
        ("proximal_update", [s], {"lr": 0.1, "l1": 0.05, "l2": 0.1}),
        ("da_update", [a, s], {"step": 3, "lr": 0.1, "l1": 0.05, "l2": 0.1}),
        ("decay_update", [s, k], {"step": 4, "lr": 0.1, "accumulator_decay_step": 2}),
        ("ftrl_update", [s.copy(), a.copy()], {"lr": 0.1, "l1": 0.05, "l2_shrinkage": 0.1}),
        ("ftrl_update", [s.copy(), a.copy()], {"lr": 0.1, "lr_power": -0.7, "multiply_linear_by_lr": True}),
    ):
        p2, states2 = p.copy(), [x.copy() for x in states]
        getattr(adagrad, name)(p, g, *states, **options, **transforms)
        getattr(adagrad.reference, name)(p2, g, *states2, **options, **transforms)
        check(same(p, p2) and all(same(x, y) for x, y in zip(states, states2)), f"{name} n={n} {dtype.__name__}")
    table, ids = rng.standard_normal((40, 19)).astype(dtype), rng.integers(0, 40, size=300)
    values = rng.standard_normal((300, 19)).astype(dtype)
    for duplicates in ("sum", "sequential"):
        for name, states, options in (
            ("sparse_proximal_update", [np.full((40, 19), 0.1, dtype)], {"lr": 0.1, "l1": 0.05}),
            ("sparse_da_update", [np.zeros((40, 19), dtype), np.full((40, 19), 0.1, dtype)], {"step": 2, "lr": 0.1}),
            (
                "sparse_decay_update",
                [np.full((40, 19), 0.1, dtype), np.zeros(40, np.int64)],
                {"step": 5, "lr": 0.1, "accumulator_decay_step": 2},
            ),
            ("sparse_ftrl_update", [np.full((40, 19), 0.1, dtype), np.zeros((40, 19), dtype)], {"lr": 0.1, "l1": 0.05}),
        ):
            t2, states2 = table.copy(), [x.copy() for x in states]
            getattr(adagrad, name)(table, ids, values, *states, duplicates=duplicates, **options, **transforms)
            getattr(adagrad.reference, name)(t2, ids, values, *states2, duplicates=duplicates, **options, **transforms)
            check(same(table, t2) and all(same(x, y) for x, y in zip(states, states2)), f"{name} {duplicates}")


def half(rng: np.random.Generator, n: int, state_float32: bool) -> None:
    """float16 (and, with ml_dtypes, bfloat16) params, their own or float32 sums, against the reference."""
    dtypes: list[object] = [np.float16]
    try:
        import ml_dtypes

        dtypes.append(ml_dtypes.bfloat16)
    except ImportError:
        pass
    for dtype in dtypes:
        p, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
        s = np.abs(rng.standard_normal(n)).astype(np.float32 if state_float32 else dtype)
        for sr in ({}, {"stochastic_rounding": True, "seed": n}):
            p2, s2 = p.copy(), s.copy()
            adagrad.update(p, g, s, step=2, lr=0.1, weight_decay=0.1, grad_scale=3.0, **sr)
            adagrad.reference.update(p2, g, s2, step=2, lr=0.1, weight_decay=0.1, grad_scale=3.0, **sr)
            what = f"16-bit update n={n} {np.dtype(dtype).name} {sr} float32 state={state_float32}"
            check(same(p, p2) and same(s, s2), what)
        rounded = np.zeros(n, dtype)
        _core._stochastic_round(g.astype(np.float32), rounded, 2**32 - 3, 1, 2, 3)  # lanes across 2**32 too
        if n:
            check(adagrad.update(p, np.full_like(g, np.inf), s, step=3, nonfinite="skip") is False, "16-bit skip")
        for rowwise in (False, True):
            table = rng.standard_normal((40, 19)).astype(dtype)
            state = np.zeros(40 if rowwise else (40, 19), np.float32 if state_float32 else dtype)
            ids = rng.integers(0, 40, size=max(n, 1) % 300 + 1)
            values = rng.standard_normal((ids.size, 19)).astype(dtype)
            for duplicates, sr in (("sum", False), ("sequential", False), ("sum", True), ("sequential", True)):
                t2, s2 = table.copy(), state.copy()
                options = {"step": 1, "duplicates": duplicates, "weight_decay": 0.01, "stochastic_rounding": sr}
                adagrad.sparse_update(table, ids, values, state, **options)
                adagrad.reference.sparse_update(t2, ids, values, s2, **options)
                check(same(table, t2) and same(state, s2), f"16-bit sparse rowwise={rowwise} {duplicates} sr={sr}")


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
        # Two threads on the widest ISA only: the pool's code is the same for every ISA.
        thread_counts = (1, 2) if isa == info["available"][-1] else (1,)
        for threads in thread_counts:
            adagrad.set_num_threads(threads)
            for n in (0, 1, 7, 9, 33):
                for dtype in (np.float32, np.float64):
                    dense(rng, n, dtype, lr=0.1, weight_decay=0.1, maximize=True, grad_scale=3.0)
            dense(rng, big, np.float32, lr_decay=0.1)
            dense(rng, big, np.float64, eps_inside_sqrt=True, weight_decay=0.2, decoupled_weight_decay=True)
            for rowwise in (False, True):
                for duplicates in ("sum", "sequential"):
                    sparse(rng, rowwise, duplicates, weight_decay=0.01, grad_scale=2.0)
            for n in (0, 1, 9, 33, big):
                half(rng, n, state_float32=n % 2 == 1)
            if threads == thread_counts[-1]:  # the other rules once per ISA: small calls run inline anyway
                for n in (0, 1, 9, 33):
                    rules(rng, n, np.float32 if n % 2 else np.float64)
                rules(rng, big, np.float32)
                # Every transform, and a 16-bit param, for every rule (runtime switches of one kernel body).
                every = {"grad_scale": 3.0, "clip_value": 0.5, "maximize": True}
                rules(rng, 33, np.float64, **every)
                rules(rng, 33, np.float16, **every, stochastic_rounding=True, seed=1)
                rules(rng, 9, np.float16, max_grad_norm=1.0)

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
    # The other rules' optimizers: one native step over dense and sparse grads each.
    for cls in (adagrad.ProximalAdagrad, adagrad.AdagradDA, adagrad.AdagradDecay, adagrad.Ftrl):
        rule_params = {"w": rng.standard_normal(big).astype(np.float32), "emb": rng.standard_normal((50, 8))}
        rule_opt = cls(rule_params, lr=0.1)
        rule_grads = {"w": rng.standard_normal(big).astype(np.float32), "emb": (np.array([1, 4, 1]), np.ones((3, 8)))}
        check(rule_opt.step(rule_grads) is True, f"{cls.__name__} step")

    # Refused input: every validation path, nothing written.
    p = np.zeros(5, np.float32)
    refused(lambda: adagrad.update(p, p, np.zeros(5, np.float32), step=1), "aliasing")
    refused(lambda: adagrad.update(p, np.zeros(5), np.zeros(5, np.float32), step=1), "dtype")
    refused(lambda: adagrad.update(p, np.zeros(10, np.float32)[::2], np.zeros(5, np.float32), step=1), "strided")
    refused(lambda: adagrad.update(p, np.zeros(5, np.float32), np.zeros(5, np.float32), step=0), "step")
    refused(lambda: adagrad.update(p, np.zeros(5, np.float32), np.zeros(5, np.float32), step=1, lr=-1), "lr")
    refused(lambda: adagrad.update(p, np.zeros(5, np.float32), np.zeros(5, np.float32), step=1, grad_scale=0), "scale")
    refused(
        lambda: adagrad.sparse_update(
            p.reshape(5, 1), np.array([9]), np.zeros((1, 1), np.float32), p.reshape(5, 1) * 0, step=1
        ),
        "index",
    )
    refused(lambda: adagrad.Adagrad([p, p]), "shared params")
    refused(lambda: adagrad.da_update(p, np.zeros(5, np.float32), p, np.zeros(5, np.float32), step=1, lr=0.1), "alias")
    refused(
        lambda: adagrad.sparse_decay_update(
            p.reshape(5, 1),
            np.array([1]),
            np.zeros((1, 1), np.float32),
            np.ones((5, 1), np.float32),
            np.zeros(4, np.int64),
            step=1,
            lr=0.1,
        ),
        "decay counts",
    )
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
