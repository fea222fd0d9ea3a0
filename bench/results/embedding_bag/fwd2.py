import time

import numpy as np
import torch

import adagrad
import adagrad.torch as at
from adagrad import _core
from adagrad.benchmarks.cases import zipf_row_batches
from adagrad.torch.embedding_bag import _checked_bags

torch.set_num_threads(1)
adagrad.set_num_threads(1)
rows, dim, B, L = 1 << 20, 32, 256, 16
ids = [torch.from_numpy(x) for x in zipf_row_batches(rows, B * L, 8, 0)]
offs = torch.arange(0, B * L, L)
m = at.EmbeddingBag(rows, dim, mode="sum")


def t(f, n=300):
    xs = []
    for i in range(n):
        s = time.perf_counter()
        f(i)
        xs.append(time.perf_counter() - s)
    return round(np.median(xs) * 1e6, 1)


print("checks", t(lambda i: _checked_bags(m, ids[i % 8], offs, None)))
bs = [_checked_bags(m, ids[i], offs, None) for i in range(8)]
out = np.empty((B, dim), np.float32)
W = m.weight.detach().numpy()
rec = [
    {
        "table": W,
        "ids": b.ids.numpy(),
        "offsets": b.bounds,
        "weights": None,
        "fused_weights": True,
        "padding_idx": -1,
        "mean": False,
        "out": out,
    }
    for b in bs
]
print("native", t(lambda i: _core.embedding_bag_pool(rec[i % 8])))
rec1 = [dict(r, offsets=np.array([0, 1], np.int64), ids=r["ids"][:1], out=out[:1]) for r in rec]
print("native 1 id", t(lambda i: _core.embedding_bag_pool(rec1[i % 8])))
with torch.no_grad():
    print("module", t(lambda i: m(ids[i % 8], offs)))
