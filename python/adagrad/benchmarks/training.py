"""Whole training steps in torch, one peer per optimizer: ``adagrad.torch.Adagrad`` against
``torch.optim.Adagrad`` (its default path, and ``fused=True`` where torch takes the grads).

Every peer owns a model built from the same seed and steps through the same batches; one call
is one training step (zero_grad, forward, backward, optimizer.step) and the time spent inside
``optimizer.step`` is clocked apart. Needs torch (imported here, so import this module lazily).
"""

from __future__ import annotations

import time
from typing import Any, Callable, cast

import numpy as np
import torch
from torch import nn

import adagrad.torch

from . import fbgemm
from .cases import TrainingCase, zipf_row_batches
from .peers import EPS, LR

Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor]


class HashedLogistic(nn.Module):
    """Logistic regression on hashed categorical features: a sum of embedding rows, then a linear head."""

    def __init__(self, rows: int, dim: int, sparse: bool) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(rows, dim, mode="sum", sparse=sparse)
        self.head = nn.Linear(dim, 1)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(ids, offsets)).squeeze(1)

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(logits, labels)


class TbeLogistic(nn.Module):
    """HashedLogistic with FBGEMM's table-batched embedding (TBE, TorchRec's CPU training path) for
    the table: its backward updates the touched rows in place with its fused optimizer (exact
    Adagrad, element-wise or row-wise state), so only the linear head has an optimizer.step."""

    def __init__(self, like: HashedLogistic, rowwise: bool) -> None:
        super().__init__()
        configs = fbgemm.import_module("fbgemm_gpu.split_embedding_configs")
        common = fbgemm.import_module("fbgemm_gpu.split_table_batched_embeddings_ops_common")
        tbe = fbgemm.import_module("fbgemm_gpu.split_table_batched_embeddings_ops_training")
        optimizer = configs.EmbOptimType.EXACT_ROWWISE_ADAGRAD if rowwise else configs.EmbOptimType.EXACT_ADAGRAD
        rows, dim = like.bag.weight.shape
        self.bag = tbe.SplitTableBatchedEmbeddingBagsCodegen(
            [(rows, dim, common.EmbeddingLocation.HOST, tbe.ComputeDevice.CPU)],
            optimizer=optimizer,
            learning_rate=LR,
            eps=EPS,
            pooling_mode=common.PoolingMode.SUM,
            weights_precision=configs.SparseType.FP32,
        )
        with torch.no_grad():  # the same starting weights as the other peers
            self.bag.split_embedding_weights()[0].copy_(like.bag.weight)
        self.head = like.head

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        ends = torch.cat([offsets, offsets.new_tensor([ids.numel()])])  # TBE takes B + 1 offsets
        return self.head(self.bag(ids, ends)).squeeze(1)

    loss = staticmethod(HashedLogistic.loss)


class FusedLogistic(nn.Module):
    """HashedLogistic with ``adagrad.torch.EmbeddingBag`` for the table: its backward updates the
    touched rows in place (the optimizer fused into the bag's backward), so only the linear head
    has an optimizer.step."""

    def __init__(self, like: HashedLogistic, rowwise: bool) -> None:
        super().__init__()
        rows, dim = like.bag.weight.shape
        self.bag = adagrad.torch.EmbeddingBag(
            rows, dim, mode="sum", _weight=like.bag.weight.detach().clone(), lr=LR, eps=EPS, rowwise=rowwise
        )
        self.head = like.head

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(ids, offsets)).squeeze(1)

    loss = staticmethod(HashedLogistic.loss)


class CollectionRanker(nn.Module):
    """A ranker over several hashed categorical features: one ``nn.EmbeddingBag(mode="sum")`` per
    feature, the pooled rows side by side into a linear head. Takes TBE's input: every table's ids
    in one tensor, ``tables * batch + 1`` offsets."""

    def __init__(self, tables: int, rows: int, dim: int, sparse: bool) -> None:
        super().__init__()
        self.bags = nn.ModuleList(nn.EmbeddingBag(rows, dim, mode="sum", sparse=sparse) for _ in range(tables))
        self.head = nn.Linear(tables * dim, 1)

    def tables(self) -> list[nn.EmbeddingBag]:
        return [cast(nn.EmbeddingBag, bag) for bag in self.bags]

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        batch = (offsets.numel() - 1) // len(self.bags)
        pooled = []
        for t, bag in enumerate(self.tables()):
            ends = offsets[t * batch : (t + 1) * batch + 1]
            pooled.append(bag(ids[int(ends[0]) : int(ends[-1])], ends[:-1] - ends[0]))
        return self.head(torch.cat(pooled, dim=1)).squeeze(1)

    loss = staticmethod(HashedLogistic.loss)


