"""The stateful Adagrad optimizer over NumPy arrays."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from . import _checkpoint, _core
from ._core import NonFiniteGradError
from ._groups import GroupLayout, check_unique_keys, grads_per_group, group_params, label, split_groups
from ._memory import full_like_at_same_line_offset

__all__ = ["Adagrad", "NonFiniteGradError", "SparseGrad"]

# The order the native step takes them in.
OPTION_NAMES = ("lr", "lr_decay", "weight_decay", "eps", "maximize", "decoupled_weight_decay", "eps_inside_sqrt")
GROUP_DEFAULT_NAMES = OPTION_NAMES + ("initial_accumulator_value", "rowwise", "duplicates")
# Options of the whole step (not per group), read at every step; in the native step's order.
STEP_OPTION_NAMES = ("nonfinite", "grad_scale", "max_grad_norm", "norm_type", "clip_norm_per_tensor", "clip_value")


class SparseGrad(NamedTuple):
    """The gradient of some rows of a 2-D param: row ``indices[i]`` receives ``values[i]``.

    Give it (or a plain ``(indices, values)`` tuple) to :meth:`Adagrad.step` in place of a dense
    grad; see :func:`adagrad.sparse_update` for the semantics.
    """

    indices: np.ndarray
    values: np.ndarray


def check_group_options(group: Mapping[str, Any], where: str) -> None:
    """TypeError / ValueError unless the group's options are valid; messages say where."""
    try:
        _core.check_options(*(group[name] for name in OPTION_NAMES))
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}{error}") from None
    initial = group["initial_accumulator_value"]
    if isinstance(initial, bool) or not isinstance(initial, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}initial_accumulator_value must be a real number, got {type(initial).__name__}")
    try:
        finite = math.isfinite(initial)
    except OverflowError:  # an int beyond float range
        finite = False
    if not finite or initial < 0:
        raise ValueError(f"{where}initial_accumulator_value must be a finite number >= 0, got {initial}")
    if not isinstance(group["rowwise"], (bool, np.bool_)):
        raise TypeError(f"{where}rowwise must be a bool, got {type(group['rowwise']).__name__}")
    if group["duplicates"] not in ("sum", "sequential"):
        raise ValueError(f"{where}duplicates must be 'sum' or 'sequential', got {group['duplicates']!r}")


