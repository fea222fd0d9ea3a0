import time

import numpy as np
import torch

import adagrad
from adagrad.benchmarks import training as tr
from adagrad.benchmarks.cases import training_cases

torch.set_num_threads(1)
adagrad.set_num_threads(1)
case = [c for c in training_cases() if c.name == "train-embbag-1Mx32"][0]
loops = tr.training_peers(case)
for name in ["adagrad", "adagrad fused"]:
    L = loops[name]
    ph = {"zero": [], "fwd": [], "loss": [], "bwd": [], "step": []}
    for i in range(300):
        inputs, labels = L.batches[i % len(L.batches)]
        t0 = time.perf_counter()
        L.optimizer.zero_grad()
        t1 = time.perf_counter()
        out = L.model(*inputs)
        t2 = time.perf_counter()
        loss = L.model.loss(out, labels)
        t3 = time.perf_counter()
        loss.backward()
        t4 = time.perf_counter()
        L.optimizer.step()
        t5 = time.perf_counter()
        if i >= 50:
            for k, a, b in (("zero", t0, t1), ("fwd", t1, t2), ("loss", t2, t3), ("bwd", t3, t4), ("step", t4, t5)):
                ph[k].append(b - a)
    print(name, {k: round(np.median(v) * 1e6) for k, v in ph.items()})
