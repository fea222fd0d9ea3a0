"""Params the native kernels do not take (on another device; complex, for Adagrad): each rule's formula
in plain torch ops. The same maths, not the same bits: torch rounds each operation on its own, with no
fma. A rule without an entry here refuses such params. The loss scale is divided out before (as
GradScaler.unscale_ would have); the clips and the nonfinite checks are the native call's alone (the
adapter refuses them beside fallback params)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import torch
from torch.optim.adagrad import adagrad as _torch_adagrad

from .grads import HALF_DTYPES

__all__ = ["FALLBACKS", "Fallback"]

# check(p, group, label): raise unless the fallback can update p; step(state, group, params, labels):
# update the params with a grad, their state entries in `state` (torch's optimizer state).
Fallback = tuple[
    Callable[[torch.Tensor, Mapping[str, Any], str], None],
    Callable[[Mapping[Any, dict[str, Any]], Mapping[str, Any], list[torch.Tensor], dict[int, str]], None],
]


def _lr(group: Mapping[str, Any]) -> float:
    lr = group["lr"]
    return float(lr.item()) if isinstance(lr, torch.Tensor) else float(lr)


def _real_only(p: torch.Tensor, group: Mapping[str, Any], label: str) -> None:
    if not p.is_floating_point():
        raise TypeError(f"{label} has dtype {p.dtype}; this rule takes real floating-point params")


def _adagrad_check(p: torch.Tensor, group: Mapping[str, Any], label: str) -> None:
    if group["stochastic_rounding"] and p.dtype in HALF_DTYPES:
        raise ValueError(
            f"{label} ({p.dtype} on {p.device}) is updated by torch's own Adagrad, which rounds to nearest: "
            "stochastic_rounding takes CPU params"
        )
    if group["state_dtype"] is not None and p.dtype in HALF_DTYPES:
        raise ValueError(
            f"{label} ({p.dtype} on {p.device}) is updated by torch's own Adagrad, which keeps the state in the "
            "param's dtype: state_dtype='float32' takes CPU params"
        )
    if group["decoupled_weight_decay"] or group["eps_inside_sqrt"] or group["rowwise"]:
        raise ValueError(
            f"{label} ({p.dtype} on {p.device}) is updated by torch's own Adagrad, which has no "
            "decoupled_weight_decay, eps_inside_sqrt or rowwise; use CPU params"
        )


def _adagrad_step(
    state: Mapping[Any, dict[str, Any]], group: Mapping[str, Any], params: list[torch.Tensor], labels: dict[int, str]
) -> None:
    """torch's single-tensor Adagrad."""
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return
    grads = [p.grad for p in with_grad if p.grad is not None]
    _torch_adagrad(
        with_grad,
        grads,
        [state[p]["sum"] for p in with_grad],
        [state[p]["step"] for p in with_grad],
        has_sparse_grad=any(g.is_sparse for g in grads),
        foreach=False,
        has_complex=any(torch.is_complex(p) for p in with_grad),
        lr=group["lr"],
        weight_decay=group["weight_decay"],
        lr_decay=group["lr_decay"],
        eps=group["eps"],
        maximize=group["maximize"],
    )


def _sparse_entries(g: torch.Tensor, duplicates: str) -> list[tuple[tuple[torch.Tensor, ...], torch.Tensor]]:
    """A sparse COO grad as (index, values) batches: one batch of its coalesced entries (``"sum"``),
    or one per entry in input order (``"sequential"``)."""
    if duplicates == "sum":
        g = g.coalesce()
        return [(tuple(g.indices()), g.values())]
    indices, values = g._indices(), g._values()
    return [(tuple(indices[:, k : k + 1]), values[k : k + 1]) for k in range(values.shape[0])]


def _element_wise(update: Callable[..., None], names: tuple[str, ...]) -> Callable[..., None]:
    """A step running `update(p, g, *states, t=, group=)` on each param (the addressed entries of a
    sparse grad, gathered, updated, scattered back)."""

    def step(
        state: Mapping[Any, dict[str, Any]],
        group: Mapping[str, Any],
        params: list[torch.Tensor],
        labels: dict[int, str],
    ) -> None:
        options = {**group, "lr": _lr(group)}
        for p in params:
            g = p.grad
            if g is None:
                continue
            if group["maximize"]:
                g = -g
            entry = state[p]
            entry["step"].add_(1)  # in place: replacing the entry would rebuild the plans
            t = int(entry["step"])
            tensors = [p.detach(), *(entry[name] for name in names)]
            if not g.is_sparse:
                update(tensors[0], g, *tensors[1:], t=t, group=options)
                continue
            for index, values in _sparse_entries(g, group["duplicates"]):
                picked = [x[index] for x in tensors]  # the addressed entries (copies)
                update(picked[0], values, *picked[1:], t=t, group=options)
                for x, y in zip(tensors, picked):
                    x[index] = y

    return step


def _proximal(p: torch.Tensor, g: torch.Tensor, s: torch.Tensor, *, t: int, group: Mapping[str, Any]) -> None:
    s.addcmul_(g, g)
    eta = group["lr"] / (s.sqrt() + group["eps"] if group["eps"] > 0 else s.sqrt())
    v = torch.addcmul(p, eta, g, value=-1)
    if group["l1"] > 0:
        v = torch.copysign((v.abs() - eta * group["l1"]).clamp_min(0), v)
    p.copy_(v / (eta * group["l2"] + 1))


