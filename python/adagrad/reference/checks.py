"""The checks of every option and array, done before anything is written; each error names what
is wrong (the messages follow the native ones where users see both)."""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from .precision import is_16bit

__all__ = [
    "ClipRule",
    "NonFiniteGradError",
    "StepOptions",
    "check_all_finite",
    "check_decay_counts",
    "check_dense",
    "check_sparse",
    "clip_rule",
    "decay_rate",
    "duplicates_mode",
    "flag",
    "grad_scale_of",
    "non_negative",
    "non_positive",
    "nonfinite_mode",
    "norm_type_is_inf",
    "positive",
    "positive_int",
    "sr_seed",
    "step_number",
    "step_options",
]


class NonFiniteGradError(ValueError):
    """A grad held a NaN or an infinity under nonfinite="raise": nothing was updated."""


class ClipRule(NamedTuple):
    """Which clip a step makes ("global_norm", "tensor_norm" or "value") and its threshold."""

    kind: str
    threshold: float


def _shown(value: float) -> str:
    return f"{value:.17g}"


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def real(value: Any, name: str, where: str = "", bound: str = ">=") -> float:
    """A real number (not a bool) as a float."""
    if _is_bool(value) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{where}{name} must be a finite number {bound} 0, got an int too large for a float") from None


def non_negative(value: Any, name: str, where: str = "") -> float:
    x = real(value, name, where)
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{where}{name} must be a finite number >= 0, got {_shown(x)}")
    return x


def non_positive(value: Any, name: str, where: str = "") -> float:
    x = real(value, name, where, "<=")
    if not math.isfinite(x) or x > 0:
        raise ValueError(f"{where}{name} must be a finite number <= 0, got {_shown(x)}")
    return x


def positive(value: Any, name: str, where: str = "") -> float:
    x = real(value, name, where, ">")
    if not math.isfinite(x) or not x > 0:
        raise ValueError(f"{where}{name} must be a finite number > 0, got {_shown(x)}")
    return x


