"""``adagrad.torch.EmbeddingBagCollection``: several embedding tables trained by their own backward,
one forward and one backward for all of them, FBGEMM TBE's shape: one ids tensor for all tables
and offsets per (table, bag). The forward pools every float32 table in one native call; the backward
updates every table in one native step (one record per table; the tables in turn, each one's rows
split across the threads), each table's update bit for bit ``adagrad.torch.EmbeddingBag``'s
(docs/embedding_bag.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from .. import _core
from .adapter import NativeOptimizer
from .bag_amp import active_scale, any_nonfinite_row, checked_scaler, scaled_bag_step
from .embedding_bag import _MODES, _UNFUSABLE, _rule_class
from .grads import NATIVE_DTYPES, numpy_view

__all__ = ["EmbeddingBagCollection", "EmbeddingBagConfig"]


@dataclass(frozen=True)
class EmbeddingBagConfig:
    """One table of an :class:`EmbeddingBagCollection` (TorchRec's name for the record).

    Args:
        name: the table's key in the forward's output and in ``state_dict``
            (``embedding_bags.<name>.weight``).
        num_embeddings, embedding_dim: the table's shape.
        dtype: the table's dtype (float32, float64, float16, bfloat16); None: torch's default.
        lr: this table's learning rate (its param group's in ``fused_optimizer``); None: the
            collection's ``lr``.
    """

    name: str
    num_embeddings: int
    embedding_dim: int
    dtype: torch.dtype | None = None
    lr: float | None = None


class EmbeddingBagCollection(nn.Module):
    r"""Several ``nn.EmbeddingBag`` tables (modes ``"sum"`` and ``"mean"``) whose one backward updates
    the rows every table's ids touched, in place, with one Adagrad-family rule, in one native call.

    The forward takes FBGEMM TBE's input: ``indices`` holds every table's ids, table after table,
    and ``offsets`` (``len(tables) * batch + 1`` entries, the last one ``len(indices)``) starts
    bag b of table t at ``offsets[t * batch + b]``. It returns each table's pooled rows,
    ``{name: (batch, embedding_dim)}``. Each table trains as ``adagrad.torch.EmbeddingBag`` would
    (bit for bit: the same as ``nn.EmbeddingBag(sparse=True)`` per table, then
    ``adagrad.torch.<Rule>(duplicates="sum").step()``); a table whose output takes no part in
    the loss is not stepped. :attr:`fused_optimizer` is the rule's ``torch.optim.Optimizer``, one
    param group per table, in the tables' order.

    Args:
        tables: the tables' :class:`EmbeddingBagConfig`, names unique.
        mode: ``"sum"`` or ``"mean"``, every table's.
        optimizer, grad_scaler, **options: as ``adagrad.torch.EmbeddingBag``'s.

    Example::

        >>> import torch, adagrad.torch
        >>> tables = [adagrad.torch.EmbeddingBagConfig("user", 1000, 16),
        ...           adagrad.torch.EmbeddingBagConfig("item", 500, 8, lr=0.1)]
        >>> ebc = adagrad.torch.EmbeddingBagCollection(tables, mode="sum", lr=0.05)
        >>> out = ebc(torch.tensor([1, 2, 2, 7, 3]), torch.tensor([0, 2, 3, 4, 5]))  # 2 bags a table
        >>> sum(o.sum() for o in out.values()).backward()  # both tables updated, one native call
    """

    def __init__(
        self,
        tables: Sequence[EmbeddingBagConfig],
        mode: str = "sum",
        *,
        optimizer: str | type[NativeOptimizer] = "adagrad",
        grad_scaler: torch.amp.GradScaler | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        tables = tuple(tables)
        if not tables or not all(isinstance(c, EmbeddingBagConfig) for c in tables):
            raise TypeError("tables must be a non-empty sequence of EmbeddingBagConfig")
        names = [c.name for c in tables]
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"the tables' names must be distinct non-empty strings, got {names}")
        if mode not in _MODES:
            raise ValueError(f"mode must be 'sum' or 'mean', got {mode!r}")
        rule = _rule_class(optimizer)
        for name in _UNFUSABLE:
            if options.get(name) is not None:
                raise ValueError(f"{name} needs the per-id gradient rows, which the fused backward never builds")
        if options.get("nonfinite", "propagate") != "propagate":
            raise ValueError("nonfinite must be 'propagate': the fused backward checks no per-id rows")
        dtypes = [c.dtype or torch.get_default_dtype() for c in tables]
        for c, dtype in zip(tables, dtypes):
            for what in ("num_embeddings", "embedding_dim"):
                value = getattr(c, what)
                if not isinstance(value, int) or value < 1:
                    raise ValueError(f"table {c.name!r}: {what} must be a positive int, got {value!r}")
            if dtype not in NATIVE_DTYPES:
                raise TypeError(f"table {c.name!r}: the dtype must be one of {NATIVE_DTYPES}, got {dtype}")
        self.grad_scaler = checked_scaler(grad_scaler, dtypes)
        self.tables, self.mode = tables, mode
        # nn.EmbeddingBag holders: the state_dict loads into the same ModuleDict of plain bags.
        self.embedding_bags = nn.ModuleDict(
            {
                c.name: nn.EmbeddingBag(c.num_embeddings, c.embedding_dim, mode=mode, sparse=True, dtype=dtype)
                for c, dtype in zip(tables, dtypes)
            }
        )
        groups = [
            {"params": [weight], **({} if c.lr is None else {"lr": c.lr})} for c, weight in zip(tables, self._weights())
        ]
        self.fused_optimizer: NativeOptimizer = rule(groups, **{"duplicates": "sum", **options})

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, optimizer={type(self.fused_optimizer).__name__}"

    def _weights(self) -> list[torch.Tensor]:
        return [cast(nn.EmbeddingBag, bag).weight for bag in self.embedding_bags.values()]

    def forward(
        self, indices: torch.Tensor, offsets: torch.Tensor, per_sample_weights: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Each table's pooled rows; with grad enabled, the backward updates every table."""
        batch = _checked_batch(self, indices, offsets, per_sample_weights)
        weights = self._weights()
        psw_grad = per_sample_weights is not None and per_sample_weights.requires_grad
        if torch.is_grad_enabled() and (psw_grad or any(w.requires_grad for w in weights)):
            pooled = _FusedBags.apply(self, batch, per_sample_weights, *weights)  # type: ignore[no-untyped-call]
        else:
            pooled = self._pooled(batch)
        return dict(zip(self.embedding_bags.keys(), pooled))

    def _pooled(self, batch: _Batch) -> tuple[torch.Tensor, ...]:
        """Every table's ``nn.EmbeddingBag`` forward, bit for bit: the float32 tables in one native
        call (FBGEMM's order, as EmbeddingBag's without padding_idx), the others by the ATen op."""
        outs: list[torch.Tensor] = []
        records = []
        for weight, part in zip(self._weights(), batch.parts):
            if weight.dtype == torch.float32:
                out = torch.empty(batch.count, weight.shape[1])
                records.append(
                    {
                        "table": weight.detach().numpy(),
                        "ids": part.id_array,
                        "offsets": part.bounds,
                        "weights": None if part.weights is None else part.weights.detach().numpy(),
                        "fused_weights": True,
                        "padding_idx": -1,
                        "mean": self.mode == "mean",
                        "out": out.numpy(),
                    }
                )
            else:
                out = torch.embedding_bag(
                    weight.detach(),
                    part.ids,
                    torch.from_numpy(part.bounds[:-1]),
                    False,  # scale_grad_by_freq
                    _MODES.index(self.mode),
                    False,  # sparse
                    None if part.weights is None else part.weights.detach(),
                    False,  # include_last_offset
                    None,  # padding_idx
                )[0]
            outs.append(out)
        if records:
            try:
                _core.embedding_bag_pools(records)
            except ValueError:
                _check_ids(self, batch)  # the clear error, if it is one of ours
                raise
        return tuple(outs)


