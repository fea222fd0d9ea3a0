import time

import numpy as np
import torch

import adagrad
import adagrad.torch.embedding_bag as eb
from adagrad.benchmarks import training as tr
from adagrad.benchmarks.cases import training_cases

torch.set_num_threads(1)
adagrad.set_num_threads(1)
orig = eb._FusedBag.backward
times = {"bwd": [], "bag_step": []}


def timed_backward(ctx, grad):
    s = time.perf_counter()
    r = orig(ctx, grad)
    times["bwd"].append(time.perf_counter() - s)
    return r


eb._FusedBag.backward = staticmethod(timed_backward)
import adagrad.torch.adapter as ad

ob = ad.NativeOptimizer._bag_step


def tb(self, g):
    s = time.perf_counter()
    ob(self, g)
    times["bag_step"].append(time.perf_counter() - s)


ad.NativeOptimizer._bag_step = tb
case = [c for c in training_cases() if c.name == "train-embbag-1Mx32"][0]
loops = tr.training_peers(case)
L = loops["adagrad fused"]
for i in range(400):
    L()
print({k: round(np.median(v[100:]) * 1e6) for k, v in times.items()})