class FusedCollectionRanker(nn.Module):
    """CollectionRanker with ``adagrad.torch.EmbeddingBagCollection`` for the tables: one native
    pooling and one native update of every table a step, so only the head has an optimizer.step."""

    def __init__(self, like: CollectionRanker, rowwise: bool) -> None:
        super().__init__()
        configs = [
            adagrad.torch.EmbeddingBagConfig(f"t{t}", bag.num_embeddings, bag.embedding_dim)
            for t, bag in enumerate(like.tables())
        ]
        self.bags = adagrad.torch.EmbeddingBagCollection(configs, "sum", lr=LR, eps=EPS, rowwise=rowwise)
        with torch.no_grad():  # the same starting weights as the other peers
            for weight, same in zip(self.bags._weights(), like.tables()):
                weight.copy_(same.weight)
        self.head = like.head

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat(list(self.bags(ids, offsets).values()), dim=1)).squeeze(1)

    loss = staticmethod(HashedLogistic.loss)


class TbeCollectionRanker(nn.Module):
    """CollectionRanker with one FBGEMM TBE holding every table (its fused optimizer, as TbeLogistic)."""

    def __init__(self, like: CollectionRanker, rowwise: bool) -> None:
        super().__init__()
        configs = fbgemm.import_module("fbgemm_gpu.split_embedding_configs")
        common = fbgemm.import_module("fbgemm_gpu.split_table_batched_embeddings_ops_common")
        tbe = fbgemm.import_module("fbgemm_gpu.split_table_batched_embeddings_ops_training")
        optimizer = configs.EmbOptimType.EXACT_ROWWISE_ADAGRAD if rowwise else configs.EmbOptimType.EXACT_ADAGRAD
        self.bag = tbe.SplitTableBatchedEmbeddingBagsCodegen(
            [
                (bag.num_embeddings, bag.embedding_dim, common.EmbeddingLocation.HOST, tbe.ComputeDevice.CPU)
                for bag in like.tables()
            ],
            optimizer=optimizer,
            learning_rate=LR,
            eps=EPS,
            pooling_mode=common.PoolingMode.SUM,
            weights_precision=configs.SparseType.FP32,
        )
        with torch.no_grad():
            for weight, same in zip(self.bag.split_embedding_weights(), like.tables()):
                weight.copy_(same.weight)
        self.head = like.head

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(self.bag(ids, offsets)).squeeze(1)  # TBE's output: the tables side by side

    loss = staticmethod(HashedLogistic.loss)


class MLP(nn.Sequential):
    def __init__(self, widths: tuple[int, ...]) -> None:
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(widths) - 2 else [])
        super().__init__(*layers)

    @staticmethod
    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, labels)


def build_model(case: TrainingCase, sparse: bool = True) -> HashedLogistic | CollectionRanker | MLP:
    torch.manual_seed(0)  # every peer starts from the same weights
    if case.model == "embeddingbag":
        return HashedLogistic(case.rows, case.dim, sparse)
    if case.model == "embeddingbags":
        return CollectionRanker(case.tables, case.rows, case.dim, sparse)
    if case.model == "mlp":
        return MLP(case.widths)
    raise ValueError(f"unknown model {case.model!r}")


def make_batches(case: TrainingCase, seed: int = 0) -> list[Batch]:
    """The case's batches of (model inputs, labels), made once, outside the timing."""
    gen = torch.Generator().manual_seed(seed)
    if case.model == "embeddingbags":  # TBE's input: table after table, tables * batch + 1 offsets
        offsets = torch.arange(0, case.tables * case.batch * case.ids + 1, case.ids)
        per_table = [
            zipf_row_batches(case.rows, case.batch * case.ids, case.batches, seed + t) for t in range(case.tables)
        ]
        return [
            (
                (torch.from_numpy(np.concatenate(ids)), offsets),
                torch.randint(0, 2, (case.batch,), generator=gen).float(),
            )
            for ids in zip(*per_table)
        ]
    if case.model == "embeddingbag":
        offsets = torch.arange(0, case.batch * case.ids, case.ids)
        return [
            ((torch.from_numpy(ids), offsets), torch.randint(0, 2, (case.batch,), generator=gen).float())
            for ids in zipf_row_batches(case.rows, case.batch * case.ids, case.batches, seed)
        ]
    return [
        (
            (torch.randn(case.batch, case.widths[0], generator=gen),),
            torch.randint(0, case.widths[-1], (case.batch,), generator=gen),
        )
        for _ in range(case.batches)
    ]


