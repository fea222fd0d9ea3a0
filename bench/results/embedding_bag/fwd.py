import sys
import time

import numpy as np
import torch
from torch import nn

import adagrad
import adagrad.torch as at
from adagrad.benchmarks.cases import zipf_row_batches

n = int(sys.argv[1])
torch.set_num_threads(n)
adagrad.set_num_threads(n)
for rows, dim, B, L in [(1 << 20, 32, 256, 16), (1 << 20, 64, 2048, 32)]:
    ids = [torch.from_numpy(x) for x in zipf_row_batches(rows, B * L, 8, 0)]
    offs = torch.arange(0, B * L, L)
    w = torch.randn(rows, dim)
    ours = at.EmbeddingBag(rows, dim, mode="sum", _weight=w)
    theirs = nn.EmbeddingBag(rows, dim, mode="sum", _weight=w)
    t = {"ours": [], "torch": []}
    with torch.no_grad():
        assert torch.equal(ours(ids[0], offs), theirs(ids[0], offs))
        for r in range(15):
            for name, m in (("ours", ours), ("torch", theirs)):
                s = time.perf_counter()
                for i in range(20):
                    m(ids[i % 8], offs)
                t[name].append((time.perf_counter() - s) / 20)
    mo, mt = np.median(t["ours"]) * 1e6, np.median(t["torch"]) * 1e6
    print(
        f"{n} thr {rows}x{dim} batch {B}x{L}: ours {mo:.0f} us, nn.EmbeddingBag {mt:.0f} us, torch/ours {mt / mo:.2f}"
    )
