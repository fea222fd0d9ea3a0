"""Issue 28's multi-table size, 8 tables of 1M x 64, for the row-wise pair alone (two peers' tables
and state fit this shared VM; five do not): train-ebc-8x256Kx64's step with 1M-row tables, fused
row-wise collection against FBGEMM TBE row-wise, 1 thread, 9 interleaved rounds. Run with
PYTHONPATH=python from the worktree root."""

import dataclasses
import gc

import adagrad
import torch
from adagrad.benchmarks import peers, training
from adagrad.benchmarks.cases import training_cases
from adagrad.benchmarks.peers import EPS, LR
from adagrad.benchmarks.timing import interleaved_split_medians

peers.set_threads(1)
base = next(c for c in training_cases() if c.name == "train-ebc-8x256Kx64")
case = dataclasses.replace(base, name="train-ebc-8x1Mx64", rows=1 << 20)
batches = training.make_batches(case)
loops = {}
like = training.build_model(case)
fused = training.FusedCollectionRanker(like, rowwise=True)
del like
gc.collect()
loops["adagrad fused rowwise"] = training.TrainingLoop(
    fused, adagrad.torch.Adagrad(fused.head.parameters(), lr=LR, eps=EPS), batches
)
like = training.build_model(case)
tbe = training.TbeCollectionRanker(like, rowwise=True)
del like
gc.collect()
loops["fbgemm TBE rowwise"] = training.TrainingLoop(
    tbe, torch.optim.Adagrad(tbe.head.parameters(), lr=LR, eps=EPS, fused=True), batches
)
split = interleaved_split_medians({name: (loop, loop.clock) for name, loop in loops.items()}, 9)
for name, (step, _) in split.items():
    print(f"{case.name} 1 thr {name:22s} {step * 1e3:7.2f} ms")
print(f"TBE rowwise / fused rowwise: {split['fbgemm TBE rowwise'][0] / split['adagrad fused rowwise'][0]:.2f}")