def flag(value: Any, name: str, where: str = "") -> bool:
    if not _is_bool(value):
        raise TypeError(f"{where}{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def _integer(value: Any, name: str, where: str = "") -> int:
    if _is_bool(value):
        raise TypeError(f"{where}{name} must be an int, got {type(value).__name__}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{where}{name} must be an int, got {type(value).__name__}") from None


def step_number(step: Any) -> int:
    """The 1-based number of this update: an int from 1 to 2**63 - 2."""
    t = _integer(step, "step")
    if not 1 <= t < 2**63 - 1:
        raise ValueError(f"step must be >= 1 and < 2**63 - 1 (the 1-based number of this update), got {step}")
    return t


def positive_int(value: Any, name: str, where: str = "") -> int:
    n = _integer(value, name, where)
    if not 1 <= n < 2**63:
        raise ValueError(f"{where}{name} must be an int >= 1, got {value}")
    return n


def decay_rate(value: Any, where: str = "") -> float:
    rate = real(value, "accumulator_decay_rate", where)
    if not 0 < rate < 1:
        raise ValueError(f"{where}accumulator_decay_rate must be > 0 and < 1, got {_shown(rate)}")
    return rate


def nonfinite_mode(value: Any) -> str:
    message = "nonfinite must be 'propagate', 'skip' or 'raise', got "
    if not isinstance(value, str):
        raise TypeError(message + type(value).__name__)
    if value not in ("propagate", "skip", "raise"):
        raise ValueError(message + repr(value))
    return value


def duplicates_mode(value: Any, where: str = "") -> str:
    if not isinstance(value, str) or value not in ("sum", "sequential"):
        raise ValueError(f"{where}duplicates must be 'sum' or 'sequential', got {value!r}")
    return value


def grad_scale_of(value: Any) -> float | None:
    """None, or a loss scale that is finite and > 0 as float32 (the type the update divides by)."""
    if value is None:
        return None
    scale = real(value, "grad_scale", bound=">")
    with np.errstate(all="ignore"):
        as_float32 = np.float32(scale)
    if not (math.isfinite(scale) and np.isfinite(as_float32) and as_float32 > 0):
        raise ValueError(
            "grad_scale must be a finite number > 0 (in float32, the loss scale's dtype: about 1.4e-45 to 3.4e38), "
            f"got {_shown(scale)}"
        )
    return scale


def norm_type_is_inf(value: Any) -> bool:
    """True for the inf-norm (math.inf or "inf"), False for the 2-norm; anything else is refused."""
    bad = f"norm_type must be 2 or inf (float('inf') or 'inf'), got {value!r}"
    if isinstance(value, str):
        if value != "inf":
            raise ValueError(bad)
        return True
    try:
        p = real(value, "norm_type")
    except ValueError:
        raise ValueError(bad) from None
    if p not in (2.0, math.inf):
        raise ValueError(bad)
    return p == math.inf


def clip_rule(max_grad_norm: Any, norm_type: Any, clip_norm_per_tensor: Any, clip_value: Any) -> ClipRule | None:
    """The one clip set (at most one may be), its threshold finite and > 0; None for no clip."""
    norm_type_is_inf(norm_type)
    chosen: ClipRule | None = None
    for kind, name, value in (
        ("global_norm", "max_grad_norm", max_grad_norm),
        ("tensor_norm", "clip_norm_per_tensor", clip_norm_per_tensor),
        ("value", "clip_value", clip_value),
    ):
        if value is None:
            continue
        if chosen is not None:
            first = {"global_norm": "max_grad_norm", "tensor_norm": "clip_norm_per_tensor"}[chosen.kind]
            raise ValueError(
                f"at most one of max_grad_norm, clip_norm_per_tensor and clip_value may be set, got {first} and {name}"
            )
        chosen = ClipRule(kind, positive(value, name))
    return chosen


def sr_seed(stochastic_rounding: Any, seed: Any, where: str = "") -> int | None:
    """The seed when stochastic_rounding is on, else None; the seed an int from 0 to 2**64 - 1."""
    on = flag(stochastic_rounding, "stochastic_rounding", where)
    value = _integer(seed, "seed", where)
    if not 0 <= value < 2**64:
        raise ValueError(f"{where}seed must be an int from 0 to 2**64 - 1, got {seed}")
    return value if on else None


class StepOptions(NamedTuple):
    """The options of a whole step (or call), checked."""

    nonfinite: str
    grad_scale: float | None
    clip: ClipRule | None
    norm_type: Any


def step_options(
    nonfinite: Any, grad_scale: Any, max_grad_norm: Any, norm_type: Any, clip_norm_per_tensor: Any, clip_value: Any
) -> StepOptions:
    return StepOptions(
        nonfinite_mode(nonfinite),
        grad_scale_of(grad_scale),
        clip_rule(max_grad_norm, norm_type, clip_norm_per_tensor, clip_value),
        norm_type,
    )


def check_all_finite(grads: Mapping[str, np.ndarray], nonfinite: str) -> bool:
    """nonfinite="skip": False if any grad holds a NaN or an infinity; "raise": NonFiniteGradError."""
    if nonfinite == "propagate":
        return True
    for name, grad in grads.items():
        bad = ~np.isfinite(grad)
        if bad.any():
            if nonfinite == "skip":
                return False
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise NonFiniteGradError(
                f"{name} holds a non-finite value ({grad[where]} at index {where}); "
                "nonfinite='raise': nothing was updated"
            )
    return True


def _float_array(a: Any, name: str) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if not (a.dtype in (np.float32, np.float64) or is_16bit(a.dtype)):
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {a.dtype}")
    return a


def _check_writeable(arrays: Mapping[str, np.ndarray]) -> None:
    for name, a in arrays.items():
        if not a.flags.writeable:
            raise ValueError(f"{name} is read-only")


def _check_states(param: np.ndarray, states: Mapping[str, Any], name: str) -> None:
    for state_name, state in states.items():
        _float_array(state, state_name)
        if state.dtype != param.dtype and not (is_16bit(param.dtype) and state.dtype == np.float32):
            raise TypeError(
                f"{state_name} has dtype {state.dtype} but {name} has {param.dtype}: "
                "a state must share one dtype with its param (a 16-bit param's state: or float32)"
            )


def check_dense(param: Any, grad: Any, states: Mapping[str, Any], names: tuple[str, str] = ("param", "grad")) -> None:
    """param float16/bfloat16/float32/float64; grad its dtype; each float state its dtype (or
    float32 for a 16-bit param); one shape; param and states writeable."""
    _float_array(param, names[0])
    _float_array(grad, names[1])
    if grad.dtype != param.dtype:
        raise TypeError(
            f"{names[1]} has dtype {grad.dtype} but {names[0]} has {param.dtype}: they must share one dtype"
        )
    _check_states(param, states, names[0])
    for name, a in {names[1]: grad, **states}.items():
        if a.shape != param.shape:
            raise ValueError(f"{name} has shape {a.shape} but {names[0]} has {param.shape}: they must share one shape")
    _check_writeable({names[0]: param, **states})


def check_sparse(
    table: Any, indices: Any, values: Any, states: Mapping[str, Any], *, rowwise: bool = False, name: str = "table"
) -> list[int]:
    """A 2-D table (rows, dim); indices 1-D ints in [0, rows); values (k, dim) of its dtype;
    each float state (rows, dim) (or (rows,) where row-wise state is allowed); the rows, as ints."""
    _float_array(table, name)
    if table.ndim != 2 or not table.flags.c_contiguous:
        raise ValueError(f"{name} must be a 2-D C-order array (rows, dim) for sparse updates, got shape {table.shape}")
    if not isinstance(indices, np.ndarray) or indices.dtype.kind not in "iu" or indices.ndim != 1:
        raise TypeError(f"indices of {name} must be a 1-D numpy.ndarray of ints")
    _float_array(values, f"values of {name}")
    if values.dtype != table.dtype:
        raise TypeError(f"values have dtype {values.dtype} but {name} has {table.dtype}: they must share one dtype")
    if values.shape != (indices.size, table.shape[1]):
        raise ValueError(f"values have shape {values.shape}, expected {(indices.size, table.shape[1])}")
    _check_states(table, states, name)
    allowed = [table.shape, (table.shape[0],)] if rowwise else [table.shape]
    for state_name, state in states.items():
        if state.shape not in allowed:
            raise ValueError(f"{state_name} has shape {state.shape}, expected one of {allowed}")
    rows = [int(i) for i in indices]
    for k, row in enumerate(rows):
        if not 0 <= row < table.shape[0]:
            raise ValueError(f"indices of {name}[{k}] = {row} is out of range for a table of {table.shape[0]} rows")
    _check_writeable({name: table, **states})
    return rows


def check_decay_counts(counts: Any, shapes: list[tuple[int, ...]]) -> None:
    """decay_counts: a writeable int64 array of one of `shapes`."""
    if not isinstance(counts, np.ndarray) or counts.dtype != np.int64:
        raise TypeError("decay_counts must be an int64 numpy.ndarray")
    if counts.shape not in shapes:
        raise ValueError(f"decay_counts has shape {counts.shape}, expected one of {shapes}")
    _check_writeable({"decay_counts": counts})
