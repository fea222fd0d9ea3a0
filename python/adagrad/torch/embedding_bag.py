"""``adagrad.torch.EmbeddingBag``: ``nn.EmbeddingBag`` whose backward updates the touched rows in
place with an Adagrad-family rule, the optimizer fused into the bag's backward.

torch's ``EmbeddingBag(sparse=True)`` backward writes one gradient row per id (B·L rows) for the
optimizer to read back. Here the backward hands the native sparse kernel the pooled output gradient
(B rows) with each id's bag and scale (mean's ``1 / bag size``, or its per-sample weight); the
kernel reads id k's row as ``grad_out[bag(k)] * scale_k`` where torch would have written it, with
the same rounding, and sums a row's ids in input order: the update is bit for bit
``nn.EmbeddingBag(sparse=True)`` + ``adagrad.torch.<Rule>(duplicates="sum")`` (docs/embedding_bag.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .. import _core
from .adapter import NativeOptimizer
from .bag_amp import active_scale, any_nonfinite_row, checked_scaler, scaled_bag_step
from .grads import NATIVE_DTYPES, numpy_view
from .optimizers import Adagrad, AdagradDA, AdagradDecay, Ftrl, ProximalAdagrad

__all__ = ["EmbeddingBag"]

_RULES: dict[str, type[NativeOptimizer]] = {
    cls.RULE.name: cls for cls in (Adagrad, ProximalAdagrad, AdagradDA, AdagradDecay, Ftrl)
}
_MODES = ("sum", "mean")
# The step options that need the per-id gradient rows, which are never built.
_UNFUSABLE = ("max_grad_norm", "clip_norm_per_tensor", "clip_value")


class EmbeddingBag(nn.Module):
    r"""``nn.EmbeddingBag`` (modes ``"sum"`` and ``"mean"``) trained by its own backward: each
    backward updates the rows its ids touched, in place, with an Adagrad-family rule, never
    building the per-id gradient rows. The rule's state and ``lr`` live in
    :attr:`fused_optimizer`, a ``torch.optim.Optimizer`` of the rule (LR schedulers,
    ``state_dict`` / ``load_state_dict``; ``zero_grad`` has nothing to clear).

    Exact: given the same output gradient, the update equals ``nn.EmbeddingBag(sparse=True)``
    followed by ``adagrad.torch.<Rule>(duplicates="sum").step()`` bit for bit (every mode,
    per-sample weights, ``padding_idx``, repeated ids within and across bags, empty bags; element-
    wise or, for Adagrad, ``rowwise=True`` state); the forward is ``torch.nn.functional.embedding_bag``.

    Args:
        num_embeddings, embedding_dim, mode, padding_idx, include_last_offset, dtype: as
            ``nn.EmbeddingBag``'s (``mode="max"`` is refused: its backward is not a sum of rows).
        grad_scaler: a ``torch.amp.GradScaler`` whose ``scaler.scale(loss).backward()`` trains the
            table: the backward unscales the gradient, and a step whose gradient holds an inf or a
            NaN updates nothing and makes ``scaler.update()`` back off (docs/embedding_bag.md).
        optimizer: the rule, by name (``"adagrad"``, ``"proximal"``, ``"dual_averaging"``,
            ``"adagrad_decay"``, ``"ftrl"``) or drop-in class (``adagrad.torch.Ftrl``); default Adagrad.
        **options: the rule's options, as its drop-in takes them (``lr=0.05``, ``rowwise=True``,
            ``duplicates="sum"`` by default); the clip options are refused (they need the per-id rows).

    Example::

        >>> import torch, adagrad.torch
        >>> bag = adagrad.torch.EmbeddingBag(1000, 16, mode="sum", lr=0.05)
        >>> out = bag(torch.tensor([1, 2, 2, 7]), torch.tensor([0, 3]))
        >>> out.sum().backward()  # rows 1, 2 and 7 updated here; no optimizer.step()
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        mode: str = "mean",
        padding_idx: int | None = None,
        include_last_offset: bool = False,
        *,
        optimizer: str | type[NativeOptimizer] = "adagrad",
        dtype: torch.dtype | None = None,
        grad_scaler: torch.amp.GradScaler | None = None,
        _weight: torch.Tensor | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        if mode not in _MODES:
            raise ValueError(
                f"mode must be 'sum' or 'mean', got {mode!r}"
                + (": 'max' has no fused update (its backward is not a sum of rows)" if mode == "max" else "")
            )
        if not isinstance(num_embeddings, int) or num_embeddings < 1:
            raise ValueError(f"num_embeddings must be a positive int, got {num_embeddings!r}")
        if not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ValueError(f"embedding_dim must be a positive int, got {embedding_dim!r}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"padding_idx must be within num_embeddings, got {padding_idx}")
            padding_idx %= num_embeddings
        rule = _rule_class(optimizer)
        for name in _UNFUSABLE:
            if options.get(name) is not None:
                raise ValueError(f"{name} needs the per-id gradient rows, which the fused backward never builds")
        if options.get("nonfinite", "propagate") != "propagate":
            raise ValueError("nonfinite must be 'propagate': the fused backward checks no per-id rows")
        dtype = dtype or (torch.get_default_dtype() if _weight is None else _weight.dtype)
        if dtype not in NATIVE_DTYPES:
            raise TypeError(f"the table's dtype must be one of {NATIVE_DTYPES}, got {dtype}")
        if _weight is None:
            weight = torch.empty(num_embeddings, embedding_dim, dtype=dtype)
            nn.init.normal_(weight)
            if padding_idx is not None:
                with torch.no_grad():
                    weight[padding_idx].fill_(0)
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise ValueError("_weight must have shape (num_embeddings, embedding_dim)")
            weight = _weight
        if weight.device.type != "cpu":
            raise TypeError(f"the table must be a CPU tensor, got one on {weight.device}")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.mode, self.padding_idx, self.include_last_offset = mode, padding_idx, include_last_offset
        self.grad_scaler = checked_scaler(grad_scaler, [weight.dtype])
        self.weight = nn.Parameter(weight.contiguous())
        self.fused_optimizer: NativeOptimizer = rule([self.weight], **{"duplicates": "sum", **options})

    def extra_repr(self) -> str:
        return (
            f"{self.num_embeddings}, {self.embedding_dim}, mode={self.mode!r}, padding_idx={self.padding_idx}, "
            f"optimizer={type(self.fused_optimizer).__name__}"
        )

    def forward(
        self,
        input: torch.Tensor,
        offsets: torch.Tensor | None = None,
        per_sample_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The bags' pooled rows, as ``nn.EmbeddingBag``'s forward; with grad enabled, its
        backward updates the table (and returns per_sample_weights' grad if it requires one)."""
        weight = self.weight  # once: a Parameter's lookup through nn.Module.__getattr__ costs ~0.5 us
        bags = _checked_bags(self, weight, input, offsets, per_sample_weights)
        weights_need_grad = bags.weights is not None and bags.weights.requires_grad
        if not (torch.is_grad_enabled() and (weight.requires_grad or weights_need_grad)):
            return self._pooled(bags, weight)
        return _FusedBag.apply(weight, bags.weights, self, bags)  # type: ignore[no-untyped-call]

    def _table_array(self, weight: torch.Tensor) -> np.ndarray:
        """The table's memory as a NumPy array, kept while the weight's memory and layout stay
        (``weight.detach().numpy()`` costs ~1.5 us, a tenth of a small forward)."""
        key = (weight.data_ptr(), weight.shape, weight.stride())
        cached = self.__dict__.get("_table_view")
        if cached is None or cached[0] != key:
            cached = self.__dict__["_table_view"] = (key, weight.detach().numpy())
        return cached[1]

    def _pooled(self, bags: _Bags, weight: torch.Tensor) -> torch.Tensor:
        """nn.EmbeddingBag's forward, bit for bit: float32 tables by the native pooling (in the
        order of torch's CPU paths: without padding_idx, FBGEMM's kernel, whose per-sample weights
        go in by fma; with it, ATen's own loop, product then sum; mean a division by the bag's size),
        other dtypes by the ATen op nn.EmbeddingBag calls. ``weight`` is ``self.weight``."""
        if weight.dtype == torch.float32:
            out = torch.empty(bags.count, self.embedding_dim)
            try:
                _core.embedding_bag_pool(
                    {
                        "table": self._table_array(weight),
                        "ids": bags.id_array,
                        "offsets": bags.bounds,
                        "weights": None if bags.weights is None else bags.weights.detach().numpy(),
                        "fused_weights": self.padding_idx is None,
                        "padding_idx": -1 if self.padding_idx is None else self.padding_idx,
                        "mean": self.mode == "mean",
                        "out": out.numpy(),
                    }
                )
            except ValueError:
                _check_ids_and_offsets(self, bags)  # the clear error, if it is one of ours
                raise
            return out
        return torch.embedding_bag(
            weight.detach(),
            bags.ids,
            bags.offsets,
            False,  # scale_grad_by_freq
            _MODES.index(self.mode),  # ATen's mode numbers: sum 0, mean 1
            False,  # sparse
            None if bags.weights is None else bags.weights.detach(),
            self.include_last_offset,
            self.padding_idx,  # None, not -1: ATen takes another path for -1, with other bits (fma or not)
        )[0]


class _Bags:
    """A forward's checked ids (1-D), offsets and per-sample weights, and the bag of each id
    (NumPy: on arrays of a few thousand ids its calls cost a fraction of torch's dispatch)."""

    def __init__(
        self,
        ids: torch.Tensor,
        id_array: np.ndarray,
        offsets: torch.Tensor,
        weights: torch.Tensor | None,
        count: int,
        offs: np.ndarray,
    ) -> None:
        self.ids, self.id_array, self.offsets, self.weights, self.count = ids, id_array, offsets, weights, count
        self.offset_array = offs
        # bag b is ids [bounds[b], bounds[b + 1])
        self.bounds = np.empty(count + 1, np.int64)
        self.bounds[:count] = offs[:count]
        self.bounds[count] = id_array.size
        self._bag_of: np.ndarray | None = None

    @property
    def bag_of(self) -> np.ndarray:
        """Each id's bag (int64), made when the backward first asks."""
        if self._bag_of is None:
            self._bag_of = np.repeat(np.arange(self.count, dtype=np.int64), np.diff(self.bounds))
        return self._bag_of


def _rule_class(optimizer: Any) -> type[NativeOptimizer]:
    if isinstance(optimizer, str):
        if optimizer not in _RULES:
            raise ValueError(f"optimizer must be one of {sorted(_RULES)} or a drop-in class, got {optimizer!r}")
        return _RULES[optimizer]
    if isinstance(optimizer, type) and issubclass(optimizer, NativeOptimizer):
        return optimizer
    raise TypeError(f"optimizer must be a rule's name or an adagrad.torch drop-in class, got {optimizer!r}")


def _checked_bags(
    module: EmbeddingBag, weight: torch.Tensor, input: Any, offsets: Any, per_sample_weights: Any
) -> _Bags:
    """Every check of a forward's arguments, before anything runs: a clear error, nothing modified."""
    if not isinstance(input, torch.Tensor) or input.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"input must be an int32 or int64 tensor, got {getattr(input, 'dtype', type(input))}")
    if input.dim() == 2:
        if offsets is not None:
            raise ValueError("offsets must be None for 2-D input (each row is a bag)")
        rows, length = input.shape
        offsets = torch.arange(0, rows * length + (1 if module.include_last_offset else 0), length or 1)
        offsets = offsets[: rows + (1 if module.include_last_offset else 0)].to(input.dtype)
        if isinstance(per_sample_weights, torch.Tensor) and per_sample_weights.shape == input.shape:
            per_sample_weights = per_sample_weights.reshape(-1)
        input = input.reshape(-1)
    elif input.dim() == 1:
        if not isinstance(offsets, torch.Tensor) or offsets.dim() != 1:
            raise ValueError("1-D input needs 1-D offsets (the start of each bag)")
        if offsets.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"offsets must be an int32 or int64 tensor, got {offsets.dtype}")
    else:
        raise ValueError(f"input must be 1-D (with offsets) or 2-D (bags of one length), got {input.dim()}-D")
    n = input.numel()
    input, offsets = input.contiguous(), offsets.contiguous()
    ids, offs = input.numpy(), offsets.numpy()
    count = offs.size - (1 if module.include_last_offset else 0)
    if count < 0 or (offs.size and offs[0] != 0):
        raise ValueError("offsets must start at 0" + (" and hold the end too" if module.include_last_offset else ""))
    if module.include_last_offset and offs.size and offs[-1] != n:  # the bounds' end is n, not offs[-1]
        if offs[-1] > n:
            raise ValueError(f"offsets[-1] = {int(offs[-1])} is past the end of input ({n} ids)")
        raise ValueError(f"with include_last_offset, offsets[-1] must be len(input) = {n}, got {int(offs[-1])}")
    if per_sample_weights is not None:
        if module.mode != "sum":
            raise ValueError("per_sample_weights takes mode='sum' only (as nn.EmbeddingBag)")
        w = per_sample_weights
        if not isinstance(w, torch.Tensor) or w.dtype != weight.dtype or w.shape != input.shape:
            raise ValueError(
                f"per_sample_weights must be a {weight.dtype} tensor shaped like input {tuple(input.shape)}"
            )
        per_sample_weights = w.contiguous()
    bags = _Bags(input, ids, offsets, per_sample_weights, count, offs)
    if weight.dtype != torch.float32:  # the native pooling checks the rest before it writes
        _check_ids_and_offsets(module, bags)
    return bags


def _check_ids_and_offsets(module: EmbeddingBag, bags: _Bags) -> None:
    """The checks that read every id and offset, with their clear errors."""
    ids, offs, n = bags.id_array, bags.offset_array, bags.id_array.size
    if n and (ids.min() < 0 or ids.max() >= module.num_embeddings):
        bad = ids[(ids < 0) | (ids >= module.num_embeddings)][0]
        raise IndexError(f"id {int(bad)} is out of range for a table of {module.num_embeddings} rows")
    if offs.size > 1 and (offs[1:] < offs[:-1]).any():
        raise ValueError("offsets must be non-decreasing")
    if offs.size and offs[-1] > n:
        raise ValueError(f"offsets[-1] = {int(offs[-1])} is past the end of input ({n} ids)")


class _FusedBag(torch.autograd.Function):
    """The forward's pooling, and a backward that is the rule's update of the touched rows."""

    @staticmethod
    def forward(
        ctx: Any, weight: torch.Tensor, weights: torch.Tensor | None, module: EmbeddingBag, bags: _Bags
    ) -> torch.Tensor:
        ctx.module, ctx.bags = module, bags
        return module._pooled(bags, weight)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        module: EmbeddingBag = ctx.module
        bags: _Bags = ctx.bags
        weight = module.weight
        if grad.dtype != weight.dtype:
            raise TypeError(f"the output gradient must be {weight.dtype}, got {grad.dtype}")
        grad = grad.contiguous()
        weights_grad = None
        if bags.weights is not None and ctx.needs_input_grad[1]:  # torch's own, before the update
            weights_grad = torch.ops.aten._embedding_bag_per_sample_weights_backward(
                grad,
                weight.detach(),
                bags.ids,
                bags.offsets,
                torch.from_numpy(bags.bag_of),
                0,
                -1 if module.padding_idx is None else module.padding_idx,
            )
        if not ctx.needs_input_grad[0]:  # the table is frozen (weight.requires_grad_(False))
            return None, weights_grad, None, None
        ids, bag_of = bags.id_array, bags.bag_of
        scales = None if bags.weights is None else bags.weights.detach()
        if module.padding_idx is not None:  # torch drops the padding ids' rows
            keep = ids != module.padding_idx
            ids, bag_of = ids[keep], bag_of[keep]
            scales = None if scales is None else scales[torch.from_numpy(keep)]
        if module.mode == "mean":  # torch's 1 / bag size, in the table's dtype, per id
            sizes = torch.from_numpy(np.bincount(bag_of, minlength=bags.count))
            scales = (1 / sizes.to(weight.dtype))[torch.from_numpy(bag_of)]
        scaler = module.grad_scaler
        found = active_scale(scaler) is not None and any_nonfinite_row(grad, bag_of, scales)
        # Called with no ids too: the step is counted, as the sparse pipeline's empty grad's would be.
        bag_grad = {
            "indices": ids,
            "pooled": numpy_view(grad),
            "bags": bag_of,
            "scales": None if scales is None else numpy_view(scales.contiguous()),
        }
        scaled_bag_step(module.fused_optimizer, [[bag_grad]], scaler, found)
        return None, weights_grad, None, None
