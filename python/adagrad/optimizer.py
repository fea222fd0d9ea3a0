"""The stateful Adagrad optimizer over NumPy arrays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from . import _core
from ._core import NonFiniteGradError
from ._groups import GroupLayout
from ._memory import full_like_at_same_line_offset
from ._optimizer_core import Optimizer, check_duplicates, check_initial_value

__all__ = ["Adagrad", "NonFiniteGradError", "SparseGrad"]

# The order the native step takes them in.
OPTION_NAMES = ("lr", "lr_decay", "weight_decay", "eps", "maximize", "decoupled_weight_decay", "eps_inside_sqrt")
GROUP_DEFAULT_NAMES = OPTION_NAMES + (
    "initial_accumulator_value",
    "rowwise",
    "duplicates",
    "state_dtype",
    "stochastic_rounding",
    "seed",
)
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
    check_initial_value(group["initial_accumulator_value"], "initial_accumulator_value", where, positive=False)
    if not isinstance(group["rowwise"], (bool, np.bool_)):
        raise TypeError(f"{where}rowwise must be a bool, got {type(group['rowwise']).__name__}")
    check_duplicates(group, where)
    if group["state_dtype"] not in (None, "float32"):
        raise ValueError(
            f"{where}state_dtype must be None (the param's dtype) or 'float32', got {group['state_dtype']!r}"
        )
    check_stochastic_rounding(group, where)


def check_stochastic_rounding(group: Mapping[str, Any], where: str) -> None:
    """TypeError / ValueError unless stochastic_rounding is a bool and seed an int from 0 to 2**64 - 1."""
    if not isinstance(group["stochastic_rounding"], (bool, np.bool_)):
        raise TypeError(f"{where}stochastic_rounding must be a bool, got {type(group['stochastic_rounding']).__name__}")
    seed = group["seed"]
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{where}seed must be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"{where}seed must be an int from 0 to 2**64 - 1, got {seed}")


def state_dtype_of(group: Mapping[str, Any], param: np.ndarray, name: str) -> np.dtype[Any]:
    """The dtype of a param's state: its own, or float32 (``state_dtype="float32"``, 16-bit params)."""
    if group["state_dtype"] is None or param.dtype == np.float32:
        return param.dtype
    if param.dtype.itemsize != 2:
        raise ValueError(f"param {name} is {param.dtype}: state_dtype='float32' is for float16 and bfloat16 params")
    return np.dtype(np.float32)


class Adagrad(Optimizer):
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
        params: a list of float32/float64/float16/bfloat16 arrays (bfloat16: ``ml_dtypes.bfloat16``;
            16-bit arrays are computed in float32, see ``state_dtype``); a dict name -> array; or a list of param-group
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
        state_dtype: None (default: the sums have the param's dtype) or ``"float32"``: float32
            sums for float16 / bfloat16 params ("master state": a 16-bit sum stops growing once
            ``s + g*g`` rounds back to ``s``). A 16-bit param is widened to float32, updated there
            exactly as a float32 one, and rounded back once to nearest even; a 16-bit sum is
            rounded on store, the update using its unrounded value (torch's fused kernel's rule).
        stochastic_rounding: round the writes of float16 / bfloat16 params stochastically instead
            of to nearest even (default False; per group; float32/float64 params are unaffected):
            unbiased, ``E[round(x)] = x``, so that updates below half a 16-bit step still move the
            param on average instead of being rounded away. Reproducible: the random bits are a
            pure function of ``(seed, param ordinal, step, element index)``
            (:mod:`adagrad.stochastic_rounding`), the same on every ISA and thread count.
        seed: the stochastic rounding's seed, an int from 0 to 2**64 - 1 (default 0: runs repeat
            unless told otherwise; per group). It is a group option: the state_dict and checkpoints
            hold it, so that a resumed run rounds as an unbroken one.
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
        state_dtype: str | None = None,
        stochastic_rounding: bool = False,
        seed: int = 0,
        nonfinite: str = "propagate",
        grad_scale: float | None = None,
        max_grad_norm: float | None = None,
        norm_type: float | str = 2.0,
        clip_norm_per_tensor: float | None = None,
        clip_value: float | None = None,
    ) -> None:
        super().__init__(
            params,
            {
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
                "state_dtype": state_dtype,
                "stochastic_rounding": stochastic_rounding,
                "seed": seed,
            },
            {
                "nonfinite": nonfinite,
                "grad_scale": grad_scale,
                "max_grad_norm": max_grad_norm,
                "norm_type": norm_type,
                "clip_norm_per_tensor": clip_norm_per_tensor,
                "clip_value": clip_value,
            },
        )
        # The norm of all grads of the last step with max_grad_norm or clip_norm_per_tensor set.
        self.last_grad_norm: float | None = None

    # The step options (STEP_OPTION_NAMES), set by the core from the constructor's arguments.
    grad_scale: float | None
    max_grad_norm: float | None
    norm_type: float | str
    clip_norm_per_tensor: float | None
    clip_value: float | None

    GROUP_OPTION_NAMES = GROUP_DEFAULT_NAMES
    STEP_OPTION_NAMES = STEP_OPTION_NAMES
    SHAPE_OPTION_NAMES = ("rowwise", "state_dtype")
    CHECKPOINT_FORMAT = "adagrad.Adagrad checkpoint"

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        check_group_options(group, where)

    @classmethod
    def _check_step_options(cls, options: Mapping[str, Any]) -> None:
        _core.check_step_options(options["nonfinite"], options.get("grad_scale"))
        _core.check_clip_options(
            options.get("max_grad_norm"),
            options.get("norm_type", 2.0),
            options.get("clip_norm_per_tensor"),
            options.get("clip_value"),
        )

    def _initial_states(self, group: Mapping[str, Any], param: np.ndarray, name: str) -> list[np.ndarray]:
        initial = group["initial_accumulator_value"]
        dtype = state_dtype_of(group, param, name)
        if not group["rowwise"]:
            return [full_like_at_same_line_offset(param, initial, dtype)]
        if param.ndim != 2:
            raise ValueError(f"param {name} has shape {param.shape}: rowwise=True needs 2-D params (rows, dim)")
        return [np.full(param.shape[0], initial, dtype)]

    def _native_group(self, group: Mapping[str, Any], layout: GroupLayout, grads: Any) -> tuple[Any, ...]:
        if group["stochastic_rounding"]:  # the 16-tuple: no torch width, the seed, param i's stream first + i
            return (*self._adagrad_tuple(group, layout, grads), 0, group["seed"], layout.first)
        return self._adagrad_tuple(group, layout, grads)

    def _adagrad_tuple(self, group: Mapping[str, Any], layout: GroupLayout, grads: Any) -> tuple[Any, ...]:
        return (
            group["params"],
            grads,
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
