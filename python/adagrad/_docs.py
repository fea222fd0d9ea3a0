"""The docstrings of the derived API, written from a rule's declaration (:mod:`adagrad.rules`): the
NumPy optimizer's, the single-call functions', the torch drop-in's, and the docs' option tables."""

from __future__ import annotations

import textwrap

from .rules import GROUP_OPTIONS, STEP_OPTIONS, Option, Rule

__all__ = ["function_doc", "markdown", "optimizer_doc", "option_lines", "options_markdown", "torch_doc"]

TRANSFORMS = """\
Every step applies, per element and in this order, for every rule and dtype: the loss scale
(``g <- g / grad_scale``), the clip, ``maximize`` (``g <- -g``), then the rule; float16 and bfloat16
arrays are widened to float32, computed there, and each array written is rounded back once (the
param stochastically with ``stochastic_rounding``). Every operation is one IEEE operation rounded
once (fma where written), so every ISA, thread count and ``adagrad.reference`` give the same bits."""

PARAMS = (
    "params: a list of float32, float64, float16 or bfloat16 arrays (bfloat16: ``ml_dtypes.bfloat16``); a dict "
    "name -> array; or a list of param-group dicts ``{'params': <list or dict>, <option>: ...}`` whose options "
    "override the defaults below."
)

STEP = """\
``step(grads)`` takes the grads in the structure of ``params`` (a list, a dict, or a list with one
list or dict per group); a grad of None skips that param. A grad may be sparse:
``SparseGrad(indices, values)`` (or a plain ``(indices, values)`` tuple) updates only those rows of
a 2-D param (of a 1-D param: those elements, one row each), in the same all-or-nothing call. Every
array is validated before any is written: a bad one raises and leaves everything untouched.
Arrays are never copied or cast: dtypes, shapes and memory order must match exactly. Step options
are attributes of the optimizer (not per group), read at every step: set ``opt.grad_scale`` to a
loss scaler's current scale before each step. ``step`` returns True, or False when
``nonfinite="skip"`` skipped it; after a norm clip, ``opt.last_grad_norm`` holds the norm of all
grads.

Threads: steps of different optimizers over different arrays may run in parallel from several
Python threads (the GIL is released during the arithmetic). Two threads must never step (or save,
or load) the same optimizer or the same arrays at the same time."""


def _indent(text: str, spaces: int = 4) -> str:
    return textwrap.indent(text, " " * spaces)


def _default(option: Option) -> str:
    return repr(option.default)


def option_lines(options: tuple[Option, ...]) -> str:
    """``name: doc (default x).`` per option, as a docstring's Args lines."""
    return "\n".join(f"{o.name}: {o.doc} (default {_default(o)})." for o in options)


def _state_text(rule: Rule) -> str:
    names = ", ".join(f'``"{s.name}"`` ({s.doc})' for s in rule.states)
    return f'State: ``opt.state[key]`` holds {names} and ``"step"`` (updates done), keyed by flat index or name.'


def _sections(*parts: str) -> str:
    return "\n\n".join(p for p in parts if p)


def optimizer_doc(rule: Rule) -> str:
    """The docstring of a rule's NumPy optimizer."""
    args = "Args:\n" + _indent(PARAMS + "\n" + option_lines(rule.group_options + STEP_OPTIONS))
    return _sections(
        f"{rule.title} over NumPy arrays, updated in place by one native call per step.",
        rule.summary,
        "Per element, with ``t`` the param's step count (this step included), after the transforms::\n\n"
        + _indent(rule.formula),
        TRANSFORMS,
        args,
        STEP,
        _state_text(rule) + " ``state_dict()`` / ``load_state_dict()`` round-trip it exactly; ``save(path)`` "
        "and ``load(path)`` write and read it as a checkpoint file (atomically).",
        rule.notes.get("optimizer", ""),
        "Examples:\n" + _indent(rule.examples.get("optimizer", "")),
        "Reference: " + rule.citation,
    )


def function_arrays(rule: Rule, sparse: bool) -> tuple[str, ...]:
    """The array arguments of a rule's single-call function, in order."""
    states = tuple(s.sparse_argument if sparse else s.argument for s in rule.states)
    return ("table", "indices", "values", *states) if sparse else ("param", "grad", *states)


def function_options(rule: Rule, sparse: bool) -> tuple[Option, ...]:
    """The keyword options of a rule's single-call function, in order: its step, the options its
    kernel reads, the per-group transforms but the state dtype (the states are given), the step
    options."""
    step = Option(
        "step",
        None if rule.uses_step else 1,
        "positive_int",
        "the 1-based number of this update (required)"
        if rule.uses_step
        else "the 1-based number of this update: it keys stochastic rounding alone",
    )
    transforms = tuple(o for o in GROUP_OPTIONS if o.kernel and (sparse or o.name != "duplicates"))
    return (step, *rule.kernel_options, *transforms, *STEP_OPTIONS)


