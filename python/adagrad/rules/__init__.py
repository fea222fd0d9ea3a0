"""The rules of the Adagrad family, each declared once (:mod:`adagrad.rules.declare`): the registry
every layer derives its optimizers, functions, torch drop-ins, checkpoints and docs from.

A new rule: its module here and a line in :data:`RULES`; its kernel header
(``cpp/include/adagrad/rules/<name>.hpp``) and a line in the kernels' registry; its stages in
:mod:`adagrad.reference`; its tests and its docs page.
"""

from __future__ import annotations

from .adagrad import ADAGRAD
from .adagrad_decay import ADAGRAD_DECAY
from .declare import GROUP_OPTIONS, STEP_OPTIONS, Option, Rule, State
from .dual_averaging import DUAL_AVERAGING
from .ftrl import FTRL
from .proximal import PROXIMAL

__all__ = ["GROUP_OPTIONS", "RULES", "STEP_OPTIONS", "Option", "Rule", "State"]

# By kernel name, in the kernels' registry order.
RULES: dict[str, Rule] = {rule.name: rule for rule in (ADAGRAD, PROXIMAL, DUAL_AVERAGING, ADAGRAD_DECAY, FTRL)}
