"""Validated single-call functions over arrays: a dense and a sparse one per rule, each derived from
the rule's declaration (:mod:`adagrad.rules`): its arrays, its keyword-only options in one order
(the step, the rule's options, the transforms, the step options), its docstring. Each is one native
call, validated in full before anything is written."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import _core
from ._docs import function_arrays, function_doc, function_options
from .rules import Rule
from .rules.adagrad import ADAGRAD
from .rules.adagrad_decay import ADAGRAD_DECAY
from .rules.dual_averaging import DUAL_AVERAGING
from .rules.ftrl import FTRL
from .rules.proximal import PROXIMAL

if TYPE_CHECKING:
    from ._core import Record

__all__ = [
    "da_update",
    "decay_update",
    "ftrl_update",
    "proximal_update",
    "sparse_da_update",
    "sparse_decay_update",
    "sparse_ftrl_update",
    "sparse_proximal_update",
    "sparse_update",
    "update",
]

# The default of an option the caller must give (a rule's step, where its formula uses it).
_REQUIRED = object()


def _function(rule: Rule, *, sparse: bool) -> Callable[..., bool]:
    """The rule's dense (or sparse) single-call function: its arrays positional (or by name), every
    option keyword-only with the declared default."""
    name = rule.functions[1 if sparse else 0]
    arrays = function_arrays(rule, sparse)
    options = function_options(rule, sparse)
    # One dict holds every option: the native call reads the rule's and the transforms' from it as the
    # record's options, and the step options from it too (the other keys are not read).
    defaults = {o.name: _REQUIRED if o.name == "step" and o.default is None else o.default for o in options}
    if not sparse:
        defaults["duplicates"] = "sum"
    known = frozenset(o.name for o in options)
    states = tuple((s.name, (3 if sparse else 2) + j) for j, s in enumerate(rule.states))
    rule_name = rule.name

    def call(*given: np.ndarray, **keywords: Any) -> bool:
        if len(given) != len(arrays) or not known.issuperset(keywords):
            given = _bound(name, arrays, known, given, keywords)
        chosen = defaults.copy()
        chosen.update(keywords)
        step: Any = chosen["step"]
        if step is _REQUIRED:
            raise TypeError(f"{name}() missing required keyword-only argument: 'step'")
        record: Record = {
            "rule": rule_name,
            "options": chosen,
            "params": [given[0]],
            "grads": [(given[1], given[2]) if sparse else given[1]],
            "states": {state: [given[j]] for state, j in states},
            "step": step,
            "labels": None,
        }
        result = _core.step([record], chosen)
        return (result[0] if type(result) is tuple else result) is True  # a norm clip: (applied, norm)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = function_doc(rule, sparse)
    positional = [inspect.Parameter(a, inspect.Parameter.POSITIONAL_OR_KEYWORD) for a in arrays]
    keywords = [
        inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY)
        if o.default is None and o.name == "step"
        else inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default)
        for o in options
    ]
    call.__signature__ = inspect.Signature(positional + keywords, return_annotation=bool)  # type: ignore[attr-defined]
    return call


def _bound(
    name: str, arrays: tuple[str, ...], known: frozenset[str], given: tuple[Any, ...], keywords: dict[str, Any]
) -> tuple[Any, ...]:
    """The arrays of a call that names some (``update(param=w, ...)``), taken out of `keywords`; a
    TypeError as Python's own for a call that does not fit the signature."""
    if len(given) > len(arrays):
        raise TypeError(f"{name}() takes {len(arrays)} positional arguments but {len(given)} were given")
    values = list(given) + [keywords.pop(a) for a in arrays[len(given) :] if a in keywords]
    if len(values) < len(arrays):
        raise TypeError(f"{name}() missing required argument: {arrays[len(values)]!r}")
    unknown = sorted(set(keywords) - known)
    if unknown:
        raise TypeError(f"{name}() got an unexpected keyword argument {unknown[0]!r}")
    return tuple(values)


update = _function(ADAGRAD, sparse=False)
sparse_update = _function(ADAGRAD, sparse=True)
proximal_update = _function(PROXIMAL, sparse=False)
sparse_proximal_update = _function(PROXIMAL, sparse=True)
da_update = _function(DUAL_AVERAGING, sparse=False)
sparse_da_update = _function(DUAL_AVERAGING, sparse=True)
decay_update = _function(ADAGRAD_DECAY, sparse=False)
sparse_decay_update = _function(ADAGRAD_DECAY, sparse=True)
ftrl_update = _function(FTRL, sparse=False)
sparse_ftrl_update = _function(FTRL, sparse=True)
