"""``torch.amp.GradScaler`` with the fused embedding bags (``adagrad.torch.EmbeddingBag``,
``EmbeddingBagCollection``): their update runs inside ``backward()``, before ``scaler.step`` could
unscale or check a gradient, so the module is given the scaler and its backward does both.

What the unfused pipeline (``nn.EmbeddingBag(sparse=True)``, ``scaler.step(adagrad.torch.<Rule>)``)
does, the backward does: GradScaler checks the sparse grad's values, one row per id (the pooled
gradient's row of the id's bag times the id's scale), for an inf or a NaN; found one, the step
updates nothing and counts nothing, else the native step divides each grad by the scale (the
``grad_scale`` step option). The verdict is then recorded in the scaler as ``scaler.step`` would
have recorded it for ``fused_optimizer``, so ``scaler.update()`` backs off after a skipped step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch.amp.grad_scaler import OptState

from .adapter import NativeOptimizer


def checked_scaler(scaler: Any, dtypes: Iterable[torch.dtype]) -> torch.amp.GradScaler | None:
    """The module's scaler, refused where the fused update could not match the unfused pipeline."""
    if scaler is None:
        return None
    if not isinstance(scaler, torch.amp.GradScaler):
        raise TypeError(f"grad_scaler must be a torch.amp.GradScaler, got {type(scaler).__name__}")
    if torch.float16 in set(dtypes):
        # GradScaler coalesces a float16 sparse grad (summing each row's ids in its own order)
        # before its check; the fused update sums in input order and checks each id's row.
        raise ValueError("grad_scaler takes no float16 table: GradScaler checks float16 sparse grads once coalesced")
    return scaler


def active_scale(scaler: torch.amp.GradScaler | None) -> torch.Tensor | None:
    """The scale the output gradient carries (a float32 0-d tensor), or None without an enabled scaler."""
    if scaler is None or not scaler.is_enabled():
        return None
    scale = scaler._get_scale_async()
    if scale is None:
        raise RuntimeError("the grad_scaler has no scale yet: backward() of scaler.scale(loss), not of loss")
    return scale


def any_nonfinite_row(grad: torch.Tensor, bag_of: np.ndarray, scales: torch.Tensor | None) -> bool:
    """Whether an id's gradient row, ``grad[bag_of[k]] * scales[k]`` rounded to grad's dtype,
    holds an inf or a NaN; without building the rows: rounding is monotone, so a row's products
    are all finite exactly when its largest magnitude's product is (a NaN, an inf times 0 included)."""
    if bag_of.size == 0:
        return False
    peaks = grad.abs().amax(dim=1)[torch.from_numpy(bag_of)]
    if scales is not None:
        peaks = peaks * scales.abs()
    return not bool(torch.isfinite(peaks).all())


def scaled_bag_step(
    optimizer: NativeOptimizer, grads: list[list[Any]], scaler: torch.amp.GradScaler | None, found: bool
) -> None:
    """The fused update under ``scaler`` (None: a plain one); ``found``: an id's row is not finite."""
    scale = active_scale(scaler)
    if scale is None or scaler is None:
        optimizer._bag_step(grads)
        return
    found_inf = torch.full((), float(found), dtype=torch.float32, device=scale.device)
    optimizer._bag_step(grads, scale, found_inf)
    state = scaler._per_optimizer_states[id(optimizer)]  # what GradScaler.step records (torch 2.x)
    per_device = state["found_inf_per_device"]
    device = found_inf.device
    per_device[device] = found_inf + per_device[device] if device in per_device else found_inf
    state["stage"] = OptState.STEPPED
