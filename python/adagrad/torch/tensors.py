"""How the native kernels see a torch param, its states and grads: the dim order that makes a param
C-contiguous, a state tensor checked in the param's layout, step counts, the grads' write-back."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .grads import NATIVE_DTYPES

__all__ = ["make_grads_contiguous", "native_order", "quoted", "state_in_layout", "step_count", "unscale_grads"]


def native_order(p: torch.Tensor) -> Any:
    """None if the native kernel takes p as it is; a dim order that makes it C-contiguous (e.g.
    channels_last); False if p is not a dense CPU tensor of a native dtype."""
    if p.device.type != "cpu" or p.dtype not in NATIVE_DTYPES or p.layout != torch.strided:
        return False
    if p.is_contiguous():
        return None
    order = tuple(sorted(range(p.dim()), key=lambda d: -p.stride()[d]))
    return order if p.permute(order).is_contiguous() else False


def state_in_layout(
    s: Any, name: str, p: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype, label: str
) -> torch.Tensor:
    """A state tensor as the native kernel needs it: of ``dtype`` (p's, for most states), p's
    device and ``shape`` (a ValueError naming the param otherwise: a tensor put in the state by hand
    is used, never converted behind the user's back), in p's memory layout if shaped like p, else
    contiguous (a copy of the same values if not)."""
    if not isinstance(s, torch.Tensor):
        raise ValueError(f"state {name} of {label} must be a tensor, got {type(s).__name__}")
    if tuple(s.shape) != shape or s.dtype != dtype or s.device != p.device:
        raise ValueError(
            f"state {name} of {label} must be a {dtype} tensor of shape {shape} on {p.device}, got a "
            f"{s.dtype} tensor of shape {tuple(s.shape)} on {s.device}"
        )
    if shape != tuple(p.shape):
        return s if s.is_contiguous() else s.contiguous()
    if s.stride() == p.stride():
        return s
    return torch.empty_like(p, memory_format=torch.preserve_format).copy_(s)  # p's layout, same values


def step_count(step: Any, label: str) -> int:
    value = float(step)
    if not math.isfinite(value) or value < 0 or value != int(value):
        raise ValueError(f"state step of {label} must be a whole number >= 0, got {value}")
    return int(value)


def quoted(names: tuple[str, ...]) -> str:
    quoted = [f"'{name}'" for name in names]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def unscale_grads(params: list[torch.Tensor], scale: torch.Tensor, *, exact: bool) -> None:
    """Each grad divided by the loss scale in place: by an IEEE division in its dtype (``exact``,
    torch's fused kernel's write-back) or times the float32 reciprocal (GradScaler.unscale_'s)."""
    factor = scale if exact else scale.double().reciprocal().float()
    for p in params:
        g = p.grad
        if g is None:
            continue
        values = g._values() if g.is_sparse else g
        if exact:
            values.div_(factor.to(values.device))
        else:
            values.mul_(factor.to(values.device))


def make_grads_contiguous(grad_lists: list[list[Any]]) -> bool:
    """Replace strided dense grads by C-ordered copies, in place in the lists; False if there was none."""
    changed = False
    for grads in grad_lists:
        for i, g in enumerate(grads):
            if isinstance(g, np.ndarray) and not g.flags.c_contiguous:
                grads[i] = np.ascontiguousarray(g)
                changed = True
    return changed
