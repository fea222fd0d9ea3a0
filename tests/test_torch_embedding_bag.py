"""adagrad.torch.EmbeddingBag: its fused backward update against the unfused torch pipeline, the
oracle (nn.EmbeddingBag(sparse=True), then adagrad.torch.<Rule>(duplicates="sum").step()), bit for bit;
its forward against nn.EmbeddingBag's; the module's torch behaviour and its refusals."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

import adagrad.torch as at
from adagrad.torch.grads import NATIVE_DTYPES
from conftest import assert_same_bits

ROWS, DIM = 12, 20  # 20: a vector body and a scalar tail on every ISA

# name: (input, offsets, include_last_offset); repeated ids within and across bags, an empty bag.
IDS = [1, 2, 2, 7, 2, 1, 2, 9, 3, 0]
LAYOUTS = {
    "offsets": (IDS, [0, 3, 3, 5, 9], False),
    "last-offset": (IDS, [0, 3, 3, 5, 9, 10], True),
    "2-D": ([[1, 2, 2], [7, 2, 1], [2, 9, 2], [0, 0, 11]], None, False),
    "all-empty": ([], [0, 0, 0], False),
}
# name: (mode, padding_idx, per-sample weights)
MODES = {
    "sum": ("sum", None, False),
    "mean": ("mean", None, False),
    "sum-weights": ("sum", None, True),
    "sum-padding": ("sum", 2, False),
    "mean-padding": ("mean", 2, False),
    "weights-padding": ("sum", 2, True),
}
# Each rule with options that leave its plain path.
RULES = {
    "adagrad": (at.Adagrad, {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.02, "initial_accumulator_value": 0.1}),
    "adagrad-rowwise": (at.Adagrad, {"lr": 0.1, "weight_decay": 0.02, "rowwise": True}),
    "proximal": (at.ProximalAdagrad, {"lr": 0.1, "l1": 0.01, "l2": 0.02}),
    "dual_averaging": (at.AdagradDA, {"lr": 0.1, "l1": 0.001, "l2": 0.01}),
    "adagrad_decay": (at.AdagradDecay, {"lr": 0.1, "accumulator_decay_step": 1}),
    "ftrl": (at.Ftrl, {"lr": 0.1, "l1": 0.001, "l2": 0.01, "beta": 0.1}),
    "adagrad-sequential": (at.Adagrad, {"lr": 0.1, "weight_decay": 0.02, "duplicates": "sequential"}),
    "rowwise-sequential": (at.Adagrad, {"lr": 0.1, "rowwise": True, "duplicates": "sequential"}),
}


def bits(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    return t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()


def train_both(
    layout: str, mode: str, rule: str, dtype: torch.dtype = torch.float32, steps: int = 2, dim: int = DIM, **extra: Any
) -> tuple[nn.EmbeddingBag, torch.optim.Optimizer, at.EmbeddingBag]:
    """``steps`` steps of the oracle and of the fused module from one table, one output gradient a
    step; asserts the forwards equal."""
    ids, offsets, last = LAYOUTS[layout]
    bag_mode, padding_idx, weighted = MODES[mode]
    cls, options = RULES[rule]
    options = {**options, **extra}
    gen = torch.Generator().manual_seed(7)
    table = torch.randn(ROWS, dim, generator=gen).to(dtype)
    x = torch.tensor(ids, dtype=torch.int64)
    offs = None if offsets is None else torch.tensor(offsets, dtype=torch.int64)
    bags = x.shape[0] if x.dim() == 2 else len(offsets) - last  # type: ignore[arg-type]
    weights = torch.randn(x.shape, generator=gen).to(dtype) if weighted else None
    common = {"mode": bag_mode, "padding_idx": padding_idx, "include_last_offset": last}
    oracle = nn.EmbeddingBag(ROWS, dim, sparse=True, _weight=table.clone(), **common)
    optimizer = cls(oracle.parameters(), **options)
    fused = at.EmbeddingBag(ROWS, dim, _weight=table.clone(), optimizer=cls, **common, **options)
    for _ in range(steps):
        grad_out = torch.randn(bags, dim, generator=gen).to(dtype)
        expected = oracle(x, offs, per_sample_weights=weights)
        expected.backward(grad_out)
        optimizer.step()
        optimizer.zero_grad()
        actual = fused(x, offs, per_sample_weights=weights)
        assert_same_bits(bits(actual), bits(expected))
        actual.backward(grad_out)
    return oracle, optimizer, fused


def assert_same_training(oracle: nn.EmbeddingBag, optimizer: torch.optim.Optimizer, fused: at.EmbeddingBag) -> None:
    assert_same_bits(bits(fused.weight), bits(oracle.weight))
    expected, actual = optimizer.state[oracle.weight], fused.fused_optimizer.state[fused.weight]
    assert sorted(actual) == sorted(expected)
    for name in expected:
        assert_same_bits(bits(actual[name]), bits(expected[name]))


@pytest.mark.parametrize("rule", ["adagrad", "adagrad-rowwise"])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_fused_update_is_the_sparse_pipeline(layout: str, mode: str, rule: str) -> None:
    oracle, optimizer, fused = train_both(layout, mode, rule)
    assert_same_training(oracle, optimizer, fused)
    if layout != "all-empty":
        assert not torch.equal(fused.weight, torch.randn(ROWS, DIM, generator=torch.Generator().manual_seed(7)))


# 16: the kernels for fixed row lengths (the summed row in registers); 20: any length, with a tail.
@pytest.mark.parametrize("dim", [16, 20])
@pytest.mark.parametrize("rule", ["adagrad", "adagrad-rowwise", "adagrad-sequential", "rowwise-sequential"])
# The value rows read as they are and scaled; the forward's sum, division, fma and product-then-sum.
@pytest.mark.parametrize("mode", ["sum", "mean-padding", "sum-weights", "weights-padding"])
def test_every_isa(isa: str, mode: str, rule: str, dim: int) -> None:
    assert_same_training(*train_both("offsets", mode, rule, dim=dim))


@pytest.mark.parametrize("mode", ["sum", "mean-padding", "weights-padding"])
@pytest.mark.parametrize("rule", [r for r in RULES if "sequential" not in r])
def test_every_rule(rule: str, mode: str) -> None:
    assert_same_training(*train_both("offsets", mode, rule, steps=3))


HALF = [
    pytest.param(dtype, marks=pytest.mark.skipif(dtype not in NATIVE_DTYPES, reason="bfloat16 needs ml_dtypes"))
    for dtype in (torch.float16, torch.bfloat16)
]


@pytest.mark.parametrize("state_dtype", [None, "float32"])
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("mode", ["mean-padding", "sum-weights"])
@pytest.mark.parametrize("rule", ["adagrad", "adagrad-rowwise"])
def test_16bit_tables(rule: str, mode: str, dtype: torch.dtype, state_dtype: str | None) -> None:
    assert_same_training(*train_both("offsets", mode, rule, dtype, state_dtype=state_dtype))


def test_float64_table() -> None:
    assert_same_training(*train_both("offsets", "mean", "adagrad", torch.float64))


@pytest.mark.parametrize("rowwise", [False, True])
def test_threads_give_the_same_bits(threads: int, rowwise: bool) -> None:
    """2,048 ids of 16 elements: the sparse step's threads split the rows (kInlineSparseElements)."""
    gen = torch.Generator().manual_seed(threads)
    rows, dim = 300, 16
    table = torch.randn(rows, dim, generator=gen)
    x = torch.randint(0, rows, (2048,), generator=gen)
    offs = torch.arange(0, 2048, 8)
    grad_out = torch.randn(256, dim, generator=gen)
    oracle = nn.EmbeddingBag(rows, dim, mode="mean", sparse=True, _weight=table.clone())
    optimizer = at.Adagrad(oracle.parameters(), lr=0.1, rowwise=rowwise)
    fused = at.EmbeddingBag(rows, dim, mode="mean", _weight=table.clone(), lr=0.1, rowwise=rowwise)
    expected, actual = oracle(x, offs), fused(x, offs)
    assert_same_bits(actual.detach().numpy(), expected.detach().numpy())
    expected.backward(grad_out)
    optimizer.step()
    actual.backward(grad_out)
    assert_same_training(oracle, optimizer, fused)


