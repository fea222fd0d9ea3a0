"""What every rule does to a grad first, in this order: unscale, clip, maximize. The grad is in
the compute type T (float32 for 16-bit arrays); each operation is one IEEE operation in T."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .checks import ClipRule

__all__ = ["Clip", "Transforms", "clip", "clip_of", "maximize", "transformed", "unscale"]


class Clip(NamedTuple):
    """The clip one grad gets, in its compute type T: g <- clip(g * scale, lo, hi)."""

    scale: Any
    lo: Any
    hi: Any


class Transforms(NamedTuple):
    """A grad's transforms as decided for one update: the loss scale, the clip (None: none),
    and maximize."""

    grad_scale: float | None = None
    clip: Clip | None = None
    maximize: bool = False


def unscale(g: np.ndarray, grad_scale: float) -> np.ndarray:
    """g / T(float32(grad_scale)): the loss scale rounded to float32, then converted to T."""
    divisor = g.dtype.type(np.float32(grad_scale))
    with np.errstate(all="ignore"):
        return np.asarray(g / divisor)


def clip_of(rule: ClipRule, norm: float, t: type[np.floating[Any]]) -> Clip | None:
    """The clip of one grad of compute type t, given the norm its rule measures; None where it
    changes nothing.

    value:       clip(g, -v, v)
    global_norm: c = (1 / (T(norm) + T(1e-6))) * T(max_norm), applied unless c >= 1 (torch's
                 clip_grad_norm_, its arithmetic in T; a NaN or infinite norm gives c NaN or 0)
    tensor_norm: c = T(max_norm) / T(norm), applied unless norm <= max_norm (compared in float64)
    """
    if rule.kind == "value":
        return Clip(t(1), -t(rule.threshold), t(rule.threshold))
    with np.errstate(all="ignore"):
        if rule.kind == "global_norm":
            c = (t(1) / (t(norm) + t(1e-6))) * t(rule.threshold)
            applies = not c >= 1
        else:
            c = t(rule.threshold) / t(norm)
            applies = not norm <= rule.threshold
    return Clip(c, -t(np.inf), t(np.inf)) if applies else None


def clip(g: np.ndarray, c: Clip) -> np.ndarray:
    """clip(g * scale, lo, hi); a NaN stays NaN."""
    with np.errstate(all="ignore"):
        return np.asarray(np.clip(g * c.scale, c.lo, c.hi))


def maximize(g: np.ndarray) -> np.ndarray:
    """-g: ascend instead of descend."""
    return np.asarray(-g)


def transformed(g: np.ndarray, transforms: Transforms) -> np.ndarray:
    """g unscaled, clipped and negated, each where asked."""
    if transforms.grad_scale is not None:
        g = unscale(g, transforms.grad_scale)
    if transforms.clip is not None:
        g = clip(g, transforms.clip)
    if transforms.maximize:
        g = maximize(g)
    return g
