"""The reference optimizers: drop-ins for :class:`adagrad.Adagrad`, :class:`adagrad.ProximalAdagrad`,
:class:`adagrad.AdagradDA`, :class:`adagrad.AdagradDecay` and :class:`adagrad.Ftrl` (the same constructors,
param groups, state, step options, ``state_dict`` format and checkpoints), each param updated in turn by the
rules of :mod:`adagrad.reference.rules`. Param i among all the optimizer's params (in group order)
draws stochastic-rounding stream i. Each constructor names its rule's options; the options every
rule shares (``**transforms``: maximize, duplicates, state_dtype, stochastic_rounding, seed, and the
step options) are the base's (:mod:`adagrad.reference.base`, with their defaults).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import rules, updates
from .base import COMMON_OPTION_NAMES, ReferenceOptimizer, Work
from .checks import decay_rate, duplicates_mode, flag, non_negative, non_positive, positive, positive_int, sr_seed
from .precision import is_16bit
from .rules import Rule
from .transforms import Transforms

__all__ = ["Adagrad", "AdagradDA", "AdagradDecay", "Ftrl", "ProximalAdagrad"]


def _check_common(group: Mapping[str, Any], where: str) -> None:
    """maximize, duplicates, state_dtype, stochastic_rounding and seed."""
    flag(group["maximize"], "maximize", where)
    duplicates_mode(group["duplicates"], where)
    if group["state_dtype"] not in (None, "float32"):
        raise ValueError(
            f"{where}state_dtype must be None (the param's dtype) or 'float32', got {group['state_dtype']!r}"
        )
    sr_seed(group["stochastic_rounding"], group["seed"], where)


def _state_dtype(group: Mapping[str, Any], param: np.ndarray, name: str) -> np.dtype[Any]:
    """The param's float states' dtype: its own, or float32 (state_dtype="float32", 16-bit params)."""
    if group["state_dtype"] is None or param.dtype == np.float32:
        return param.dtype
    if not is_16bit(param.dtype):
        raise ValueError(f"param {name} is {param.dtype}: state_dtype='float32' is for float16 and bfloat16 params")
    return np.dtype(np.float32)


def _full(param: np.ndarray, value: float, group: Mapping[str, Any], name: str) -> np.ndarray:
    return np.full_like(param, value, dtype=_state_dtype(group, param, name))


class Adagrad(ReferenceOptimizer):
    """Reference for :class:`adagrad.Adagrad`: the same constructor, state and API."""

    GROUP_OPTION_NAMES = (
        "lr",
        "lr_decay",
        "weight_decay",
        "initial_accumulator_value",
        "eps",
        "decoupled_weight_decay",
        "eps_inside_sqrt",
        "rowwise",
        *COMMON_OPTION_NAMES,
    )
    SHAPE_OPTION_NAMES = ("rowwise", "state_dtype")
    CHECKPOINT_FORMAT = "adagrad.Adagrad checkpoint"

    def __init__(
        self,
        params: Any,
        *,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        decoupled_weight_decay: bool = False,
        eps_inside_sqrt: bool = False,
        rowwise: bool = False,
        **transforms: Any,
    ) -> None:
        own = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "eps": eps,
            "decoupled_weight_decay": decoupled_weight_decay,
            "eps_inside_sqrt": eps_inside_sqrt,
            "initial_accumulator_value": initial_accumulator_value,
            "rowwise": rowwise,
        }
        super().__init__(params, own, transforms)

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        for name in ("lr", "lr_decay", "weight_decay", "eps", "initial_accumulator_value"):
            non_negative(group[name], name, where)
        for name in ("decoupled_weight_decay", "eps_inside_sqrt", "rowwise"):
            flag(group[name], name, where)
        _check_common(group, where)

    def _initial_states(self, group: Mapping[str, Any], param: np.ndarray, name: str) -> list[np.ndarray]:
        initial = group["initial_accumulator_value"]
        if not group["rowwise"]:
            return [_full(param, initial, group, name)]
        if param.ndim != 2:
            raise ValueError(f"param {name} has shape {param.shape}: rowwise=True needs 2-D params (rows, dim)")
        return [np.full(param.shape[0], initial, _state_dtype(group, param, name))]

    def _rule(self, group: Mapping[str, Any], step: int, rowwise: bool) -> Rule:
        return functools.partial(
            rules.adagrad,
            clr=rules.corrected_lr(float(group["lr"]), float(group["lr_decay"]), step),
            wd=float(group["weight_decay"]),
            decoupled=bool(group["decoupled_weight_decay"]),
            eps=float(group["eps"]),
            eps_inside_sqrt=bool(group["eps_inside_sqrt"]),
            rowwise=rowwise,
        )


class ProximalAdagrad(ReferenceOptimizer):
    """Reference for :class:`adagrad.ProximalAdagrad` (state: "sum")."""

    GROUP_OPTION_NAMES = ("lr", "l1", "l2", "eps", "initial_accumulator_value", *COMMON_OPTION_NAMES)
    CHECKPOINT_FORMAT = "adagrad.ProximalAdagrad checkpoint"

    def __init__(
        self,
        params: Any,
        *,
        lr: float = 1e-2,
        l1: float = 0.0,
        l2: float = 0.0,
        eps: float = 0.0,
        initial_accumulator_value: float = 0.1,
        **transforms: Any,
    ) -> None:
        own = {
            "lr": lr,
            "l1": l1,
            "l2": l2,
            "eps": eps,
            "initial_accumulator_value": initial_accumulator_value,
        }
        super().__init__(params, own, transforms)

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        for name in ("lr", "l1", "l2", "eps"):
            non_negative(group[name], name, where)
        positive(group["initial_accumulator_value"], "initial_accumulator_value", where)
        _check_common(group, where)

    def _initial_states(self, group: Mapping[str, Any], param: np.ndarray, name: str) -> list[np.ndarray]:
        return [_full(param, group["initial_accumulator_value"], group, name)]

    def _rule(self, group: Mapping[str, Any], step: int, rowwise: bool) -> Rule:
        return functools.partial(
            rules.proximal,
            lr=float(group["lr"]),
            l1=float(group["l1"]),
            l2=float(group["l2"]),
            eps=float(group["eps"]),
        )


class AdagradDA(ReferenceOptimizer):
    """Reference for :class:`adagrad.AdagradDA` (states: "grad_sum", "sum"; t = the param's step)."""

    GROUP_OPTION_NAMES = ("lr", "l1", "l2", "initial_gradient_squared_accumulator_value", *COMMON_OPTION_NAMES)
    STATE_NAMES = ("grad_sum", "sum")
    FLOAT_STATE_NAMES = ("grad_sum", "sum")
    SIGNED_STATE_NAMES = ("grad_sum",)
    CHECKPOINT_FORMAT = "adagrad.AdagradDA checkpoint"

    def __init__(
        self,
        params: Any,
        *,
        lr: float = 1e-2,
        l1: float = 0.0,
        l2: float = 0.0,
        initial_gradient_squared_accumulator_value: float = 0.1,
        **transforms: Any,
    ) -> None:
        own = {
            "lr": lr,
            "l1": l1,
            "l2": l2,
            "initial_gradient_squared_accumulator_value": initial_gradient_squared_accumulator_value,
        }
        super().__init__(params, own, transforms)

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        for name in ("lr", "l1", "l2"):
            non_negative(group[name], name, where)
        name = "initial_gradient_squared_accumulator_value"
        positive(group[name], name, where)
        _check_common(group, where)

    def _initial_states(self, group: Mapping[str, Any], param: np.ndarray, name: str) -> list[np.ndarray]:
        initial = group["initial_gradient_squared_accumulator_value"]
        return [_full(param, 0.0, group, name), _full(param, initial, group, name)]

    def _rule(self, group: Mapping[str, Any], step: int, rowwise: bool) -> Rule:
        return functools.partial(
            rules.dual_averaging, step=step, lr=float(group["lr"]), l1=float(group["l1"]), l2=float(group["l2"])
        )


class AdagradDecay(ReferenceOptimizer):
    """Reference for :class:`adagrad.AdagradDecay` (states: "sum", "decay_count": int64, one count
    per row of a 2-D C-order param with rows, else one)."""

    GROUP_OPTION_NAMES = (
        "lr",
        "accumulator_decay_step",
        "accumulator_decay_rate",
        "initial_accumulator_value",
        *COMMON_OPTION_NAMES,
    )
    STATE_NAMES = ("sum", "decay_count")
    CHECKPOINT_FORMAT = "adagrad.AdagradDecay checkpoint"

    def __init__(
        self,
        params: Any,
        *,
        lr: float = 1e-2,
        accumulator_decay_step: int = 100000,
        accumulator_decay_rate: float = 0.9,
        initial_accumulator_value: float = 0.1,
        **transforms: Any,
    ) -> None:
        own = {
            "lr": lr,
            "accumulator_decay_step": accumulator_decay_step,
            "accumulator_decay_rate": accumulator_decay_rate,
            "initial_accumulator_value": initial_accumulator_value,
        }
        super().__init__(params, own, transforms)

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        non_negative(group["lr"], "lr", where)
        positive_int(group["accumulator_decay_step"], "accumulator_decay_step", where)
        decay_rate(group["accumulator_decay_rate"], where)
        positive(group["initial_accumulator_value"], "initial_accumulator_value", where)
        _check_common(group, where)

    def _initial_states(self, group: Mapping[str, Any], param: np.ndarray, name: str) -> list[np.ndarray]:
        rows = updates.decay_rows(param)
        return [_full(param, group["initial_accumulator_value"], group, name), np.zeros(rows or 1, np.int64)]

    def _rule(self, group: Mapping[str, Any], step: int, rowwise: bool) -> Rule:
        return functools.partial(rules.adagrad, clr=float(group["lr"]), eps=0.0)

    def _update(self, work: Work, states: dict[str, np.ndarray], step: int, transforms: Transforms) -> None:
        """The decays due first (the touched rows of a sparse grad; every row, or the whole
        param with one count, for a dense one), then Adagrad's update."""
        group = work.group
        target = step // int(group["accumulator_decay_step"])
        counts, state = states["decay_count"], states["sum"]
        if work.rows is not None:
            rows: list[int] | None = sorted(set(work.rows))
        else:
            rows = None if counts.shape == (1,) else list(range(counts.size))
        rate, floor = float(group["accumulator_decay_rate"]), float(group["initial_accumulator_value"])
        updates.catch_up(state, counts, rows, target, rate, floor)
        super()._update(work, states, step, transforms)


class Ftrl(ReferenceOptimizer):
    """Reference for :class:`adagrad.Ftrl` (states: "n", "z")."""

    GROUP_OPTION_NAMES = (
        "lr",
        "lr_power",
        "initial_accumulator_value",
        "l1",
        "l2",
        "l2_shrinkage",
        "beta",
        "multiply_linear_by_lr",
        *COMMON_OPTION_NAMES,
    )
    STATE_NAMES = ("n", "z")
    FLOAT_STATE_NAMES = ("n", "z")
    SIGNED_STATE_NAMES = ("z",)
    CHECKPOINT_FORMAT = "adagrad.Ftrl checkpoint"

    def __init__(
        self,
        params: Any,
        *,
        lr: float = 1e-3,
        lr_power: float = -0.5,
        initial_accumulator_value: float = 0.1,
        l1: float = 0.0,
        l2: float = 0.0,
        l2_shrinkage: float = 0.0,
        beta: float = 0.0,
        multiply_linear_by_lr: bool = False,
        **transforms: Any,
    ) -> None:
        own = {
            "lr": lr,
            "lr_power": lr_power,
            "initial_accumulator_value": initial_accumulator_value,
            "l1": l1,
            "l2": l2,
            "l2_shrinkage": l2_shrinkage,
            "beta": beta,
            "multiply_linear_by_lr": multiply_linear_by_lr,
        }
        super().__init__(params, own, transforms)

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        positive(group["lr"], "lr", where)
        non_positive(group["lr_power"], "lr_power", where)
        for name in ("initial_accumulator_value", "l1", "l2", "l2_shrinkage", "beta"):
            non_negative(group[name], name, where)
        flag(group["multiply_linear_by_lr"], "multiply_linear_by_lr", where)
        _check_common(group, where)

    def _initial_states(self, group: Mapping[str, Any], param: np.ndarray, name: str) -> list[np.ndarray]:
        return [_full(param, group["initial_accumulator_value"], group, name), _full(param, 0.0, group, name)]

    def _rule(self, group: Mapping[str, Any], step: int, rowwise: bool) -> Rule:
        return functools.partial(
            rules.ftrl,
            lr=float(group["lr"]),
            lr_power=float(group["lr_power"]),
            l1=float(group["l1"]),
            l2=float(group["l2"]),
            l2_shrinkage=float(group["l2_shrinkage"]),
            beta=float(group["beta"]),
            multiply_linear_by_lr=bool(group["multiply_linear_by_lr"]),
        )
