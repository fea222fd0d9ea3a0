"""Issue 28's bigger batch: 1M x 64 table, batch 2,048 bags of 32 Zipf ids, one thread; the table
alone (the loss: sum of the pooled rows times a fixed gradient), interleaved medians."""

import time

import numpy as np
import torch
from torch import nn

import adagrad
import adagrad.torch as at
from adagrad.benchmarks.cases import zipf_row_batches

torch.set_num_threads(1)
adagrad.set_num_threads(1)
rows, dim, B, L = 1 << 20, 64, 2048, 32
ids = [torch.from_numpy(x) for x in zipf_row_batches(rows, B * L, 4, 0)]
offs = torch.arange(0, B * L, L)
w = torch.randn(rows, dim)
g = torch.randn(B, dim) * 1e-3
plain = nn.EmbeddingBag(rows, dim, mode="sum", sparse=True, _weight=w.clone())
opt = at.Adagrad(plain.parameters(), lr=0.01)
plain_rw = nn.EmbeddingBag(rows, dim, mode="sum", sparse=True, _weight=w.clone())
opt_rw = at.Adagrad(plain_rw.parameters(), lr=0.01, rowwise=True)
fused = at.EmbeddingBag(rows, dim, mode="sum", _weight=w.clone(), lr=0.01)
fused_rw = at.EmbeddingBag(rows, dim, mode="sum", _weight=w.clone(), lr=0.01, rowwise=True)


def unfused(m, o):
    def f(i):
        o.zero_grad()
        m(ids[i % 4], offs).backward(g)
        o.step()

    return f


def fusedf(m):
    return lambda i: m(ids[i % 4], offs).backward(g)


peers = {
    "unfused": unfused(plain, opt),
    "fused": fusedf(fused),
    "unfused rowwise": unfused(plain_rw, opt_rw),
    "fused rowwise": fusedf(fused_rw),
}
t = {k: [] for k in peers}
for k, f in peers.items():
    for i in range(4):
        f(i)
for r in range(11):
    for k, f in peers.items():
        s = time.perf_counter()
        for i in range(4):
            f(i)
        t[k].append((time.perf_counter() - s) / 4)
m = {k: np.median(v) * 1e3 for k, v in t.items()}
for k in peers:
    print(f"{k:16s} {m[k]:.2f} ms")
print(
    "unfused / fused",
    round(m["unfused"] / m["fused"], 2),
    "rowwise",
    round(m["unfused rowwise"] / m["fused rowwise"], 2),
)
