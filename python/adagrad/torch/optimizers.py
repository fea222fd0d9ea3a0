"""The torch drop-ins, one per rule (:mod:`adagrad.rules`): each is the one adapter
(:class:`adagrad.torch.adapter.NativeOptimizer`) with its declaration. Adagrad keeps
``torch.optim.Adagrad``'s own constructor, positional arguments and ``fused`` bookkeeping included."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

import torch

from ..rules.adagrad import ADAGRAD
from ..rules.adagrad_decay import ADAGRAD_DECAY
from ..rules.dual_averaging import DUAL_AVERAGING
from ..rules.ftrl import FTRL
from ..rules.proximal import PROXIMAL
from .adapter import NativeOptimizer, _GroupPlan

if TYPE_CHECKING:
    from .._core import Record

__all__ = ["Adagrad", "AdagradDA", "AdagradDecay", "Ftrl", "ProximalAdagrad", "torch_vector_width"]


def torch_vector_width() -> int:
    """How many 16-bit elements one vector of torch's fused CPU Adagrad holds: its kernel rounds
    clr, eps and weight_decay to a 16-bit param's dtype in all but the last ``numel % width``
    elements. x86: 16, whatever ``torch.backends.cpu.get_cpu_capability()`` says, since the kernel
    is registered for AVX2 and not for AVX-512 (an AVX-512 CPU runs the AVX2 kernel: measured with
    torch 2.13, the constants change at multiples of 16), and DEFAULT's vectors are 32 bytes too.
    AArch64: 8, its 128-bit vectors (not measured here)."""
    return 16 if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686") else 8


_TORCH_VECTOR_WIDTH = torch_vector_width()


class Adagrad(NativeOptimizer):
    RULE = ADAGRAD

    def __init__(
        self,
        params: Any,
        lr: float | torch.Tensor = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        **options: Any,
    ) -> None:
        if fused and differentiable:
            raise RuntimeError("`fused` does not support `differentiable`")
        if fused and foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        self._fused_by_default = fused is None
        # torch's keys too, so that a state_dict loads into torch.optim.Adagrad and back.
        self._torch_keys = {"foreach": foreach, "differentiable": False, "fused": True if fused is None else fused}
        super().__init__(
            params,
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            maximize=maximize,
            differentiable=differentiable,
            **options,
        )

    def _init_optimizer(self, params: Any, defaults: dict[str, Any]) -> None:
        super()._init_optimizer(params, {**defaults, **self._torch_keys})

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_fused_by_default", True)

    def state_dict(self) -> dict[str, Any]:
        """torch's ``state_dict``, loadable into ``torch.optim.Adagrad``. A group records
        ``fused=True`` (torch's bitwise path for ours) unless it has had sparse grads, which torch's
        fused kernel refuses: then ``fused=None``, what torch records by default (its sparse path).
        Groups using ``eps_inside_sqrt``, ``decoupled_weight_decay`` or ``rowwise`` cannot continue
        in torch, which has none of them (it would keep the keys and ignore them)."""
        saved = super().state_dict()
        plans = self._plans or []
        for gi, group in enumerate(saved["param_groups"]):
            sparse = gi < len(plans) and plans[gi].sparse_seen
            if sparse and self._fused_by_default and group.get("fused") is True:
                group["fused"] = None
        return saved

    def _native_record(self, group: dict[str, Any], plan: _GroupPlan, first: int) -> Record:
        """torch's fused kernel rounds some constants to a 16-bit param's dtype (StepOptions'
        narrowed_constants_width): with the param's own state dtype, as torch keeps it."""
        record = super()._native_record(group, plan, first)
        record["torch_vector_width"] = _TORCH_VECTOR_WIDTH if group["state_dtype"] is None else 0
        return record


class ProximalAdagrad(NativeOptimizer):
    RULE = PROXIMAL


class AdagradDA(NativeOptimizer):
    RULE = DUAL_AVERAGING


class AdagradDecay(NativeOptimizer):
    RULE = ADAGRAD_DECAY


class Ftrl(NativeOptimizer):
    RULE = FTRL
