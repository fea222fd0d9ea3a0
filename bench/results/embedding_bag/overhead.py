"""Where a small forward's time goes (1M x 32 table, 256 bags x 16 ids, one thread): the module call,
its checks, the pooling call and the native pooling alone, against F.embedding_bag; best of 7."""

import timeit

import torch

import adagrad
import adagrad.torch as at
from adagrad import _core
from adagrad.benchmarks.cases import zipf_row_batches
from adagrad.torch import embedding_bag as eb

torch.set_num_threads(1)
adagrad.set_num_threads(1)
rows, dim, B, L = 1 << 20, 32, 256, 16
x = torch.from_numpy(zipf_row_batches(rows, B * L, 1, 0)[0])
offs = torch.arange(0, B * L, L)
m = at.EmbeddingBag(rows, dim, mode="sum", lr=0.05)
bags = eb._checked_bags(m, x, offs, None)
out = torch.empty(B, dim)
rec = {
    "table": m.weight.detach().numpy(),
    "ids": bags.ids.numpy(),
    "offsets": bags.bounds,
    "weights": None,
    "fused_weights": True,
    "padding_idx": -1,
    "mean": False,
    "out": out.numpy(),
}


def T(name, f, n=5000):
    print(f"{name:30s} {min(timeit.repeat(f, number=n, repeat=7)) / n * 1e6:7.2f} us")


with torch.no_grad():
    T("module call", lambda: m(x, offs))
    T("forward()", lambda: m.forward(x, offs))
    T("_checked_bags", lambda: eb._checked_bags(m, x, offs, None))
    T("_Bags()", lambda: eb._Bags(x, rec["ids"], offs, None, B, offs.numpy()))
    T("_pooled", lambda: m._pooled(bags))
    T("native pool", lambda: _core.embedding_bag_pool(rec))
    T("_table_array", m._table_array)
    T("F.embedding_bag", lambda: torch.nn.functional.embedding_bag(x, m.weight, offs, mode="sum"))
    T("nn.Module call empty", lambda: torch.nn.Identity()(x))
