"""train-ebc-8x256Kx64's tables alone, one thread: forward (no grad) and forward + backward (the
fused update inside) of the fused collection against FBGEMM's TBE, both modes; medians of
interleaved rounds. Run with PYTHONPATH=python from the worktree root."""

import statistics
import time

import torch

import adagrad
from adagrad.benchmarks import training
from adagrad.benchmarks.cases import training_cases

torch.set_num_threads(1)
adagrad.set_num_threads(1)
case = next(c for c in training_cases() if c.name == "train-ebc-8x256Kx64")
batches = training.make_batches(case)
peers = {}
for rowwise in (False, True):
    like = training.build_model(case)
    peers[f"fused{' rowwise' if rowwise else ''}"] = training.FusedCollectionRanker(like, rowwise).bags
    like = training.build_model(case)
    peers[f"TBE{' rowwise' if rowwise else ''}"] = training.TbeCollectionRanker(like, rowwise).bag
grad = torch.randn(case.batch, case.tables * case.dim)


def forward(module, ids, offsets):
    out = module(ids, offsets)
    return torch.cat(list(out.values()), dim=1) if isinstance(out, dict) else out


times = {(name, phase): [] for name in peers for phase in ("forward", "forward+backward")}
for r in range(7):
    for name, module in peers.items():
        (ids, offsets), _ = batches[r % len(batches)]
        with torch.no_grad():
            start = time.perf_counter()
            forward(module, ids, offsets)
            times[name, "forward"].append(time.perf_counter() - start)
        start = time.perf_counter()
        forward(module, ids, offsets).backward(grad)
        times[name, "forward+backward"].append(time.perf_counter() - start)
for (name, phase), values in times.items():
    print(f"{name:14s} {phase:17s} {statistics.median(values) * 1e3:7.2f} ms")
