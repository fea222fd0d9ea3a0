"""``python -m adagrad.rules``: the rules' page of the docs (docs/rules.md), written from their
declarations: what each rule does, its formula, its options with their defaults, its states, its
optimizer and functions, and its citation. tests/test_rules.py holds docs/rules.md to this output."""

from __future__ import annotations

from .. import _docs
from . import GROUP_OPTIONS, RULES, STEP_OPTIONS, Rule


def rule_section(rule: Rule) -> str:
    states = ", ".join(f"`{s.name}` ({s.doc})" for s in rule.states)
    dense, sparse = rule.functions
    return "\n\n".join(
        [
            f"## {rule.title}",
            _docs.markdown(rule.summary),
            f"`adagrad.{rule.optimizer}`, `adagrad.torch.{rule.optimizer}`, `adagrad.{dense}`, `adagrad.{sparse}`. "
            f"Per element, with `t` the param's step count (this step included), after the transforms:",
            "```text\n" + rule.formula + "\n```",
            _docs.options_markdown(rule.group_options),
            f"States of each param: {states}.",
            f"Reference: {_docs.markdown(rule.citation)}",
        ]
    )


def page() -> str:
    return (
        "\n\n".join(
            [
                "# The rules\n\n<!-- Written by `python -m adagrad.rules > docs/rules.md` from the declarations in "
                "python/adagrad/rules/: edit those, not this page. -->",
                "Every rule takes the same transforms, in this order, for every dtype: the loss scale "
                "(`g <- g / grad_scale`), the clip, `maximize` (`g <- -g`), then the rule's own stages; float16 and "
                "bfloat16 arrays are computed in float32 and each array written is rounded back once (the param "
                "stochastically with `stochastic_rounding`). The transforms' per-group options close each rule's "
                "table below (" + ", ".join(f"`{o.name}`" for o in GROUP_OPTIONS) + "); the options of a whole step "
                "are attributes of the optimizer:",
                _docs.options_markdown(STEP_OPTIONS),
                *(rule_section(rule) for rule in RULES.values()),
            ]
        )
        + "\n"
    )


if __name__ == "__main__":
    print(page(), end="")
