"""First dense benchmark: one float32 tensor per step, adagrad vs torch fused vs plain NumPy.

Peers run interleaved (A, B, C, A, B, C, ...) so that machine noise hits them alike; we report
medians. Usage: python bench/bench_dense.py [--repeats N] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

import adagrad

try:
    import torch
except ImportError:  # torch is optional
    torch = None

LR, EPS = 1e-2, 1e-10


def adagrad_step(n: int) -> Callable[[], None]:
    rng = np.random.default_rng(0)
    param, grad = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    opt = adagrad.Adagrad([param], lr=LR, eps=EPS)
    return lambda: opt.step([grad])


def numpy_step(n: int) -> Callable[[], None]:
    """What a NumPy user writes by hand: clear, with temporaries."""
    rng = np.random.default_rng(0)
    param, grad = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    state = np.zeros_like(param)

    def step() -> None:
        state.__iadd__(grad * grad)
        param.__isub__(np.float32(LR) * grad / (np.sqrt(state) + np.float32(EPS)))

    return step


def torch_fused_step(n: int) -> Callable[[], None]:
    assert torch is not None
    param = torch.randn(n, dtype=torch.float32, requires_grad=True)
    param.grad = torch.randn(n, dtype=torch.float32)
    opt = torch.optim.Adagrad([param], lr=LR, eps=EPS, fused=True)
    return opt.step


def measure(cases: dict[str, Callable[[], None]], repeats: int, budget_s: float) -> dict[str, float]:
    """Median seconds per call of each case, interleaved; enough calls per sample to pass 2 ms."""
    for fn in cases.values():
        fn()  # warm up: allocate state, fault pages in
    calls = {}
    for name, fn in cases.items():
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < 0.002:
            fn()
            count += 1
        calls[name] = count
    samples: dict[str, list[float]] = {name: [] for name in cases}
    deadline = time.perf_counter() + budget_s
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / calls[name])
        if time.perf_counter() > deadline:
            break
    return {name: statistics.median(s) for name, s in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=adagrad.get_num_threads())
    args = parser.parse_args()
    adagrad.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(f"adagrad {adagrad.__version__} isa={adagrad.cpu_info()['isa']} threads={args.threads}"
          + (f" torch {torch.__version__}" if torch is not None else " (no torch)"))
    print(f"{'case':>12} {'impl':>12} {'median':>10} {'Gelem/s':>8} {'vs torch':>8} {'vs numpy':>8}")
    for n in (1 << 24, 1 << 16):
        cases = {"adagrad": adagrad_step(n), "numpy": numpy_step(n)}
        if torch is not None:
            cases["torch fused"] = torch_fused_step(n)
        times = measure(cases, args.repeats, budget_s=60)
        for name, t in times.items():
            vs_torch = f"{times['torch fused'] / t:8.2f}" if "torch fused" in times else "       -"
            print(f"{n:>12,} {name:>12} {t * 1e3:8.3f}ms {n / t / 1e9:8.2f} {vs_torch} {times['numpy'] / t:8.2f}")


if __name__ == "__main__":
    main()