@pytest.mark.parametrize("frozen", [False, True])
def test_per_sample_weights_grad_is_torchs(frozen: bool) -> None:
    gen = torch.Generator().manual_seed(3)
    table = torch.randn(ROWS, DIM, generator=gen)
    x, offs = torch.tensor(IDS), torch.tensor([0, 3, 3, 5, 9])
    grad_out = torch.randn(5, DIM, generator=gen)
    w1 = torch.randn(len(IDS), generator=gen).requires_grad_()
    w2 = w1.detach().clone().requires_grad_()
    nn.EmbeddingBag(ROWS, DIM, mode="sum", padding_idx=2, _weight=table.clone())(x, offs, w1).backward(grad_out)
    bag = at.EmbeddingBag(ROWS, DIM, mode="sum", padding_idx=2, _weight=table.clone())
    bag.weight.requires_grad_(not frozen)
    bag(x, offs, w2).backward(grad_out)
    assert w1.grad is not None and w2.grad is not None
    assert_same_bits(w2.grad.numpy(), w1.grad.numpy())
    assert torch.equal(bag.weight, table) == frozen


def test_trains_like_a_torch_module() -> None:
    """Scheduler, optimizer state_dict round trip, the module's state_dict into nn.EmbeddingBag,
    zero_grad a no-op, no update under torch.no_grad."""
    x, offs = torch.tensor(IDS), torch.tensor([0, 3, 3, 5, 9])
    bag = at.EmbeddingBag(ROWS, DIM, mode="sum", lr=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(bag.fused_optimizer, step_size=1, gamma=0.1)
    bag(x, offs).sum().backward()
    scheduler.step()
    assert bag.fused_optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    saved_optimizer = copy.deepcopy(bag.fused_optimizer.state_dict())  # torch's holds the live tensors
    plain = nn.EmbeddingBag(ROWS, DIM, mode="sum")
    plain.load_state_dict(bag.state_dict())
    assert torch.equal(plain.weight, bag.weight)
    before = bag.weight.detach().clone()
    with torch.no_grad():
        assert torch.equal(bag(x, offs), plain(x, offs))
    bag.fused_optimizer.zero_grad()
    assert torch.equal(bag.weight, before) and bag.weight.grad is None
    twin = at.EmbeddingBag(ROWS, DIM, mode="sum", _weight=before.clone(), lr=0.5)
    twin.fused_optimizer.load_state_dict(saved_optimizer)
    for module in (bag, twin):
        module(x, offs).sum().backward()
    assert_same_bits(twin.weight.detach().numpy(), bag.weight.detach().numpy())
    assert twin.fused_optimizer.state[twin.weight]["step"] == 2


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (([1, 12], [0]), IndexError, "id 12 is out of range"),
        (([1, -1], [0]), IndexError, "id -1"),
        (([1, 2], [1]), ValueError, "start at 0"),
        (([1, 2, 3], [0, 2, 1]), ValueError, "non-decreasing"),
        (([1, 2], [0, 3]), ValueError, "past the end"),
        (([1.0, 2.0], [0]), TypeError, "int32 or int64"),
        (([1, 2], None), ValueError, "1-D offsets"),
    ],
)
def test_bad_input_is_refused_before_anything_changes(args: tuple[Any, ...], error: type, match: str) -> None:
    bag = at.EmbeddingBag(ROWS, DIM, mode="sum")
    before = bag.weight.detach().clone()
    ids, offsets = args
    with pytest.raises(error, match=match):
        bag(torch.tensor(ids), None if offsets is None else torch.tensor(offsets)).sum().backward()
    assert torch.equal(bag.weight, before)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mode": "max"}, ValueError, "'max' has no fused update"),
        ({"optimizer": "sgd"}, ValueError, "optimizer must be one of"),
        ({"optimizer": torch.optim.SGD}, TypeError, "drop-in class"),
        ({"max_grad_norm": 1.0}, ValueError, "per-id gradient rows"),
        ({"nonfinite": "skip"}, ValueError, "nonfinite must be 'propagate'"),
        ({"dtype": torch.int64}, TypeError, "the table's dtype"),
    ],
)
def test_bad_construction_is_refused(kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        at.EmbeddingBag(ROWS, DIM, **kwargs)


def test_per_sample_weights_need_sum_mode() -> None:
    bag = at.EmbeddingBag(ROWS, DIM, mode="mean")
    with pytest.raises(ValueError, match="mode='sum' only"):
        bag(torch.tensor([1, 2]), torch.tensor([0]), torch.ones(2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # the native pooling's checks; torch's path's
@pytest.mark.parametrize(
    ("offsets", "match"),
    [([0, 2, 1, 3], "non-decreasing"), ([0, 2, 5], "past the end"), ([0, 2, 2], "must be len")],
)
def test_bad_last_offset_is_refused(dtype: torch.dtype, offsets: list[int], match: str) -> None:
    bag = at.EmbeddingBag(ROWS, DIM, mode="sum", include_last_offset=True, dtype=dtype)
    before = bag.weight.detach().clone()
    with pytest.raises(ValueError, match=match):
        bag(torch.tensor([1, 2, 3]), torch.tensor(offsets)).sum().backward()
    assert torch.equal(bag.weight, before)


def test_forward_follows_a_replaced_table() -> None:
    bag = at.EmbeddingBag(ROWS, DIM, mode="sum")
    x, offs = torch.tensor([1, 2, 7]), torch.tensor([0, 1])
    with torch.no_grad():
        bag(x, offs)
        bag.weight.data = torch.randn(ROWS, DIM)  # new memory: the cached view of the table must go
        assert torch.equal(bag(x, offs), nn.functional.embedding_bag(x, bag.weight, offs, mode="sum"))


def test_step_hooks_and_schedulers_see_every_fused_step() -> None:
    bag = at.EmbeddingBag(ROWS, DIM, mode="sum", lr=0.5)
    calls: list[str] = []
    bag.fused_optimizer.register_step_pre_hook(lambda *_: calls.append("pre"))
    bag.fused_optimizer.register_step_post_hook(lambda *_: calls.append("post"))
    handle = register_optimizer_step_post_hook(lambda *_: calls.append("global"))
    x, offs = torch.tensor([1, 2, 7]), torch.tensor([0, 1])
    try:
        bag(x, offs).sum().backward()
    finally:
        handle.remove()
    assert calls == ["pre", "post", "global"]
    scheduler = torch.optim.lr_scheduler.StepLR(bag.fused_optimizer, step_size=1, gamma=0.5)
    bag.fused_optimizer._opt_called = False  # type: ignore[attr-defined]
    bag(x, offs).sum().backward()
    assert bag.fused_optimizer._opt_called  # type: ignore[attr-defined]  # no "step() before optimizer.step()"
    scheduler.step()
    assert bag.fused_optimizer.param_groups[0]["lr"] == 0.25
    assert bag.fused_optimizer.state[bag.weight]["step"] == 2


def test_profiler_sees_the_fused_step() -> None:
    bag = at.EmbeddingBag(ROWS, DIM, mode="sum")
    with torch.autograd.profiler.profile(use_kineto=False) as prof:  # kineto takes ~1 s to start
        bag(torch.tensor([1, 2, 7]), torch.tensor([0, 1])).sum().backward()
    assert "Optimizer.step#Adagrad.step" in {event.name for event in prof.function_events}