def _dual_averaging(
    p: torch.Tensor, g: torch.Tensor, a: torch.Tensor, s: torch.Tensor, *, t: int, group: Mapping[str, Any]
) -> None:
    lr = group["lr"]
    a.add_(g)
    s.addcmul_(g, g)
    shrunk = (a.abs() - t * group["l1"]).clamp_min(0)
    p.copy_(-torch.copysign(lr * shrunk / (s.sqrt() + group["l2"] * t * lr), a))


def _ftrl(
    p: torch.Tensor, g: torch.Tensor, n: torch.Tensor, z: torch.Tensor, *, t: int, group: Mapping[str, Any]
) -> None:
    lr, power = group["lr"], -group["lr_power"]
    l2 = group["l2"] + group["beta"] / (2 * lr)
    shrunk_g = g + 2 * group["l2_shrinkage"] * p
    n_new = n + g * g
    change = n_new.pow(power) - n.pow(power)
    if group["multiply_linear_by_lr"]:
        z.add_(shrunk_g * lr - change * p)
        quadratic, l1 = n_new.pow(power) + 2 * l2 * lr, group["l1"] * lr
    else:
        z.add_(shrunk_g - change / lr * p)
        quadratic, l1 = n_new.pow(power) / lr + 2 * l2, group["l1"]
    n.copy_(n_new)
    p.copy_(torch.where(z.abs() > l1, (z.clamp(-l1, l1) - z) / quadratic, torch.zeros_like(z)))


_DECAY_SPARSE_TEXT = (
    "{label}: AdagradDecay takes sparse grads of a 2-D C-contiguous param by rows (one sparse dim, as "
    "nn.Embedding gives), one decay count per row; its sparse grad {view}"
)


def decay_count_rows(p: torch.Tensor) -> int:
    """How many decay counts p keeps: one per row of a 2-D C-contiguous param, else one."""
    return p.shape[0] if p.dim() == 2 and p.shape[0] > 0 and p.is_contiguous() else 1


def _catch_up(table: torch.Tensor, due: torch.Tensor, rate: float, floor: float) -> None:
    """Row r of ``table`` (in place) takes ``due[r]`` decays, one rounding each:
    ``s <- max(s * rate, floor)`` (a NaN stays NaN). Stops once every row still due is at its
    fixed point (the floor), as the native kernel does."""
    if due.numel() == 0:
        return
    for k in range(int(due.max())):
        active = due > k
        rows = table[active]
        decayed = (rows * rate).clamp_min(floor)
        if bool(((decayed == rows) | (decayed.isnan() & rows.isnan())).all()):
            return  # later decays of these rows (the only ones still due) change nothing
        table[active] = decayed


def _decay_step(
    state: Mapping[Any, dict[str, Any]], group: Mapping[str, Any], params: list[torch.Tensor], labels: dict[int, str]
) -> None:
    """AdagradDecay in torch ops, the per-row catch-up included."""
    lr, rate, floor = _lr(group), group["accumulator_decay_rate"], group["initial_accumulator_value"]
    for p in params:
        g = p.grad
        if g is None:
            continue
        if group["maximize"]:
            g = -g
        entry, label, count_rows = state[p], labels[id(p)], decay_count_rows(p)
        counts = entry["decay_count"]
        x, s = p.detach(), entry["sum"]
        per_row = p.dim() == 2 and count_rows == p.shape[0] and p.is_contiguous()
        if g.is_sparse and (not per_row or g.sparse_dim() != 1):
            raise ValueError(_DECAY_SPARSE_TEXT.format(label=label, view=f"has {g.sparse_dim()} sparse dims"))
        entry["step"].add_(1)  # in place: replacing the entry would rebuild the plans
        target = int(entry["step"]) // group["accumulator_decay_step"]
        if not g.is_sparse:
            table = s if per_row else s.unsqueeze(0)  # a view: the catch-up writes s
            _catch_up(table, target - counts, rate, floor)
            counts.clamp_(min=target)
            s.addcmul_(g, g)
            x.sub_(g * lr / s.sqrt())
            continue
        if group["duplicates"] == "sum":
            g = g.coalesce()
            batches = [(g.indices()[0], g.values())]
        else:
            indices, values = g._indices()[0], g._values()
            batches = [(indices[k : k + 1], values[k : k + 1]) for k in range(values.shape[0])]
        for rows, v in batches:
            picked = s[rows]  # a copy of the addressed rows (distinct within a batch)
            _catch_up(picked, target - counts[rows], rate, floor)
            counts[rows] = counts[rows].clamp(min=target)
            picked.addcmul_(v, v)
            s[rows] = picked
            x[rows] = x[rows] - v * lr / picked.sqrt()


FALLBACKS: dict[str, Fallback] = {
    "adagrad": (_adagrad_check, _adagrad_step),
    "proximal": (_real_only, _element_wise(_proximal, ("sum",))),
    "dual_averaging": (_real_only, _element_wise(_dual_averaging, ("grad_sum", "sum"))),
    "adagrad_decay": (_real_only, _decay_step),
    "ftrl": (_real_only, _element_wise(_ftrl, ("n", "z"))),
}
