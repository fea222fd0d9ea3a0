"""adagrad.torch.EmbeddingBagCollection against the unfused pipeline, the oracle (one
nn.EmbeddingBag(sparse=True) per table, one adagrad.torch.<Rule>(duplicates="sum") with a param group
per table), bit for bit: forwards, tables, states; its torch behaviour and its refusals."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn

import adagrad.torch as at
from conftest import assert_same_bits
from test_torch_embedding_bag import RULES, bits

Config = at.EmbeddingBagConfig
# name: tables (shapes, dtypes and lrs differ; 20: a vector body and a scalar tail on every ISA)
TABLES = {
    "float32": [Config("a", 12, 20), Config("b", 7, 16, lr=0.3), Config("c", 9, 8)],
    "mixed-dtypes": [Config("a", 12, 20), Config("b", 7, 16, dtype=torch.bfloat16), Config("c", 9, 8, torch.float64)],
}
# Three tables, two bags each: repeated ids within and across bags, an empty bag.
IDS = [1, 2, 2, 7, 2, 3, 3, 3, 0, 8, 8]
OFFSETS = [0, 4, 5, 8, 8, 11, 11]


def oracle_of(tables: list[at.EmbeddingBagConfig], mode: str, rule: str) -> tuple[nn.ModuleDict, Any]:
    cls, options = RULES[rule]
    bags = nn.ModuleDict(
        {
            c.name: nn.EmbeddingBag(c.num_embeddings, c.embedding_dim, mode=mode, sparse=True, dtype=c.dtype)
            for c in tables
        }
    )
    groups = [
        {"params": [bag.weight], **({} if c.lr is None else {"lr": c.lr})} for c, bag in zip(tables, bags.values())
    ]
    return bags, cls(groups, **options)


def train_both(
    tables: str, mode: str, rule: str, weighted: bool = False, unused: str | None = None, steps: int = 2
) -> tuple[nn.ModuleDict, Any, at.EmbeddingBagCollection]:
    """``steps`` steps of both from the same tables; asserts the forwards equal. ``unused``: a
    table whose output takes no part in the loss."""
    configs = TABLES[tables]
    cls, options = RULES[rule]
    oracle, optimizer = oracle_of(configs, mode, rule)
    fused = at.EmbeddingBagCollection(configs, mode, optimizer=cls, **options)
    fused.load_state_dict({f"embedding_bags.{k}": v for k, v in oracle.state_dict().items()})
    gen = torch.Generator().manual_seed(5)
    x, offs = torch.tensor(IDS), torch.tensor(OFFSETS)
    weights = torch.randn(len(IDS), generator=gen) if weighted else None
    for _ in range(steps):
        grads = {c.name: torch.randn(2, c.embedding_dim, generator=gen).to(c.dtype) for c in configs}
        actual = fused(x, offs, per_sample_weights=weights)
        for t, c in enumerate(configs):
            span = slice(OFFSETS[2 * t], OFFSETS[2 * t + 2])
            expected = oracle[c.name](
                x[span], offs[2 * t : 2 * t + 2] - OFFSETS[2 * t], None if weights is None else weights[span]
            )
            assert_same_bits(bits(actual[c.name]), bits(expected))
            if c.name != unused:
                expected.backward(grads[c.name])
        optimizer.step()
        optimizer.zero_grad()
        torch.autograd.backward(
            [actual[c.name] for c in configs if c.name != unused], [grads[c.name] for c in configs if c.name != unused]
        )
    return oracle, optimizer, fused


def assert_same_training(oracle: nn.ModuleDict, optimizer: Any, fused: at.EmbeddingBagCollection) -> None:
    for name, bag in oracle.items():
        weight = fused.embedding_bags[name].weight
        assert_same_bits(bits(weight), bits(bag.weight))
        expected, actual = optimizer.state[bag.weight], fused.fused_optimizer.state[weight]
        assert sorted(actual) == sorted(expected)
        for key in expected:
            assert_same_bits(bits(actual[key]), bits(expected[key]))


@pytest.mark.parametrize("rule", ["adagrad", "adagrad-rowwise", "ftrl"])
@pytest.mark.parametrize(
    ("tables", "mode", "weighted"),
    [("float32", "sum", False), ("float32", "mean", False), ("float32", "sum", True), ("mixed-dtypes", "mean", False)],
)
def test_collection_is_the_sparse_pipeline_per_table(tables: str, mode: str, weighted: bool, rule: str) -> None:
    oracle, optimizer, fused = train_both(tables, mode, rule, weighted)
    assert_same_training(oracle, optimizer, fused)
    assert not torch.equal(fused.embedding_bags["a"].weight, oracle_of(TABLES[tables], mode, rule)[0]["a"].weight)


def test_a_table_outside_the_loss_is_not_stepped() -> None:
    oracle, optimizer, fused = train_both("float32", "sum", "adagrad", unused="b")
    assert_same_training(oracle, optimizer, fused)
    steps = {name: int(fused.fused_optimizer.state[bag.weight]["step"]) for name, bag in fused.embedding_bags.items()}
    assert steps == {"a": 2, "b": 0, "c": 2}


def test_threads_give_the_same_bits(threads: int) -> None:
    """Three tables of 2,048 ids: the pooling and the step split bags and rows across threads."""
    gen = torch.Generator().manual_seed(threads)
    configs = [Config(f"t{i}", 300, 16) for i in range(3)]
    oracle, optimizer = oracle_of(configs, "mean", "adagrad")
    fused = at.EmbeddingBagCollection(configs, "mean", **RULES["adagrad"][1])
    fused.load_state_dict({f"embedding_bags.{k}": v for k, v in oracle.state_dict().items()})
    x = torch.randint(0, 300, (3 * 2048,), generator=gen)
    offs = torch.arange(0, 3 * 2048 + 1, 8)
    out = fused(x, offs)
    loss = 0
    for t, (name, bag) in enumerate(oracle.items()):
        expected = bag(x[t * 2048 : (t + 1) * 2048], offs[t * 256 : (t + 1) * 256] - t * 2048)
        assert_same_bits(out[name].detach().numpy(), expected.detach().numpy())
        grad = torch.randn(256, 16, generator=gen)
        expected.backward(grad)
        loss = loss + (out[name] * grad).sum()
    optimizer.step()
    loss.backward()  # type: ignore[union-attr]
    assert_same_training(oracle, optimizer, fused)


def test_trains_like_a_torch_module() -> None:
    """Scheduler over every table's group, optimizer state_dict round trip, state_dict into plain
    nn.EmbeddingBag modules, no update under torch.no_grad."""
    configs = TABLES["float32"]
    x, offs = torch.tensor(IDS), torch.tensor(OFFSETS)
    ebc = at.EmbeddingBagCollection(configs, lr=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(ebc.fused_optimizer, step_size=1, gamma=0.1)
    sum(o.sum() for o in ebc(x, offs).values()).backward()  # type: ignore[union-attr]
    scheduler.step()
    assert [g["lr"] for g in ebc.fused_optimizer.param_groups] == pytest.approx([0.05, 0.03, 0.05])
    saved = copy.deepcopy(ebc.fused_optimizer.state_dict())
    plain = nn.Module()
    plain.embedding_bags = nn.ModuleDict(
        {c.name: nn.EmbeddingBag(c.num_embeddings, c.embedding_dim, mode="sum") for c in configs}
    )
    plain.load_state_dict(ebc.state_dict())
    before = {k: v.clone() for k, v in ebc.state_dict().items()}
    with torch.no_grad():
        out = ebc(x, offs)
    for t, c in enumerate(configs):
        span = slice(OFFSETS[2 * t], OFFSETS[2 * t + 2])
        assert torch.equal(out[c.name], plain.embedding_bags[c.name](x[span], offs[2 * t : 2 * t + 2] - OFFSETS[2 * t]))
    assert all(torch.equal(v, before[k]) for k, v in ebc.state_dict().items())
    twin = at.EmbeddingBagCollection(configs, lr=0.5)
    twin.load_state_dict(before)
    twin.fused_optimizer.load_state_dict(saved)
    for module in (ebc, twin):
        sum(o.sum() for o in module(x, offs).values()).backward()  # type: ignore[union-attr]
    for k, v in twin.state_dict().items():
        assert_same_bits(v.numpy(), ebc.state_dict()[k].numpy())


def test_grad_scaler_skips_every_table() -> None:
    """An inf in one table's rows: the oracle's one optimizer skips every table; so does the collection."""
    configs = TABLES["float32"]
    oracle, optimizer = oracle_of(configs, "sum", "adagrad")
    oracle_scaler, fused_scaler = (torch.amp.GradScaler("cpu", init_scale=64.0, growth_interval=1) for _ in range(2))
    fused = at.EmbeddingBagCollection(configs, grad_scaler=fused_scaler, **RULES["adagrad"][1])
    fused.load_state_dict({f"embedding_bags.{k}": v for k, v in oracle.state_dict().items()})
    gen = torch.Generator().manual_seed(2)
    x, offs = torch.tensor(IDS), torch.tensor(OFFSETS)
    for step in range(3):
        grads = [torch.randn(2, c.embedding_dim, generator=gen) for c in configs]
        if step == 1:
            grads[2][0, 0] = float("nan")  # table c, bag 0: ids 0, 8, 8
        outs = [
            oracle[c.name](x[OFFSETS[2 * t] : OFFSETS[2 * t + 2]], offs[2 * t : 2 * t + 2] - OFFSETS[2 * t])
            for t, c in enumerate(configs)
        ]
        torch.autograd.backward(oracle_scaler.scale(outs), grads)
        oracle_scaler.step(optimizer)
        oracle_scaler.update()
        optimizer.zero_grad()
        torch.autograd.backward(fused_scaler.scale(list(fused(x, offs).values())), grads)
        fused_scaler.update()
        assert fused_scaler.get_scale() == oracle_scaler.get_scale()
    assert fused_scaler.get_scale() == 64.0 * 2 * 0.5 * 2
    assert_same_training(oracle, optimizer, fused)


@pytest.mark.parametrize(
    ("ids", "offsets", "error", "match"),
    [
        (IDS[:-1] + [9], OFFSETS, IndexError, "table 'c': id 9 is out of range"),
        ([-1] + IDS[1:], OFFSETS, IndexError, "table 'a': id -1"),
        (IDS, OFFSETS[:-1], ValueError, "3 \\* batch \\+ 1"),
        (IDS, [0, 4, 3, 8, 8, 11, 11], ValueError, "non-decreasing"),
        (IDS, [0, 4, 5, 8, 8, 11, 10], ValueError, "end at len\\(indices\\) = 11"),
        ([float(i) for i in IDS], OFFSETS, TypeError, "indices must be a 1-D int32 or int64"),
    ],
)
@pytest.mark.parametrize("tables", list(TABLES))
def test_bad_input_is_refused_before_anything_changes(
    tables: str, ids: list[Any], offsets: list[int], error: type, match: str
) -> None:
    ebc = at.EmbeddingBagCollection(TABLES[tables])
    before = {k: v.clone() for k, v in ebc.state_dict().items()}
    with pytest.raises(error, match=match):
        sum(o.sum() for o in ebc(torch.tensor(ids), torch.tensor(offsets)).values()).backward()  # type: ignore[union-attr]
    assert all(torch.equal(v, before[k]) for k, v in ebc.state_dict().items())


@pytest.mark.parametrize(
    ("tables", "kwargs", "error", "match"),
    [
        ([], {}, TypeError, "non-empty sequence"),
        ([Config("a", 3, 4), Config("a", 5, 4)], {}, ValueError, "distinct"),
        ([Config("a", 3, 4, torch.int64)], {}, TypeError, "the dtype must be one of"),
        ([Config("a", 0, 4)], {}, ValueError, "num_embeddings must be a positive int"),
        ([Config("a", 3, 4)], {"mode": "max"}, ValueError, "mode must be"),
        ([Config("a", 3, 4)], {"clip_value": 1.0}, ValueError, "per-id gradient rows"),
    ],
)
def test_bad_construction_is_refused(tables: list[Any], kwargs: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        at.EmbeddingBagCollection(tables, **kwargs)


def test_per_sample_weights_of_another_dtype_are_refused() -> None:
    ebc = at.EmbeddingBagCollection(TABLES["mixed-dtypes"])
    with pytest.raises(ValueError, match="of every table's dtype"):
        ebc(torch.tensor(IDS), torch.tensor(OFFSETS), torch.ones(len(IDS)))
