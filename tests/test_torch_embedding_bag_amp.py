"""adagrad.torch.EmbeddingBag with torch.amp.GradScaler against the unfused pipeline, the oracle
(nn.EmbeddingBag(sparse=True), scaler.step(adagrad.torch.<Rule>(duplicates="sum")), scaler.update()),
bit for bit: the table, the state, the step counts and the scaler's scale after every step."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import adagrad.torch as at
from conftest import assert_same_bits
from test_torch_embedding_bag import bits

ROWS, DIM = 12, 20
# Bag 0: [1, 2, 2]; bag 1 empty; bag 2: [7, 2]; bag 3: [1, 2, 9, 3]; bag 4: [2, 2] (all padding where 2 is).
IDS, OFFSETS = [1, 2, 2, 7, 2, 1, 2, 9, 3, 2, 2], [0, 3, 3, 5, 9]
# name: (mode, padding_idx, per-sample weights' magnitude, init_scale, (step, bag, value) put into the
# output gradient or None, steps skipped of 3)
CASES = {
    "finite": ("sum", None, None, 2.0**10, None, 0),
    "mean": ("mean", None, None, 2.0**4, None, 0),
    "weights": ("sum", None, 1.0, 2.0**8, None, 0),
    "inf-in-a-bag": ("sum", None, None, 2.0**10, (1, 0, float("inf")), 1),
    "nan-in-a-bag": ("mean", None, None, 2.0**10, (1, 3, float("nan")), 1),
    "-inf-with-weights": ("sum", None, 1.0, 2.0**10, (0, 2, float("-inf")), 1),
    # torch's check never sees these rows (no id reads them): the step goes on
    "inf-in-an-empty-bag": ("sum", None, None, 2.0**10, (1, 1, float("inf")), 0),
    "nan-in-a-padding-bag": ("sum", 2, None, 2.0**10, (1, 4, float("nan")), 0),
    "padding-weights": ("sum", 2, 1.0, 2.0**6, (2, 0, float("inf")), 1),
    # the scaled output gradient overflows float32
    "scale-overflows": ("sum", None, None, 2.0**100, (0, 3, 1e30), 1),
    # each pooled row finite, ids' rows (times their weights) not
    "weight-overflows": ("sum", None, 1e37, 2.0**10, None, 3),
}
RULES = {
    "adagrad": (at.Adagrad, {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.02}),
    "adagrad-rowwise": (at.Adagrad, {"lr": 0.1, "rowwise": True}),
    "ftrl": (at.Ftrl, {"lr": 0.1, "l1": 0.001, "l2": 0.01}),
}


def new_scaler(init_scale: float) -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=1)


def train_both(case: str, rule: str, dtype: torch.dtype = torch.float32, steps: int = 3) -> dict[str, Any]:
    mode, padding_idx, magnitude, init_scale, poison, _ = CASES[case]
    cls, options = RULES[rule]
    gen = torch.Generator().manual_seed(11)
    table = torch.randn(ROWS, DIM, generator=gen).to(dtype)
    x, offs = torch.tensor(IDS), torch.tensor(OFFSETS)
    weights = None if magnitude is None else (torch.randn(len(IDS), generator=gen) * magnitude).to(dtype)
    common = {"mode": mode, "padding_idx": padding_idx}
    oracle = nn.EmbeddingBag(ROWS, DIM, sparse=True, _weight=table.clone(), **common)
    optimizer = cls(oracle.parameters(), **options)
    oracle_scaler, fused_scaler = new_scaler(init_scale), new_scaler(init_scale)
    fused = at.EmbeddingBag(
        ROWS, DIM, _weight=table.clone(), optimizer=cls, grad_scaler=fused_scaler, **common, **options
    )
    scales = []
    for step in range(steps):
        grad_out = torch.randn(len(OFFSETS), DIM, generator=gen).to(dtype)
        if poison is not None and poison[0] == step:
            grad_out[poison[1], 3] = poison[2]
        oracle_scaler.scale(oracle(x, offs, per_sample_weights=weights)).backward(grad_out)
        oracle_scaler.step(optimizer)
        oracle_scaler.update()
        optimizer.zero_grad()
        fused_scaler.scale(fused(x, offs, per_sample_weights=weights)).backward(grad_out)
        fused_scaler.update()
        assert fused_scaler.get_scale() == oracle_scaler.get_scale()
        scales.append(fused_scaler.get_scale())
    assert_same_bits(bits(fused.weight), bits(oracle.weight))
    expected, actual = optimizer.state[oracle.weight], fused.fused_optimizer.state[fused.weight]
    assert sorted(actual) == sorted(expected)
    for name in expected:
        assert_same_bits(bits(actual[name]), bits(expected[name]))
    return {"scales": scales, "table": table, "fused": fused}


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("case", list(CASES))
def test_scaled_fused_update_is_the_scaled_pipeline(case: str, rule: str) -> None:
    result = train_both(case, rule)
    init_scale, skips = CASES[case][3], CASES[case][5]
    assert sum(s < 2 * prev for s, prev in zip(result["scales"], [init_scale, *result["scales"]])) == skips
    assert torch.equal(result["fused"].weight, result["table"]) == (skips == 3)


def test_bfloat16_table() -> None:
    train_both("inf-in-a-bag", "adagrad", torch.bfloat16)


def test_scaler_refusals() -> None:
    with pytest.raises(ValueError, match="no float16 table"):
        at.EmbeddingBag(ROWS, DIM, dtype=torch.float16, grad_scaler=torch.amp.GradScaler("cpu"))
    with pytest.raises(TypeError, match="a torch\\.amp\\.GradScaler"):
        at.EmbeddingBag(ROWS, DIM, grad_scaler=object())  # type: ignore[arg-type]
    bag = at.EmbeddingBag(ROWS, DIM, mode="sum", grad_scaler=torch.amp.GradScaler("cpu"))
    before = bag.weight.detach().clone()
    with pytest.raises(RuntimeError, match="of scaler\\.scale"):
        bag(torch.tensor([1, 2]), torch.tensor([0])).sum().backward()  # the loss never went through scale()
    assert torch.equal(bag.weight, before)


def test_disabled_scaler_is_no_scaler() -> None:
    bag = at.EmbeddingBag(ROWS, DIM, mode="sum", grad_scaler=torch.amp.GradScaler("cpu", enabled=False))
    plain = at.EmbeddingBag(ROWS, DIM, mode="sum", _weight=bag.weight.detach().clone())
    for module in (bag, plain):
        module(torch.tensor([1, 2, 2]), torch.tensor([0, 1])).sum().backward()
    assert_same_bits(bag.weight.detach().numpy(), plain.weight.detach().numpy())
