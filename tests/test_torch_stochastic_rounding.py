"""Stochastic rounding in adagrad.torch.Adagrad: bit for bit the NumPy optimizer (dense and sparse
grads, several groups, param i of the natively updated params drawing stream i); the seed kept in the
state_dict, torch's random stream untouched, and a resumed run identical to an unbroken one."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")

import adagrad  # noqa: E402
import adagrad.torch  # noqa: E402
from adagrad.torch.grads import numpy_view  # noqa: E402

DTYPES = [pytest.param(torch.float16, id="float16"), pytest.param(torch.bfloat16, id="bfloat16")]


def bits(t: torch.Tensor) -> np.ndarray:
    return numpy_view(t.detach()).view(np.uint16).copy()


def model(dtype: Any) -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.ModuleDict(
        {"emb": torch.nn.Embedding(50, 16, sparse=True), "lin": torch.nn.Linear(16, 3), "out": torch.nn.Linear(3, 1)}
    )
    return net.to(dtype)


def loss_of(net: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return net["out"](torch.tanh(net["lin"](net["emb"](ids)))).float().pow(2).mean()


@pytest.mark.parametrize("dtype", DTYPES)
def test_is_the_numpy_optimizer_bit_for_bit(dtype: Any) -> None:
    net = model(dtype)
    groups = [
        {"params": list(net["emb"].parameters()), "duplicates": "sequential"},
        {"params": list(net["lin"].parameters()) + list(net["out"].parameters())},
    ]
    opt = adagrad.torch.Adagrad(groups, lr=0.05, state_dtype="float32", stochastic_rounding=True, seed=21)
    twins = [[numpy_view(p.detach()).copy() for p in g["params"]] for g in groups]
    np_opt = adagrad.Adagrad(
        [{"params": twins[0], "duplicates": "sequential"}, {"params": twins[1]}],
        lr=0.05, state_dtype="float32", stochastic_rounding=True, seed=21,
    )  # fmt: skip
    gen = torch.Generator().manual_seed(2)
    for _ in range(4):
        ids = torch.randint(0, 50, (12,), generator=gen)
        opt.zero_grad()
        loss_of(net, ids).backward()
        emb_grad = net["emb"].weight.grad
        assert emb_grad.is_sparse
        np_grads = [
            [adagrad.SparseGrad(emb_grad._indices()[0].numpy().copy(), numpy_view(emb_grad._values()).copy())],
            [numpy_view(p.grad).copy() for p in groups[1]["params"]],
        ]
        opt.step()
        np_opt.step(np_grads)
        for group, twin in zip(groups, twins):
            for p, q in zip(group["params"], twin):
                np.testing.assert_array_equal(bits(p), q.view(np.uint16))


@pytest.mark.parametrize("dtype", DTYPES)
def test_seed_in_the_state_dict_and_resume(dtype: Any) -> None:
    def run(steps: range, net: torch.nn.Module, opt: Any) -> None:
        for step in steps:
            gen = torch.Generator().manual_seed(step)
            opt.zero_grad()
            loss_of(net, torch.randint(0, 50, (12,), generator=gen)).backward()
            opt.step()

    net = model(dtype)
    state = torch.random.get_rng_state()
    whole = adagrad.torch.Adagrad(net.parameters(), lr=0.05, stochastic_rounding=True, seed=77)
    assert torch.equal(torch.random.get_rng_state(), state)  # torch's random stream untouched
    run(range(2), net, whole)
    saved = copy.deepcopy(whole.state_dict())  # torch's state_dict holds the live state tensors
    assert saved["param_groups"][0]["seed"] == 77 and saved["param_groups"][0]["stochastic_rounding"] is True
    params_then = {k: v.detach().clone() for k, v in net.state_dict().items()}
    run(range(2, 5), net, whole)

    resumed_net = model(dtype)
    resumed_net.load_state_dict(params_then)
    resumed = adagrad.torch.Adagrad(resumed_net.parameters(), lr=0.05, stochastic_rounding=True)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["seed"] == 77
    run(range(2, 5), resumed_net, resumed)
    for p, q in zip(net.parameters(), resumed_net.parameters()):
        np.testing.assert_array_equal(bits(p), bits(q))
    torch.optim.Adagrad(model(dtype).parameters()).load_state_dict(saved)  # torch keeps and ignores the keys


def test_bad_options_are_refused() -> None:
    w = torch.nn.Parameter(torch.zeros(4, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="stochastic_rounding must be a bool"):
        adagrad.torch.Adagrad([w], stochastic_rounding="yes")
    with pytest.raises(ValueError, match="seed must be an int from 0 to 2\\*\\*64 - 1"):
        adagrad.torch.Adagrad([w], stochastic_rounding=True, seed=-3)