class _Table:
    """One table's part of a batch: its ids (a view), the bounds of its bags within them, each
    id's bag, its per-sample weights."""

    def __init__(self, ids: torch.Tensor, offs: np.ndarray, weights: torch.Tensor | None, count: int) -> None:
        start = int(offs[0])
        self.ids = ids[start : int(offs[-1])]
        self.id_array = self.ids.numpy()
        self.bounds = offs.astype(np.int64) - start  # bag b is ids [bounds[b], bounds[b + 1])
        self.weights = None if weights is None else weights[start : int(offs[-1])]
        self.count = count
        self._bag_of: np.ndarray | None = None

    @property
    def bag_of(self) -> np.ndarray:
        if self._bag_of is None:
            self._bag_of = np.repeat(np.arange(self.count, dtype=np.int64), np.diff(self.bounds))
        return self._bag_of


class _Batch:
    def __init__(self, parts: list[_Table], count: int) -> None:
        self.parts, self.count = parts, count


def _checked_batch(module: EmbeddingBagCollection, indices: Any, offsets: Any, per_sample_weights: Any) -> _Batch:
    """Every check of a forward's arguments but the ids' range (the pooling's), before anything runs."""
    for what, value in (("indices", indices), ("offsets", offsets)):
        if not isinstance(value, torch.Tensor) or value.dtype not in (torch.int32, torch.int64) or value.dim() != 1:
            raise TypeError(f"{what} must be a 1-D int32 or int64 tensor, got {getattr(value, 'dtype', type(value))}")
    tables = len(module.tables)
    if (offsets.numel() - 1) % tables or offsets.numel() < 1:
        raise ValueError(
            f"offsets must hold len(tables) * batch + 1 = {tables} * batch + 1 entries, got {offsets.numel()}"
        )
    count = (offsets.numel() - 1) // tables
    indices, offsets = indices.contiguous(), offsets.contiguous()
    offs, n = offsets.numpy(), indices.numel()
    if offs[0] != 0 or offs[-1] != n:
        raise ValueError(
            f"offsets must start at 0 and end at len(indices) = {n}, got {int(offs[0])} and {int(offs[-1])}"
        )
    if (offs[1:] < offs[:-1]).any():
        raise ValueError("offsets must be non-decreasing")
    if per_sample_weights is not None:
        if module.mode != "sum":
            raise ValueError("per_sample_weights takes mode='sum' only (as nn.EmbeddingBag)")
        w = per_sample_weights
        dtypes = {weight.dtype for weight in module._weights()}
        if not isinstance(w, torch.Tensor) or w.shape != indices.shape or {w.dtype} != dtypes:
            raise ValueError(
                f"per_sample_weights must be a tensor shaped like indices {tuple(indices.shape)}, "
                f"of every table's dtype (the tables': {sorted(map(str, dtypes))})"
            )
        per_sample_weights = w.contiguous()
    parts = [_Table(indices, offs[t * count : (t + 1) * count + 1], per_sample_weights, count) for t in range(tables)]
    batch = _Batch(parts, count)
    if any(w.dtype != torch.float32 for w in module._weights()):  # the native pooling checks the float32 ones
        _check_ids(module, batch)
    return batch


