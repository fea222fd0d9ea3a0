"""Proximal Adagrad, Adagrad-DA and AdagradDecay as stateful optimizers over NumPy arrays.

The same core as :class:`adagrad.Adagrad` (param groups, state, one native call per step,
``state_dict``, ``save`` / ``load``); each rule is its options, its state arrays and its kernel
(:mod:`adagrad.composite` gives the formulas).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _core
from ._groups import GroupLayout
from ._memory import full_like_at_same_line_offset
from ._optimizer_core import Optimizer, check_duplicates, check_initial_value

__all__ = ["AdagradDA", "AdagradDecay", "ProximalAdagrad"]


def _check_rule_group(rule: str, group: Mapping[str, Any], where: str, initial_name: str) -> None:
    try:
        _core.check_rule_options(rule, group["lr"], group["l1"], group["l2"])
    except (TypeError, ValueError) as error:
        raise type(error)(f"{where}{error}") from None
    check_initial_value(group[initial_name], initial_name, where, positive=True)
    check_duplicates(group, where)


class ProximalAdagrad(Optimizer):
    r"""Proximal Adagrad (composite mirror descent with l1 and l2) over NumPy arrays, in place.

    For each param :math:`\theta` with state sum :math:`s`, element-wise, each operation rounded
    once (:func:`adagrad.proximal_update`; TensorFlow's ``ApplyProximalAdagrad``)::

        s     <- s + g * g                                  (one fma)
        eta   <- lr / sqrt(s)
        v     <- theta - eta * g                            (one fma)
        v     <- sign(v) * max(|v| - eta * l1, 0)           if l1 > 0: exact zeros
        theta <- v / (1 + eta * l2)

    It minimizes the loss plus ``l1 * |theta|_1 + (l2 / 2) * |theta|^2``: with ``l1 > 0`` a weight
    whose gradients stay small is held at exactly 0, so the model is truly sparse.

    Args:
        params: a list of float32/float64 arrays; a dict name -> array; or a list of param-group
            dicts ``{"params": <list or dict>, "lr": ..., ...}`` whose options override the defaults.
        lr: learning rate (required; finite, >= 0).
        l1: L1 regularization strength (default 0: no shrinkage, as TensorFlow).
        l2: L2 regularization strength (default 0).
        initial_accumulator_value: starting value of every state sum, > 0 (default 0.1,
            TensorFlow's; there is no eps, so the sum must never be 0).
        duplicates: for sparse grads, ``"sum"`` (default: repeated indices summed, one update, as
            TensorFlow's optimizers) or ``"sequential"`` (one update per occurrence, as its raw op).
        nonfinite: ``"propagate"`` (default), ``"skip"`` or ``"raise"``, as for :class:`adagrad.Adagrad`.

    ``step(grads)`` takes grads shaped like ``params`` (None skips a param; ``SparseGrad(indices,
    values)`` updates some rows of a 2-D param). State: ``opt.state[key]`` is ``{"sum", "step"}``.
    Loss scaling and clipping are Adagrad's options, not this rule's.

    Example:
        >>> import numpy as np, adagrad
        >>> w = np.array([0.5, 0.001, -2.0])
        >>> opt = adagrad.ProximalAdagrad([w], lr=0.1, l1=0.5)
        >>> opt.step([np.array([0.3, 0.3, -0.3])])
        True
        >>> w
        array([ 0.31646741, -0.        , -1.81646741])

    Reference: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
    Stochastic Optimization", JMLR 12 (2011), section 3.
    """

    GROUP_OPTION_NAMES = ("lr", "l1", "l2", "initial_accumulator_value", "duplicates")
    STATE_NAMES = ("sum",)
    CHECKPOINT_FORMAT = "adagrad.ProximalAdagrad checkpoint"

    def __init__(
        self,
        params: Any,
        lr: float,
        l1: float = 0.0,
        l2: float = 0.0,
        initial_accumulator_value: float = 0.1,
        duplicates: str = "sum",
        nonfinite: str = "propagate",
    ) -> None:
        defaults = {
            "lr": lr,
            "l1": l1,
            "l2": l2,
            "initial_accumulator_value": initial_accumulator_value,
            "duplicates": duplicates,
        }
        super().__init__(params, defaults, {"nonfinite": nonfinite})

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        _check_rule_group("proximal", group, where, "initial_accumulator_value")

    def _initial_states(self, group: Mapping[str, Any], param: np.ndarray, name: str) -> list[np.ndarray]:
        return [full_like_at_same_line_offset(param, group["initial_accumulator_value"])]

    def _native_group(self, group: Mapping[str, Any], layout: GroupLayout, grads: Any) -> tuple[Any, ...]:
        return (
            "proximal",
            group["params"],
            grads,
            layout.sums,
            None,
            layout.steps,
            layout.labels,
            group["lr"],
            group["l1"],
            group["l2"],
            group["duplicates"],
        )


class AdagradDA(Optimizer):
    r"""Adagrad-DA (regularized dual averaging with l1 and l2) over NumPy arrays, in place.

    Each param keeps the sum of its gradients ``a`` and of their squares ``s``; with ``t`` the
    param's step count (counting this step), element-wise (:func:`adagrad.da_update`;
    TensorFlow's ``ApplyAdagradDA``)::

        a     <- a + g
        s     <- s + g * g                                          (one fma)
        theta <- -sign(a) * lr * max(|a| - l1 * t, 0) / (l2 * t * lr + sqrt(s))

    The new param is the closed-form minimizer of the averaged linear loss plus the regularizer,
    independent of the old param: with ``l1 > 0`` every weight whose average gradient ``|a| / t``
    stays at most ``l1`` is exactly 0. ``t`` counts the steps in which the param had a grad (a
    sparse grad counts): for a param stepped every time it is TensorFlow's global step + 1.
    Sparse grads are TensorFlow's lazy form: an untouched row keeps its value (see
    :func:`adagrad.sparse_da_update`).

    Args:
        params: as for :class:`adagrad.ProximalAdagrad`.
        lr: learning rate (required; finite, >= 0).
        l1: L1 regularization strength (default 0).
        l2: L2 regularization strength (default 0).
        initial_gradient_squared_accumulator_value: starting value of ``s``, > 0 (default 0.1,
            TensorFlow's). ``a`` starts at 0.
        duplicates: ``"sum"`` (default) or ``"sequential"``, as for :class:`adagrad.ProximalAdagrad`.
        nonfinite: ``"propagate"`` (default), ``"skip"`` or ``"raise"``.

    State: ``opt.state[key]`` is ``{"grad_sum", "sum", "step"}``.

    Example:
        >>> import numpy as np, adagrad
        >>> w = np.array([1.0, 2.0])
        >>> opt = adagrad.AdagradDA([w], lr=3.0)
        >>> opt.step([np.array([0.1, 0.2])])  # TensorFlow's adagrad_da_test: [-0.904534, -1.603567]
        True
        >>> w
        array([-0.90453403, -1.60356745])

    Reference: Duchi, Hazan & Singer (2011), section 3 (after Xiao, "Dual Averaging Methods for
    Regularized Stochastic Learning and Online Optimization", JMLR 11, 2010).
    """

    GROUP_OPTION_NAMES = ("lr", "l1", "l2", "initial_gradient_squared_accumulator_value", "duplicates")
    STATE_NAMES = ("grad_sum", "sum")
    CHECKPOINT_FORMAT = "adagrad.AdagradDA checkpoint"

    def __init__(
        self,
        params: Any,
        lr: float,
        l1: float = 0.0,
        l2: float = 0.0,
        initial_gradient_squared_accumulator_value: float = 0.1,
        duplicates: str = "sum",
        nonfinite: str = "propagate",
    ) -> None:
        defaults = {
            "lr": lr,
            "l1": l1,
            "l2": l2,
            "initial_gradient_squared_accumulator_value": initial_gradient_squared_accumulator_value,
            "duplicates": duplicates,
        }
        super().__init__(params, defaults, {"nonfinite": nonfinite})

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        _check_rule_group("dual_averaging", group, where, "initial_gradient_squared_accumulator_value")

    def _initial_states(self, group: Mapping[str, Any], param: np.ndarray, name: str) -> list[np.ndarray]:
        initial = group["initial_gradient_squared_accumulator_value"]
        return [full_like_at_same_line_offset(param, 0.0), full_like_at_same_line_offset(param, initial)]

    def _native_group(self, group: Mapping[str, Any], layout: GroupLayout, grads: Any) -> tuple[Any, ...]:
        return (
            "dual_averaging",
            group["params"],
            grads,
            layout.sums,
            layout.states["grad_sum"],
            layout.steps,
            layout.labels,
            group["lr"],
            group["l1"],
            group["l2"],
            group["duplicates"],
        )


class AdagradDecay(Optimizer):
    r"""AdagradDecay (DeepRec): Adagrad whose accumulators decay, so that long runs keep learning.

    Adagrad's rate ``lr / sqrt(s)`` only falls, because ``s`` only grows: in a long run on drifting
    data it vanishes. AdagradDecay (Alibaba's recommender fork of TensorFlow, DeepRec) multiplies
    every accumulator by ``accumulator_decay_rate`` once per ``accumulator_decay_step`` steps, never
    below ``initial_accumulator_value``; element-wise, each operation rounded once
    (:func:`adagrad.decay_update`)::

        s     <- max(s * rate, initial_accumulator_value)   when a decay is due (t % decay_step == 0)
        s     <- s + g * g                                  (one fma)
        theta <- theta - lr * g / sqrt(s)

    ``t`` is the param's own step count (counting this step). A 2-D param keeps one decay count per
    row (``opt.state[key]["decay_count"]``, int64): a row its sparse grads leave untouched takes the
    decays it missed when next touched, each rounded as at its own step, so the result is exactly
    the dense run's with zero grads for untouched rows (DeepRec's sparse kernel instead catches up
    at most one decay per touch).

    Args:
        params: as for :class:`adagrad.ProximalAdagrad`.
        lr: learning rate (required; finite, >= 0).
        accumulator_decay_step: steps between decays, an int >= 1 (default 100000, DeepRec's).
        accumulator_decay_rate: the factor of each decay, in (0, 1) (default 0.9).
        initial_accumulator_value: the accumulators' start and floor, > 0 (default 0.1).
        duplicates: ``"sum"`` (default) or ``"sequential"`` for sparse grads.
        nonfinite: ``"propagate"`` (default), ``"skip"`` or ``"raise"``.

    State: ``opt.state[key]`` is ``{"sum", "decay_count", "step"}``.

    Example:
        >>> import numpy as np, adagrad
        >>> w = np.array([1.0, 2.0])
        >>> opt = adagrad.AdagradDecay([w], lr=1.0, accumulator_decay_step=3, accumulator_decay_rate=0.9)
        >>> for _ in range(4):  # DeepRec's adagrad_decay_test, testBasic
        ...     _ = opt.step([np.full(2, 0.1)])
        >>> w, opt.state[0]["sum"]
        (array([-0.16080623,  0.83919377]), array([0.128, 0.128]))

    Reference: DeepRec, ``AdagradDecayOptimizer``; Duchi, Hazan & Singer (2011) for Adagrad.
    """

    GROUP_OPTION_NAMES = (
        "lr",
        "accumulator_decay_step",
        "accumulator_decay_rate",
        "initial_accumulator_value",
        "duplicates",
    )
    STATE_NAMES = ("sum", "decay_count")
    CHECKPOINT_FORMAT = "adagrad.AdagradDecay checkpoint"

    def __init__(
        self,
        params: Any,
        lr: float,
        accumulator_decay_step: int = 100000,
        accumulator_decay_rate: float = 0.9,
        initial_accumulator_value: float = 0.1,
        duplicates: str = "sum",
        nonfinite: str = "propagate",
    ) -> None:
        defaults = {
            "lr": lr,
            "accumulator_decay_step": accumulator_decay_step,
            "accumulator_decay_rate": accumulator_decay_rate,
            "initial_accumulator_value": initial_accumulator_value,
            "duplicates": duplicates,
        }
        super().__init__(params, defaults, {"nonfinite": nonfinite})

    @classmethod
    def _check_group(cls, group: Mapping[str, Any], where: str) -> None:
        try:
            _core.check_decay_options(
                group["lr"],
                group["accumulator_decay_step"],
                group["accumulator_decay_rate"],
                group["initial_accumulator_value"],
            )
        except (TypeError, ValueError) as error:
            raise type(error)(f"{where}{error}") from None
        check_duplicates(group, where)

    def _initial_states(self, group: Mapping[str, Any], param: np.ndarray, name: str) -> list[np.ndarray]:
        rows = param.shape[0] if param.ndim == 2 and param.flags.c_contiguous and param.shape[0] > 0 else 1
        return [full_like_at_same_line_offset(param, group["initial_accumulator_value"]), np.zeros(rows, np.int64)]

    def _native_group(self, group: Mapping[str, Any], layout: GroupLayout, grads: Any) -> tuple[Any, ...]:
        return (
            "adagrad_decay",
            group["params"],
            grads,
            layout.sums,
            layout.states["decay_count"],
            layout.steps,
            layout.labels,
            group["lr"],
            group["accumulator_decay_step"],
            group["accumulator_decay_rate"],
            group["initial_accumulator_value"],
            group["duplicates"],
        )