class Adagrad:
    r"""Adagrad over NumPy arrays, updated in place by one native call per step.

    For each parameter array :math:`\theta` with state sum :math:`s` and step count :math:`t`,
    element-wise (torch.optim.Adagrad's maths; bit for bit its ``fused=True`` kernel)::

        t   <- t + 1
        g   <- g / grad_scale                  if grad_scale is not None (loss scaling)
        g   <- clip(g)                         if max_grad_norm, clip_norm_per_tensor or clip_value
        g   <- -g                              if maximize
        g   <- g + wd * theta  (one fma)       if weight_decay and not decoupled_weight_decay
        theta <- theta * (1 - clr * wd)        if weight_decay and decoupled_weight_decay
        clr = lr / fma(t - 1, lr_decay, 1)     (in double, then rounded to the array's dtype)
        s   <- s + g * g       (one fma)
        theta <- theta - clr * g / (sqrt(s) + eps)      [eps_inside_sqrt: / sqrt(s + eps)]

    Args:
        params: a list of float32/float64 arrays; a dict name -> array; or a list of param-group
            dicts ``{"params": <list or dict>, "lr": ..., ...}`` whose options override the defaults.
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay per step (default 0).
        weight_decay: L2 penalty (default 0).
        initial_accumulator_value: starting value of every state sum (default 0); honoured per group.
        eps: added to the denominator for numerical stability (default 1e-10).
        maximize: ascend the objective instead of descending (default False).
        decoupled_weight_decay: decay the weights directly, AdamW-style, instead of adding
            ``wd * theta`` to the gradient (default False).
        eps_inside_sqrt: use ``sqrt(s + eps)``, the Keras 3 / optax placement (default False).
        rowwise: keep one accumulator per row of each 2-D param (FBGEMM's row-wise Adagrad; its
            grads must then be sparse) (default False).
        duplicates: for sparse grads, ``"sum"`` repeated indices then update once (default) or
            ``"sequential"``: one update per occurrence (see :func:`adagrad.sparse_update`).
        nonfinite: what a step does when a grad (dense, or a sparse grad's values) holds a NaN or an
            infinity: ``"propagate"`` computes with it, as torch does (default; nothing is checked,
            no cost); ``"skip"`` leaves every param and state untouched, does not count the step,
            and ``step`` returns False (torch's ``found_inf`` semantics); ``"raise"`` raises
            :class:`adagrad.NonFiniteGradError` (a ValueError) naming the grad, nothing modified.
        grad_scale: None (default), or a loss scale > 0 that every grad is divided by before
            anything else (mixed-precision training), as torch's fused kernel does with its
            ``grad_scale`` tensor: the divisor is ``grad_scale`` rounded to float32, converted to the
            array's dtype; the division is an IEEE division in that dtype. Grads are not modified.
        max_grad_norm: None (default), or clip the norm of all grads of the step together to it,
            as ``torch.nn.utils.clip_grad_norm_(params, max_grad_norm, norm_type)`` before the step
            does: ``c = (1 / (total_norm + 1e-6)) * max_grad_norm`` (torch's arithmetic, in each
            grad's dtype), every grad multiplied by ``c`` when ``c < 1`` (or NaN: a NaN or infinite
            norm multiplies every grad by NaN or 0, as torch does; ``nonfinite="skip"`` or
            ``"raise"`` catch it first). The norm is measured in the same call, from one read of the
            grads; the clip is applied inside the update: the grads are read once more and never
            written. ``opt.last_grad_norm`` is the total norm measured (what ``clip_grad_norm_``
            returns).
        norm_type: 2 (default) or ``math.inf`` (or ``"inf"``): the norm of max_grad_norm and
            clip_norm_per_tensor. The 2-norm is computed in float64, in one fixed order (blocks of
            1,024 elements summed in 64 lanes, then pairwise across lanes, blocks and grads): the same bits on
            every ISA and thread count, and in :mod:`adagrad.reference`.
        clip_norm_per_tensor: None (default), or clip each grad by its own norm (Keras
            ``clipnorm``): ``g * (clip_norm_per_tensor / norm(g))`` when ``norm(g) >
            clip_norm_per_tensor``. (Keras computes ``g * clipnorm / max(norm, clipnorm)``, which
            rounds twice and touches grads below the bound too; the clipped values agree to the
            last bit or so.)
        clip_value: None (default), or clamp every grad element to ``[-clip_value, clip_value]``
            (Keras ``clipvalue``, torch's ``clip_grad_value_``); a NaN stays NaN.

        At most one of max_grad_norm, clip_norm_per_tensor and clip_value may be set. Clipping comes
        after the loss scale is divided out, before maximize and weight decay: torch's GradScaler
        order (``scaler.unscale_(opt)``, clip, step). A sparse grad takes part with its values as
        given: for unique indices (a coalesced grad) that is the norm of the dense gradient; for
        repeated indices, of the occurrences, not of their sums. (torch's ``clip_grad_norm_``
        refuses sparse grads.)

    ``step(grads)`` takes the grads in the same structure as ``params`` (a list, a dict, or a list
    with one list/dict per group); a grad of None skips that param. A grad may be sparse:
    ``SparseGrad(indices, values)`` (or a plain ``(indices, values)`` tuple) updates only those
    rows of a 2-D param, in the same all-or-nothing call as the dense grads::

        opt = adagrad.Adagrad([{"params": {"emb": table}, "rowwise": True}, {"params": {"w": w}}])
        opt.step([{"emb": adagrad.SparseGrad(ids, rows_grad)}, {"w": grad_w}]) Every array is validated before
    any is written: a bad one raises and leaves everything untouched. Arrays are never copied or
    cast: dtypes, shapes and memory order must match exactly.

    ``nonfinite``, ``grad_scale`` and the clip options are attributes of the optimizer (not per
    group), read at every step: set ``opt.grad_scale`` to a loss scaler's current scale before each
    step.

    State: ``opt.state[key]`` is ``{"sum": array, "step": 0-d int64 array}`` where ``key`` is the
    param's flat index (list params) or its name (dict params). ``state_dict()`` and
    ``load_state_dict()`` round-trip it exactly; ``save(path)`` and ``load(path)`` write and read it
    as a checkpoint file (atomically; see :meth:`save`).

    Threads: steps of different optimizers over different arrays may run in parallel from several
    Python threads (the GIL is released during the arithmetic). Two threads must never step (or
    save, or load) the same optimizer or the same arrays at the same time.

    Example:
        >>> import numpy as np, adagrad
        >>> w = np.zeros(3, dtype=np.float32)
        >>> opt = adagrad.Adagrad([w], lr=0.1)
        >>> opt.step([np.array([1.0, -2.0, 0.0], dtype=np.float32)])
        True
        >>> w
        array([-0.1,  0.1,  0. ], dtype=float32)
        >>> int(opt.state[0]["step"]), opt.state[0]["sum"]
        (1, array([1., 4., 0.], dtype=float32))

    Reference: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 12 (2011).
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
        eps_inside_sqrt: bool = False,
        rowwise: bool = False,
        duplicates: str = "sum",
        nonfinite: str = "propagate",
        grad_scale: float | None = None,
        max_grad_norm: float | None = None,
        norm_type: float | str = 2.0,
        clip_norm_per_tensor: float | None = None,
        clip_value: float | None = None,
    ) -> None:
        self.defaults: dict[str, Any] = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "eps": eps,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
            "eps_inside_sqrt": eps_inside_sqrt,
            "initial_accumulator_value": initial_accumulator_value,
            "rowwise": rowwise,
            "duplicates": duplicates,
        }
        check_group_options(self.defaults, "")
        _core.check_step_options(nonfinite, grad_scale)
        _core.check_clip_options(max_grad_norm, norm_type, clip_norm_per_tensor, clip_value)
        self.nonfinite = nonfinite
        self.grad_scale = grad_scale
        self.max_grad_norm = max_grad_norm
        self.norm_type = norm_type
        self.clip_norm_per_tensor = clip_norm_per_tensor
        self.clip_value = clip_value
        # The norm of all grads of the last step with max_grad_norm or clip_norm_per_tensor set.
        self.last_grad_norm: float | None = None
        groups, self._as_groups = split_groups(params)
        self.param_groups: list[dict[str, Any]] = []
        self._layouts: list[GroupLayout] = []
        self.state: dict[Any, dict[str, np.ndarray]] = {}

        all_arrays: list[Any] = []
        all_keys: list[Any] = []
        for index, given in enumerate(groups):
            unknown = set(given) - set(GROUP_DEFAULT_NAMES) - {"params"}
            if unknown:
                raise TypeError(f"param group {index}: unknown option {sorted(unknown)[0]!r}")
            group = {**self.defaults, **given}
            check_group_options(group, f"param group {index}: ")
            arrays, keys, by_name = group_params(group, first_index=len(all_keys))
            group["params"] = arrays
            if by_name:
                group["param_names"] = list(keys)
            self.param_groups.append(group)
            self._layouts.append(GroupLayout(keys, by_name, [label(k) for k in keys], [], np.zeros(0, np.int64)))
            all_arrays += arrays
            all_keys += keys
        check_unique_keys(k for k in all_keys if isinstance(k, str))
        _core.check_params(all_arrays, [label(k) for k in all_keys])

        for group, layout in zip(self.param_groups, self._layouts):
            initial = group["initial_accumulator_value"]
            if group["rowwise"]:
                for p, name in zip(group["params"], layout.labels):
                    if p.ndim != 2:
                        raise ValueError(f"param {name} has shape {p.shape}: rowwise=True needs 2-D params (rows, dim)")
                layout.sums = [np.full(p.shape[0], initial, p.dtype) for p in group["params"]]
            else:
                layout.sums = [full_like_at_same_line_offset(p, initial) for p in group["params"]]
            layout.steps = np.zeros(len(layout.keys), np.int64)
            for i, key in enumerate(layout.keys):
                self.state[key] = {"sum": layout.sums[i], "step": layout.steps[i : i + 1].reshape(())}

    def step(self, grads: Any) -> bool:
        """One Adagrad update of every param whose grad is not None; grads mirror ``params``.

        Returns True if the update was applied; False if it was skipped (``nonfinite="skip"`` and a
        grad holds a NaN or an infinity: nothing changed, step counts included).
        """
        if type(grads) in (list, tuple) and not self._as_groups and not self._layouts[0].by_name:
            per_group: Any = (grads,)  # the common case; the native call checks the length
        else:
            per_group = grads_per_group(grads, self._layouts, self._as_groups)
        # Options are read at every step, so that changes to param_groups take effect (schedulers).
        return self._apply(
            [
                (
                    group["params"],
                    group_grads,
                    layout.sums,
                    layout.steps,
                    layout.labels,
                    group["lr"],
                    group["lr_decay"],
                    group["weight_decay"],
                    group["eps"],
                    group["maximize"],
                    group["decoupled_weight_decay"],
                    group["eps_inside_sqrt"],
                    group["duplicates"],
                )
                for group, layout, group_grads in zip(self.param_groups, self._layouts, per_group)
            ]
        )

    def _apply(self, batches: list[tuple[Any, ...]]) -> bool:
        result = _core.step(
            batches,
            self.nonfinite,
            self.grad_scale,
            self.max_grad_norm,
            self.norm_type,
            self.clip_norm_per_tensor,
            self.clip_value,
        )
        if type(result) is tuple:  # a norm clip: (applied, norm)
            applied, self.last_grad_norm = result
            return applied is True
        return result is True

    def state_dict(self) -> dict[str, Any]:
        """A copy of the state: ``{"state": {key: {"step", "sum"}}, "param_groups": [...]}``."""
        state = {
            key: {"step": int(layout.steps[i]), "sum": layout.sums[i].copy()}
            for layout in self._layouts
            for i, key in enumerate(layout.keys)
        }
        groups = [
            {
                **{k: list(v) if isinstance(v, list) else v for k, v in group.items() if k != "params"},
                "params": list(layout.keys),
            }
            for group, layout in zip(self.param_groups, self._layouts)
        ]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a ``state_dict()`` of an optimizer over the same params; all or nothing."""
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            raise TypeError("state_dict must be a dict with 'state' and 'param_groups'")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not all(isinstance(g, Mapping) for g in saved_groups):
            raise TypeError("state_dict 'param_groups' must be a list of dicts")
        if not isinstance(saved_state, Mapping):
            raise TypeError("state_dict 'state' must be a dict")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"state_dict has {len(saved_groups)} param groups, this optimizer {len(self.param_groups)}"
            )
        for index, (saved, layout) in enumerate(zip(saved_groups, self._layouts)):
            if list(saved.get("params", [])) != layout.keys:
                raise ValueError(
                    f"param group {index}: state_dict holds params {saved.get('params')}, expected {layout.keys}"
                )
            check_group_options({**self.param_groups[index], **saved}, f"state_dict param group {index}: ")
            if "rowwise" in saved and saved["rowwise"] != self.param_groups[index]["rowwise"]:
                raise ValueError(
                    f"state_dict param group {index}: rowwise={saved['rowwise']}, "
                    f"this optimizer rowwise={self.param_groups[index]['rowwise']}"
                )
            for i, key in enumerate(layout.keys):
                _check_saved_entry(saved_state.get(key), layout.sums[i], layout.labels[i])

        for saved, group, layout in zip(saved_groups, self.param_groups, self._layouts):
            group.update({name: saved[name] for name in GROUP_DEFAULT_NAMES if name in saved})
            for i, key in enumerate(layout.keys):
                np.copyto(layout.sums[i], saved_state[key]["sum"])
                layout.steps[i] = int(saved_state[key]["step"])

    def save(self, path: Any, *, params: bool = False) -> None:
        """Write the optimizer's state to ``path`` (a ``.npz`` file), atomically.

        The file holds every state sum and step count, each group's hyper-parameters and param keys,
        ``nonfinite``, ``grad_scale`` and the clip options, a format version, and with ``params=True`` the params too.
        It is written to a temporary file in the same folder, flushed and fsync'ed, then renamed
        over ``path`` (and the folder fsync'ed): a crash or a kill at any moment leaves either the
        previous file or the new one, never a mix. (A kill can leave the temporary
        ``.<name>.<random>.tmp`` behind; it is safe to delete.) The file is a plain NumPy ``.npz``
        archive with no pickled objects. Resuming from it with :meth:`load` gives bit-identical
        training to never stopping.
        """
        _checkpoint.save(self, path, params=params)

    def load(self, path: Any) -> None:
        """Restore a checkpoint written by :meth:`save` into this optimizer; all or nothing.

        The optimizer must be built over the same params: the same groups, keys, shapes and
        dtypes. Everything is read and checked (format and version, keys, shapes, dtypes, step
        counts, hyper-parameters) before anything is changed; a mismatch raises ValueError (or
        TypeError) saying what differs, and leaves the optimizer and its params untouched. If the
        file holds the params (``save(..., params=True)``), they are copied into this optimizer's
        params in place. Restores the groups' hyper-parameters, ``nonfinite``, ``grad_scale`` and the
        clip options.
        Pickled objects are refused (``allow_pickle=False``).
        """
        _checkpoint.load(self, path)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            options = ", ".join(f"{name}={group[name]}" for name in GROUP_DEFAULT_NAMES)
            lines.append(f"  param group {index}: {len(group['params'])} params, {options}")
        lines.append("  " + ", ".join(f"{name}={getattr(self, name)!r}" for name in STEP_OPTION_NAMES))
        return "\n".join(lines + [")"])


def _check_saved_entry(entry: Any, current_sum: np.ndarray, name: str) -> None:
    if not isinstance(entry, Mapping) or "sum" not in entry or "step" not in entry:
        raise ValueError(f"state_dict has no 'sum' and 'step' for {name}")
    saved_sum, saved_step = entry["sum"], entry["step"]
    if not isinstance(saved_sum, np.ndarray):
        raise TypeError(f"state_dict 'sum' of {name} must be a numpy.ndarray, got {type(saved_sum).__name__}")
    if saved_sum.dtype != current_sum.dtype or saved_sum.shape != current_sum.shape:
        raise ValueError(
            f"state_dict 'sum' of {name} is {saved_sum.dtype}{list(saved_sum.shape)}, "
            f"the param is {current_sum.dtype}{list(current_sum.shape)}"
        )
    if (
        isinstance(saved_step, (bool, np.bool_))
        or not isinstance(saved_step, (int, np.integer))
        or not 0 <= int(saved_step) <= 2**63 - 2
    ):
        raise ValueError(f"state_dict 'step' of {name} must be an int from 0 to 2**63 - 2, got {saved_step!r}")
