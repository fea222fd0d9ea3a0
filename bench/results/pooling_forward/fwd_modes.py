"""Issue 28's forward, one thread, 1M x 32 table, 256 bags x 16 Zipf ids (train-embbag-1Mx32):
adagrad.torch.EmbeddingBag against nn.EmbeddingBag under torch.no_grad, per mode (sum, mean, sum
with per_sample_weights), with the native pooling call alone and F.embedding_bag beside; every
contender timed in turn within each round (interleaved), medians and minima of the rounds, us per call."""

import os
import sys
import time

import numpy as np
import torch
from torch import nn

import adagrad
import adagrad.torch as at
from adagrad import _core
from adagrad.benchmarks.cases import zipf_row_batches
from adagrad.torch import embedding_bag as eb

torch.set_num_threads(1)
adagrad.set_num_threads(1)
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 31
rows, dim, B, L = 1 << 20, 32, 256, 16
ids = [torch.from_numpy(x) for x in zipf_row_batches(rows, B * L, 8, 0)]
offs = torch.arange(0, B * L, L)
psw = [torch.rand(B * L) for _ in range(8)]
w = torch.randn(rows, dim)
print(f"load {os.getloadavg()[0]:.1f}, isa {adagrad.cpu_info()['isa']}")
for mode, weighted in (("sum", False), ("mean", False), ("sum", True)):
    ours = at.EmbeddingBag(rows, dim, mode=mode, _weight=w)
    theirs = nn.EmbeddingBag(rows, dim, mode=mode, _weight=w)
    out = np.empty((B, dim), np.float32)
    recs = []
    for i in range(8):
        bags = eb._checked_bags(ours, w, ids[i], offs, psw[i] if weighted else None)
        recs.append(
            {
                "table": w.numpy(),
                "ids": bags.id_array,
                "offsets": bags.bounds,
                "weights": psw[i].numpy() if weighted else None,
                "fused_weights": True,
                "padding_idx": -1,
                "mean": mode == "mean",
                "out": out,
            }
        )
    calls = {
        "ours": lambda i: ours(ids[i], offs, psw[i] if weighted else None),
        "nn.EmbeddingBag": lambda i: theirs(ids[i], offs, per_sample_weights=psw[i] if weighted else None),
        "F.embedding_bag": lambda i: nn.functional.embedding_bag(
            ids[i], w, offs, mode=mode, per_sample_weights=psw[i] if weighted else None
        ),
        "native pool": lambda i: _core.embedding_bag_pool(recs[i]),
    }
    t = {k: [] for k in calls}
    with torch.no_grad():
        for i in range(8):
            assert torch.equal(calls["ours"](i), calls["nn.EmbeddingBag"](i))
        for r in range(rounds):
            for k, f in calls.items():
                s = time.perf_counter()
                for i in range(40):
                    f(i % 8)
                t[k].append((time.perf_counter() - s) / 40 * 1e6)
    label = mode + (" +psw" if weighted else "")
    for stat, fn in (("median", np.median), ("min", np.min)):
        med = {k: float(fn(v)) for k, v in t.items()}
        print(
            f"{label:9s} {stat:6s} "
            + ", ".join(f"{k} {v:.1f}" for k, v in med.items())
            + f"; nn/ours {med['nn.EmbeddingBag'] / med['ours']:.2f}"
        )
print(f"load {os.getloadavg()[0]:.1f}")