class TrainingLoop:
    """A zero-argument call runs one training step on the next batch; `clock()` is the seconds
    spent so far inside optimizer.step."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: list[Batch],
    ) -> None:
        self.model, self.optimizer, self.batches = model, optimizer, batches
        self.steps = 0
        self.optimizer_s = 0.0

    def __call__(self) -> None:
        inputs, labels = self.batches[self.steps % len(self.batches)]
        self.steps += 1
        self.optimizer.zero_grad()
        self.model.loss(self.model(*inputs), labels).backward()  # type: ignore[operator]
        start = time.perf_counter()
        self.optimizer.step()
        self.optimizer_s += time.perf_counter() - start

    def clock(self) -> float:
        return self.optimizer_s


class CompiledTrainingLoop:
    """TrainingLoop's step (forward, backward, optimizer.step, zero_grad) under ``torch.compile``,
    the backward traced into the graph (``trace_autograd_ops``); ours with ``fullgraph=True``,
    torch's optimizers with the graph breaks their step keeps. Compiled (and recompiled, as the
    grads appear) by the calls here, outside the timing. The optimizer's time is inside the graph:
    ``clock()`` is 0."""

    WARM_UP_STEPS = 3

    def __init__(self, model: MLP, optimizer: torch.optim.Optimizer, batches: list[Batch], fullgraph: bool) -> None:
        import torch._dynamo

        torch._dynamo.config.trace_autograd_ops = True
        torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)  # many peers
        self.model, self.optimizer, self.batches = model, optimizer, batches
        self.steps = 0

        def step(inputs: tuple[torch.Tensor, ...], labels: torch.Tensor) -> torch.Tensor:
            loss = model.loss(model(*inputs), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            return loss.detach()

        self.step = torch.compile(step, fullgraph=fullgraph)
        for _ in range(self.WARM_UP_STEPS):
            self()

    def __call__(self) -> None:
        inputs, labels = self.batches[self.steps % len(self.batches)]
        self.steps += 1
        self.step(inputs, labels)

    def clock(self) -> float:
        return 0.0


Factory = Callable[[Any], torch.optim.Optimizer]


def optimizers(case: TrainingCase) -> dict[str, tuple[bool, Factory]]:
    """Each peer: (sparse embedding grads?, optimizer factory). adagrad first: ratios are against it."""
    peers: dict[str, tuple[bool, Factory]] = {
        "adagrad": (True, lambda p: adagrad.torch.Adagrad(p, lr=LR, eps=EPS)),
        "torch": (True, lambda p: torch.optim.Adagrad(p, lr=LR, eps=EPS)),
    }
    if case.model == "embeddingbag":
        # torch's fused Adagrad refuses sparse grads: its user turns them dense, a (rows, dim) grad
        # filled by every backward and a pass of the optimizer over the whole table per step.
        peers["torch fused, dense grads"] = (False, lambda p: torch.optim.Adagrad(p, lr=LR, eps=EPS, fused=True))
    else:
        peers["torch fused"] = (True, lambda p: torch.optim.Adagrad(p, lr=LR, eps=EPS, fused=True))
    return peers


def fbgemm_tbe_available() -> bool:
    try:
        fbgemm.import_module("fbgemm_gpu.split_table_batched_embeddings_ops_training")
    except ImportError:
        return False
    return True


def compiled_peers(case: TrainingCase) -> dict[str, TrainingLoop | CompiledTrainingLoop]:
    """adagrad and torch's fused Adagrad, each compiled and eager (the ratios are against adagrad
    compiled)."""
    batches = make_batches(case)
    factories: dict[str, Factory] = {
        "adagrad": lambda p: adagrad.torch.Adagrad(p, lr=LR, eps=EPS),
        "torch fused": lambda p: torch.optim.Adagrad(p, lr=LR, eps=EPS, fused=True),
    }
    loops: dict[str, TrainingLoop | CompiledTrainingLoop] = {}
    for name, factory in factories.items():
        model = build_model(case)
        assert isinstance(model, MLP)
        loops[name] = CompiledTrainingLoop(model, factory(model.parameters()), batches, fullgraph=name == "adagrad")
    for name, factory in factories.items():
        model = build_model(case)
        loops[f"{name} eager"] = TrainingLoop(model, factory(model.parameters()), batches)
    return loops


def training_peers(case: TrainingCase) -> dict[str, TrainingLoop] | dict[str, TrainingLoop | CompiledTrainingLoop]:
    if case.compiled:
        return compiled_peers(case)
    if case.model == "embeddingbags":
        return collection_peers(case)
    if case.model == "embeddingbag":
        # torch's sparse Adagrad builds sparse tensors internally and warns unless the invariant
        # checks are chosen explicitly; the ids here are valid by construction.
        torch.sparse.check_sparse_tensor_invariants.disable()
    batches = make_batches(case)
    loops = {}
    for name, (sparse, factory) in optimizers(case).items():
        model = build_model(case, sparse)
        loops[name] = TrainingLoop(model, factory(model.parameters()), batches)
    if case.model == "embeddingbag":
        like = build_model(case)
        assert isinstance(like, HashedLogistic)
        groups = [{"params": [like.bag.weight], "rowwise": True}, {"params": like.head.parameters()}]
        loops["adagrad rowwise"] = TrainingLoop(like, adagrad.torch.Adagrad(groups, lr=LR, eps=EPS), batches)
        for name, rowwise in (("adagrad fused", False), ("adagrad fused rowwise", True)):
            like = build_model(case)
            assert isinstance(like, HashedLogistic)
            fused = FusedLogistic(like, rowwise)
            loops[name] = TrainingLoop(fused, adagrad.torch.Adagrad(fused.head.parameters(), lr=LR, eps=EPS), batches)
        if fbgemm_tbe_available():
            for name, rowwise in (("fbgemm TBE", False), ("fbgemm TBE rowwise", True)):
                like = build_model(case)
                assert isinstance(like, HashedLogistic)
                tbe = TbeLogistic(like, rowwise)
                # the head's optimizer: torch's fastest Adagrad for two tiny tensors (72 us a step
                # fused, 105 us its default, measured here)
                head = torch.optim.Adagrad(tbe.head.parameters(), lr=LR, eps=EPS, fused=True)
                loops[name] = TrainingLoop(tbe, head, batches)
    return loops


def collection_peers(case: TrainingCase) -> dict[str, TrainingLoop]:
    """The multi-table step: the tables fused (adagrad.torch.EmbeddingBagCollection, element-wise and
    row-wise state), unfused (nn.EmbeddingBag(sparse=True) per table + adagrad.torch.Adagrad), and
    FBGEMM's TBE (both modes). No torch.optim peer: five peers' tables already take most of the memory."""
    batches = make_batches(case)
    loops: dict[str, TrainingLoop] = {}
    like = build_model(case)
    assert isinstance(like, CollectionRanker)
    loops["adagrad"] = TrainingLoop(like, adagrad.torch.Adagrad(like.parameters(), lr=LR, eps=EPS), batches)
    for name, rowwise in (("adagrad fused", False), ("adagrad fused rowwise", True)):
        like = build_model(case)
        assert isinstance(like, CollectionRanker)
        fused = FusedCollectionRanker(like, rowwise)
        del like
        loops[name] = TrainingLoop(fused, adagrad.torch.Adagrad(fused.head.parameters(), lr=LR, eps=EPS), batches)
    if fbgemm_tbe_available():
        for name, rowwise in (("fbgemm TBE", False), ("fbgemm TBE rowwise", True)):
            like = build_model(case)
            assert isinstance(like, CollectionRanker)
            tbe = TbeCollectionRanker(like, rowwise)
            del like
            head = torch.optim.Adagrad(tbe.head.parameters(), lr=LR, eps=EPS, fused=True)
            loops[name] = TrainingLoop(tbe, head, batches)
    return loops
