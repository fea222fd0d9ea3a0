"""The stateful optimizers over NumPy arrays, one per rule (:mod:`adagrad.rules`): each is the one
core (:class:`adagrad.optim.Optimizer`) with its declaration; its keywords, checks, states and
docstring derive from it."""

from __future__ import annotations

from .optim import NonFiniteGradError, Optimizer, SparseGrad
from .rules.adagrad import ADAGRAD
from .rules.adagrad_decay import ADAGRAD_DECAY
from .rules.dual_averaging import DUAL_AVERAGING
from .rules.ftrl import FTRL
from .rules.proximal import PROXIMAL

__all__ = ["Adagrad", "AdagradDA", "AdagradDecay", "Ftrl", "NonFiniteGradError", "ProximalAdagrad", "SparseGrad"]


class Adagrad(Optimizer):
    RULE = ADAGRAD


class ProximalAdagrad(Optimizer):
    RULE = PROXIMAL


class AdagradDA(Optimizer):
    RULE = DUAL_AVERAGING


class AdagradDecay(Optimizer):
    RULE = ADAGRAD_DECAY


class Ftrl(Optimizer):
    RULE = FTRL