def _check_ids(module: EmbeddingBagCollection, batch: _Batch) -> None:
    for config, part in zip(module.tables, batch.parts):
        ids = part.id_array
        if ids.size and (ids.min() < 0 or ids.max() >= config.num_embeddings):
            bad = ids[(ids < 0) | (ids >= config.num_embeddings)][0]
            raise IndexError(f"table {config.name!r}: id {int(bad)} is out of range for {config.num_embeddings} rows")


class _FusedBags(torch.autograd.Function):
    """The forward's pooling of every table, and a backward that is one update of them all."""

    @staticmethod
    def forward(
        ctx: Any,
        module: EmbeddingBagCollection,
        batch: _Batch,
        per_sample_weights: torch.Tensor | None,
        *weights: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        ctx.module, ctx.batch = module, batch
        ctx.set_materialize_grads(False)  # an output outside the loss: its table is not stepped
        return module._pooled(batch)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[Any, ...]:
        module: EmbeddingBagCollection = ctx.module
        batch: _Batch = ctx.batch
        weights = module._weights()
        for g, w, config in zip(grads, weights, module.tables):
            if g is not None and g.dtype != w.dtype:
                raise TypeError(f"table {config.name!r}: the output gradient must be {w.dtype}, got {g.dtype}")
        contiguous = [None if g is None else g.contiguous() for g in grads]
        psw_grad = None
        if ctx.needs_input_grad[2]:  # torch's own, before the update
            psw_grad = torch.cat(
                [
                    torch.zeros(part.ids.numel(), dtype=w.dtype)
                    if g is None
                    else torch.ops.aten._embedding_bag_per_sample_weights_backward(
                        g,
                        w.detach(),
                        part.ids,
                        torch.from_numpy(part.bounds[:-1]),
                        torch.from_numpy(part.bag_of),
                        0,
                        -1,
                    )
                    for g, w, part in zip(contiguous, weights, batch.parts)
                ]
            )
        checked = active_scale(module.grad_scaler) is not None
        found = False
        bag_grads: list[list[Any]] = []
        for t, (g, w, part) in enumerate(zip(contiguous, weights, batch.parts)):
            if g is None or not ctx.needs_input_grad[3 + t]:
                bag_grads.append([None])
                continue
            scales = None if part.weights is None else part.weights.detach()
            if module.mode == "mean":  # torch's 1 / bag size, in the table's dtype, per id
                sizes = torch.from_numpy(np.bincount(part.bag_of, minlength=batch.count))
                scales = (1 / sizes.to(w.dtype))[torch.from_numpy(part.bag_of)]
            found = found or (checked and any_nonfinite_row(g, part.bag_of, scales))
            bag_grads.append(
                [
                    {
                        "indices": part.id_array,
                        "pooled": numpy_view(g),
                        "bags": part.bag_of,
                        "scales": None if scales is None else numpy_view(scales.contiguous()),
                    }
                ]
            )
        scaled_bag_step(module.fused_optimizer, bag_grads, module.grad_scaler, found)
        return (None, None, psw_grad, *([None] * len(weights)))
