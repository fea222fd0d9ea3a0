"""Native Adagrad against torch.optim.Adagrad(fused=True), bit for bit.

The configurations are those torch's own optimizer tests use for Adagrad.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import adagrad
from conftest import assert_same_bits

torch = pytest.importorskip("torch")

TORCH_CONFIGS = [
    pytest.param({}, id="default"),
    pytest.param({"weight_decay": 0.1}, id="wd"),
    pytest.param({"weight_decay": 0.1, "maximize": True}, id="wd-maximize"),
    pytest.param({"lr": 0.1}, id="lr0.1"),
    pytest.param({"initial_accumulator_value": 0.1, "weight_decay": 0.1}, id="init0.1-wd"),
    pytest.param({"lr": 0.1, "lr_decay": 0.5, "weight_decay": 0.1}, id="lr0.1-decay0.5-wd"),
    # 0.1 is inexact in binary: (t - 1) * lr_decay rounds, so this tells an fma from a multiply-add.
    pytest.param({"lr": 0.1, "lr_decay": 0.1}, id="lr0.1-decay0.1"),
]
# The last size alone crosses the threshold, so that 2 threads really split the work.
SIZES = [1, 7, 33, 1000, adagrad.cpu_info()["parallel_threshold"] + 3]
STEPS = 60


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
@pytest.mark.parametrize("config", TORCH_CONFIGS)
def test_bitwise_equal_to_torch_fused(config: dict[str, Any], dtype: type, isa: str, threads: int) -> None:
    rng = np.random.default_rng(11)
    ours = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in ours]
    opt = adagrad.Adagrad(ours, **config)
    torch_opt = torch.optim.Adagrad(theirs, fused=True, **config)
    for _ in range(STEPS):
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in ours]
        opt.step(grads)
        for t, g in zip(theirs, grads):
            t.grad = torch.from_numpy(g.copy())
        torch_opt.step()
    for i, (p, t) in enumerate(zip(ours, theirs)):
        assert_same_bits(opt.state[i]["sum"], torch_opt.state[t]["sum"].numpy())
        assert_same_bits(p, t.detach().numpy())
        assert int(opt.state[i]["step"]) == int(torch_opt.state[t]["step"]) == STEPS
