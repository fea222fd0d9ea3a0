import sys
import time

import numpy as np
import torch

import adagrad
from adagrad.benchmarks import training as tr
from adagrad.benchmarks.cases import training_cases

n = int(sys.argv[1])
torch.set_num_threads(n)
adagrad.set_num_threads(n)
case = [c for c in training_cases() if c.name == "train-embbag-1Mx32"][0]
loops = tr.training_peers(case)
names = ["adagrad", "adagrad fused", "adagrad rowwise", "adagrad fused rowwise", "fbgemm TBE", "fbgemm TBE rowwise"]
times = {k: [] for k in names}
for k in names:
    for _ in range(20):
        loops[k]()
for r in range(15):
    for k in names:
        s = time.perf_counter()
        for _ in range(20):
            loops[k]()
        times[k].append((time.perf_counter() - s) / 20)
med = {k: np.median(v) * 1e6 for k, v in times.items()}
for k in names:
    print(
        f"{n} thr {k:24s} {med[k]:8.0f} us  (p25 {np.percentile(times[k], 25) * 1e6:.0f}, p75 {np.percentile(times[k], 75) * 1e6:.0f})"
    )
print(
    "fused vs unfused",
    med["adagrad"] / med["adagrad fused"],
    "rowwise",
    med["adagrad rowwise"] / med["adagrad fused rowwise"],
)
print(
    "TBE / fused",
    med["fbgemm TBE"] / med["adagrad fused"],
    "TBE rowwise / fused rowwise",
    med["fbgemm TBE rowwise"] / med["adagrad fused rowwise"],
)
