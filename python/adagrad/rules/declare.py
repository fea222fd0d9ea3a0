"""How a rule is declared, once: its options (name, default, check, one-line doc), its states (name,
initial value, layout), its formula, and the kernel that runs it. Every layer derives from the
declarations in this package: the NumPy optimizers (:mod:`adagrad.optim`), the single-call functions
(:mod:`adagrad.functional`), the torch drop-ins (:mod:`adagrad.torch`), checkpoints, and the docs'
option tables (``python -m adagrad.rules``).

The options every rule shares are declared here too: the per-group transforms (:data:`GROUP_OPTIONS`)
and the options of a whole step (:data:`STEP_OPTIONS`). Each step applies them in one order, for
every rule and dtype: unscale (``grad_scale``), clip, ``maximize``, then the rule's own stages, then
the writes (``stochastic_rounding`` of a 16-bit param).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["GROUP_OPTIONS", "STEP_OPTIONS", "Option", "Rule", "State"]

# The checks of option values. The first five are the kernels' own (cpp/include/adagrad/rules/
# declare.hpp, Check): a kernel option is checked by the native code, by name
# (adagrad._core.check_options); tests/test_rules.py holds the two declarations to each other.
KERNEL_CHECKS = ("non_negative", "non_positive", "positive", "open_unit", "positive_int", "flag")


@dataclass(frozen=True)
class Option:
    """One option: its name (the keyword argument and the param group's key), its default, its check
    and a one-line doc. ``kernel``: the native kernel reads it from the param group (and checks it);
    otherwise only the Python layer uses it (to make the states, or a step's setting)."""

    name: str
    default: Any
    check: str
    doc: str
    kernel: bool = True
    # A state's shape or dtype depends on it: a state_dict or checkpoint must agree on it.
    shapes_states: bool = False


@dataclass(frozen=True)
class State:
    """One state array of each param, as ``opt.state[key][name]`` holds it.

    ``initial``: the name of the option holding its initial value, or the value itself.
    ``kind``: "float", the param's layout in the state dtype (the param's, or float32 with
    ``state_dtype="float32"``; one per row with ``rowwise=True``), or "decay_count", int64 counts,
    one per row of a 2-D C-contiguous param and one for any other param. ``argument``,
    ``sparse_argument``: its name as an argument of the single-call functions. ``signed``: its values may
    be below 0 (a sum of grads; a checkpoint refuses only NaN there, elsewhere anything below 0 too)."""

    name: str
    doc: str
    initial: str | float
    argument: str
    sparse_argument: str
    kind: str = "float"
    signed: bool = False


@dataclass(frozen=True)
class Rule:
    """An update rule of the Adagrad family.

    ``name`` is the kernel's (``cpp/include/adagrad/rules/<name>.hpp``); ``optimizer`` the class
    name of its NumPy optimizer and torch drop-in; ``functions`` the names of its dense and sparse
    single-call functions. ``options`` are the rule's own, in order (the transforms every rule takes
    follow them: :data:`GROUP_OPTIONS`). ``formula`` is the update after the transforms, per element,
    as its docs show it; ``examples`` maps "optimizer", "function", "sparse_function" and "torch"
    to the runnable examples of each derived docstring.
    """

    name: str
    title: str
    optimizer: str
    functions: tuple[str, str]
    summary: str
    formula: str
    citation: str
    options: tuple[Option, ...]
    states: tuple[State, ...]
    uses_step: bool
    rowwise: bool = False
    examples: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # extra paragraphs of one derived docstring

    @property
    def group_options(self) -> tuple[Option, ...]:
        """The options of a param group: the rule's own, then the transforms every rule takes."""
        return self.options + GROUP_OPTIONS

    @property
    def kernel_options(self) -> tuple[Option, ...]:
        """The rule's own options that its kernel reads, in the kernel's order."""
        return tuple(o for o in self.options if o.kernel)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)


GROUP_OPTIONS = (
    Option("maximize", False, "flag", "ascend the objective: ``g <- -g`` after the loss scale and the clip"),
    Option(
        "duplicates",
        "sum",
        "duplicates",
        "sparse grads: ``'sum'`` a row's repeated indices (one update of the summed row, the dense-equivalent "
        "result) or ``'sequential'`` (one update per occurrence, in input order)",
    ),
    Option(
        "state_dtype",
        None,
        "state_dtype",
        "``None``: the states have the param's dtype; ``'float32'``: float32 states for float16 / bfloat16 params",
        kernel=False,
        shapes_states=True,
    ),
    Option(
        "stochastic_rounding",
        False,
        "flag",
        "round float16 / bfloat16 param writes up or down, unbiased (``E[round(x)] = x``), instead of to nearest",
    ),
    Option("seed", 0, "seed", "stochastic rounding's seed, an int from 0 to 2**64 - 1 (saved with the group)"),
)

STEP_OPTIONS = (
    Option(
        "nonfinite",
        "propagate",
        "nonfinite",
        "a grad holding a NaN or an infinity: ``'propagate'`` it, ``'skip'`` the step (nothing written, "
        "``step`` returns False) or ``'raise'`` NonFiniteGradError (nothing written)",
    ),
    Option("grad_scale", None, "grad_scale", "a loss scale every grad is divided by first (rounded to float32)"),
    Option(
        "max_grad_norm",
        None,
        "clip",
        "clip the norm of all grads of the step together to it (torch's ``clip_grad_norm_``)",
    ),
    Option("norm_type", 2.0, "norm_type", "the norm of the norm clips: 2 or ``inf``"),
    Option("clip_norm_per_tensor", None, "clip", "clip each grad by its own norm (Keras ``clipnorm``)"),
    Option("clip_value", None, "clip", "clamp every grad element to ``[-clip_value, clip_value]``"),
)