def function_doc(rule: Rule, sparse: bool) -> str:
    """The docstring of a rule's dense or sparse single-call function."""
    arrays = function_arrays(rule, sparse)
    options = function_options(rule, sparse)
    states = ", ".join(f"``{a}``" for a in arrays[3 if sparse else 2 :])
    if sparse:
        head = f"{rule.title} on the indexed rows of a 2-D table, in place; rows not indexed are never touched."
        layout = (
            f"``table`` is (R, D), C-contiguous; ``indices`` 1-D int32 or int64, every index in [0, R); ``values`` "
            f"(k, D) of the table's dtype: row ``indices[i]`` receives gradient ``values[i]``. The states "
            f"({states}) are (R, D) like the table (decay counts: int64 (R,)); a 16-bit table's float states have "
            "its dtype or float32. ``duplicates='sum'`` (default) adds the values of a repeated index in input "
            "order, from +0, and updates the row once: bit for bit the dense update of the touched rows with the "
            "dense-equivalent gradient ``np.add.at(zeros, indices, values)``. ``duplicates='sequential'`` applies "
            "each occurrence as its own update, in input order. The loss scale and the clip apply to the gradient "
            "each row update sees (with ``'sum'``, the summed row); a norm clip measures ``values`` as given. "
            "Rows are updated in parallel, each by one thread: the result never depends on the thread count. "
            "Stochastic rounding numbers element ``(row, j)`` ``row * D + j`` with ``'sum'``, and ``i * D + j`` for "
            "occurrence ``i`` with ``'sequential'``."
        )
    else:
        head = f"One {rule.title} update of one array, in place."
        layout = (
            f"``param``, ``grad`` and the states ({states}) share one shape and memory order (C or Fortran), "
            "are contiguous and do not overlap; the param and the states are written. They share one dtype "
            "(float32, float64, float16 or bfloat16), but a 16-bit param's float states may be float32 (decay "
            "counts: int64, ``(1,)`` or ``(rows,)`` of a 2-D C-order param). Nothing is cast or copied: a mismatch "
            "raises TypeError or ValueError before anything is written."
        )
    args = "Args:\n" + _indent(option_lines(options))
    returns = (
        "Returns True when the update was applied, False when ``nonfinite='skip'`` found a NaN or an infinity "
        "in the grad (nothing written)."
    )
    return _sections(
        head,
        "Per element, after the transforms::\n\n" + _indent(rule.formula),
        TRANSFORMS,
        layout,
        rule.notes.get("sparse_function" if sparse else "function", ""),
        args,
        returns,
        "Examples:\n" + _indent(rule.examples.get("sparse_function" if sparse else "function", "")),
        "Reference: " + rule.citation,
    )


TORCH = """\
Dense CPU float32, float64, float16 and bfloat16 params are updated in place, zero-copy, by one
native call per step for all of them (bit for bit the NumPy optimizer over the same values); sparse
COO grads (``nn.Embedding`` and ``nn.EmbeddingBag`` with ``sparse=True``) go through the sparse kernel
in the same call. Params on other devices take the rule's formula in plain torch ops (correct, not
the same bits). ``lr`` may be a float or a 1-element tensor, read at every step, so that
``torch.optim.lr_scheduler`` schedulers work. ``state_dict()`` / ``load_state_dict()`` round-trip
(and ``torch.save`` / ``torch.load(weights_only=True)`` them)."""


def torch_doc(rule: Rule) -> str:
    """The docstring of a rule's torch drop-in (but Adagrad's, which keeps torch's own signature)."""
    args = "Args:\n" + _indent(
        "params: an iterable of tensors, of (name, tensor) pairs, or of param-group dicts.\n"
        + option_lines(rule.group_options + STEP_OPTIONS)
    )
    states = ", ".join(f'``"{s.name}"``' for s in rule.states)
    return _sections(
        f"{rule.title} as a ``torch.optim.Optimizer``, running the native kernel.",
        rule.summary,
        "Per element, with ``t`` the param's step count (this step included), after the transforms::\n\n"
        + _indent(rule.formula),
        TORCH,
        rule.notes.get("torch", ""),
        args,
        f'State: ``state[p]`` holds {states} and ``"step"``.',
        "Examples:\n" + _indent(rule.examples.get("torch", "")),
        "Reference: " + rule.citation,
    )


def markdown(text: str) -> str:
    """A docstring's reST inline code (``x``) as Markdown's (`x`)."""
    return text.replace("``", "`")


def options_markdown(options: tuple[Option, ...]) -> str:
    """A Markdown table of options, for docs/."""
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for o in options:
        rows.append(f"| `{o.name}` | `{_default(o)}` | {markdown(o.doc)} |")
    return "\n".join(rows)
