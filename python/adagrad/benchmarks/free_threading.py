"""What free-threaded Python buys: two Python threads, each training its own small model, against
one thread training both, one after the other.

A model is one float32 param of the dense cases' small sizes (1K-f32, 64K-f32: cases.py) with an
``adagrad.Adagrad``; one training step is its grad (``param - target``, a NumPy ufunc) and
``opt.step``. ``adagrad.set_num_threads(1)``: each step runs on its own Python thread alone. With the
GIL, the threads overlap only in the parts that release it (the native step, NumPy's loop); without
it (a free-threaded build, ``PYTHON_GIL=0``) in everything. Run it under each interpreter::

    python -m adagrad.benchmarks.free_threading --out ft.json
    PYTHON_GIL=1 python -m adagrad.benchmarks.free_threading --out gil.json  # the same build, GIL on

Rounds interleave the two ways; each figure is the median over the rounds.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import sysconfig
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import adagrad

from .cases import single

ROUND_S = 0.1  # the calibrated length of one serial round (both models, one after the other)


class Model:
    """One param, its target and grad buffer, and its optimizer."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.param = rng.standard_normal(n).astype(np.float32)
        self.target = rng.standard_normal(n).astype(np.float32)
        self.grad = np.empty_like(self.param)
        self.opt = adagrad.Adagrad([self.param], lr=0.01)

    def train(self, steps: int) -> None:
        for _ in range(steps):
            np.subtract(self.param, self.target, out=self.grad)
            self.opt.step([self.grad])


def serial(models: Sequence[Model], steps: int) -> float:
    start = time.perf_counter()
    for model in models:
        model.train(steps)
    return time.perf_counter() - start


def threaded(models: Sequence[Model], steps: int) -> float:
    """Seconds from the moment every thread may start until the last one is done."""
    ready = threading.Barrier(len(models) + 1)

    def run(model: Model) -> None:
        ready.wait()
        model.train(steps)

    threads = [threading.Thread(target=run, args=(m,)) for m in models]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def measure(n: int, rounds: int, n_models: int = 2) -> dict[str, Any]:
    models = [Model(n, seed) for seed in range(n_models)]
    steps = 100
    while serial(models, steps) < ROUND_S / 4:  # calibrate (and warm up)
        steps *= 2
    steps = max(1, int(steps * ROUND_S / max(serial(models, steps), 1e-9)))
    serial_s, threaded_s = [], []
    for _ in range(rounds):
        serial_s.append(serial(models, steps))
        threaded_s.append(threaded(models, steps))
    one, two = statistics.median(serial_s), statistics.median(threaded_s)
    return {
        "case": single(n, np.float32).name,
        "models": n_models,
        "steps_per_model": steps,
        "serial_us_per_step": one / (steps * n_models) * 1e6,
        "threads_us_per_step": two / (steps * n_models) * 1e6,
        "speedup": one / two,
        "serial_rounds_s": serial_s,
        "threads_rounds_s": threaded_s,
    }


def describe_interpreter() -> dict[str, Any]:
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    return {
        "python": platform.python_version(),
        "free_threaded_build": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": gil,
        "isa": adagrad.cpu_info()["isa"],
        "adagrad_threads": adagrad.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per case (default 9)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    adagrad.set_num_threads(1)
    report = {**describe_interpreter(), "cases": [measure(n, args.rounds) for n in (1 << 10, 1 << 16)]}
    build = "free-threaded build" if report["free_threaded_build"] else "GIL build"
    print(f"Python {report['python']} ({build}, GIL {'on' if report['gil_enabled'] else 'off'})")
    print(f"{'case':<10} {'one thread, us/step':>20} {'two threads, us/step':>21} {'speed-up':>9}")
    for row in report["cases"]:
        print(
            f"{row['case']:<10} {row['serial_us_per_step']:>20.2f} {row['threads_us_per_step']:>21.2f} "
            f"{row['speedup']:>8.2f}x"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
