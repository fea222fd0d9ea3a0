"""The kernel-only cost of each switch of a step (docs/speed.md, "Switches as branches").

Runs under whichever adagrad is importable, so two builds compare in alternating processes:

    python bench/switches.py measure OUT.json     # one thread; ns per element / per occurrence
    python bench/switches.py compare OLD1.json ... -- NEW1.json ...

Dense: `update` over 64K (cache-resident) and 4M (memory-bound) elements, the cost of a
64-element call taken out; best of 15 rounds. Sparse: `sparse_update` of 8,192 Zipf(1.2) ids into a
1M x 64 and a 16K x 64 float32 table (allocated first), best of 15 rounds of 30 steps. Only the
public API of every release since the single-call functions took keyword options.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from functools import partial
from typing import Any, Callable

import numpy as np

import adagrad

SWITCHES: dict[str, dict[str, Any]] = {
    "plain": {},
    "wd": {"weight_decay": 0.01},
    "dwd": {"weight_decay": 0.01, "decoupled_weight_decay": True},
    "max": {"maximize": True},
    "inside": {"eps_inside_sqrt": True},
    "scale": {"grad_scale": 3.0},
    "clip": {"clip_value": 0.5},
}
SPARSE_SWITCHES = ("plain", "max", "wd", "dwd", "inside")


def best(call: Callable[[], object], reps: int, rounds: int = 15) -> float:
    """Seconds per call, the best round's mean."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            call()
        times.append((time.perf_counter() - start) / reps)
    return min(times)


def dense(out: dict[str, float]) -> None:
    rng = np.random.default_rng(0)
    dtypes = [(np.float32, "f32"), (np.float64, "f64")]
    try:
        import ml_dtypes

        dtypes += [(np.float16, "f16"), (ml_dtypes.bfloat16, "bf16")]
    except ImportError:
        dtypes.append((np.float16, "f16"))

    def arrays(n: int, dtype: Any) -> tuple[np.ndarray, ...]:
        p = rng.standard_normal(n).astype(dtype)
        return p, (rng.standard_normal(n) * 0.1).astype(dtype), (0.1 + rng.random(n)).astype(dtype)

    for n, size in ((1 << 16, "64K"), (1 << 22, "4M")):
        for dtype, name in dtypes:
            small, big = arrays(64, dtype), arrays(n, dtype)
            for switch, options in SWITCHES.items():
                if np.dtype(dtype).itemsize == 2 and switch not in ("plain", "wd"):
                    continue
                per_call = best(partial(adagrad.update, *small, step=1, lr=1e-6, **options), 2000)
                t = best(partial(adagrad.update, *big, step=1, lr=1e-6, **options), max(3, (1 << 23) // n))
                out[f"dense-{name}-{size}-{switch}"] = (t - per_call) / n * 1e9


def sparse(out: dict[str, float]) -> None:
    k, dim = 8192, 64
    for rows, size in ((1 << 20, "1M"), (1 << 14, "16K")):
        table = adagrad.aligned_zeros((rows, dim))
        table += 0.01
        state = adagrad.aligned_zeros((rows, dim))
        state += 0.1
        rng = np.random.default_rng(1)
        ids = (rng.zipf(1.2, size=k) % rows).astype(np.int64)
        values = (rng.standard_normal((k, dim)) * 0.1).astype(np.float32)
        for switch in SPARSE_SWITCHES:
            for mode in ("sum", "sequential"):
                options = dict(SWITCHES[switch], duplicates=mode)
                call = partial(adagrad.sparse_update, table, ids, values, state, step=1, lr=1e-6, **options)
                out[f"sparse-{size}x64-{switch}-{mode}"] = best(call, 30) / k * 1e9


def load(path: str) -> dict[str, float]:
    with open(path) as f:
        return dict(json.load(f))


def compare(old_files: list[str], new_files: list[str]) -> None:
    old, new = [load(f) for f in old_files], [load(f) for f in new_files]
    for key in old[0]:
        if not all(key in run for run in old + new):
            continue
        ratios = sorted(b[key] / a[key] for a, b in zip(old, new))
        print(
            f"{key:30s} old {statistics.median(a[key] for a in old):7.3f}"
            f"  new {statistics.median(b[key] for b in new):7.3f}"
            f"  new/old median {statistics.median(ratios):.2f}  rounds {' '.join(f'{r:.2f}' for r in ratios)}"
        )


def main(argv: list[str]) -> None:
    if argv[:1] == ["measure"] and len(argv) == 2:
        adagrad.set_num_threads(1)
        out: dict[str, float] = {}
        sparse(out)  # first: its big tables placed before the dense arrays come and go
        dense(out)
        with open(argv[1], "w") as f:
            json.dump(out, f, indent=1)
    elif argv[:1] == ["compare"] and "--" in argv:
        split = argv.index("--")
        compare(argv[1:split], argv[split + 1 :])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
