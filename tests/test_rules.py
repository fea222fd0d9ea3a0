"""The rules' declarations (adagrad.rules) against what the kernels know (cpp/include/adagrad/rules/),
and every layer derived from a declaration: the optimizers' and functions' keywords and defaults,
their docstrings, the torch drop-ins, the docs' option tables."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import adagrad
import adagrad.optimizer
from adagrad import _core, _docs
from adagrad.rules import GROUP_OPTIONS, RULES, STEP_OPTIONS
from adagrad.rules.declare import KERNEL_CHECKS

DECLARED = [pytest.param(rule, id=name) for name, rule in RULES.items()]


def test_the_kernels_know_exactly_the_declared_rules() -> None:
    assert set(_core.rules()) == set(RULES)


@pytest.mark.parametrize("rule", DECLARED)
def test_a_rules_kernel_options_and_states_are_its_declarations(rule: Any) -> None:
    kernel = _core.rules()[rule.name]
    assert kernel["options"] == [(o.name, o.check) for o in rule.kernel_options]
    assert kernel["states"] == list(rule.state_names)
    assert kernel["rowwise"] == rule.rowwise
    for option in rule.options:
        assert (option.check in KERNEL_CHECKS) or not option.kernel, option.name


@pytest.mark.parametrize("rule", DECLARED)
def test_the_optimizer_takes_the_declared_keywords_and_defaults(rule: Any) -> None:
    cls = getattr(adagrad, rule.optimizer)
    parameters = inspect.signature(cls).parameters
    expected = {o.name: o.default for o in rule.options + GROUP_OPTIONS + STEP_OPTIONS}
    assert list(parameters) == ["params", *expected]
    for name, default in expected.items():
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[name].default == default
    assert cls.RULE is rule and cls.__module__ == "adagrad.optimizer"
    w = [adagrad.aligned_zeros(4)]
    opt = cls(w)
    assert {k: opt.param_groups[0][k] for k in expected if k not in {o.name for o in STEP_OPTIONS}} == {
        k: v for k, v in expected.items() if k not in {o.name for o in STEP_OPTIONS}
    }
    assert {o.name: getattr(opt, o.name) for o in STEP_OPTIONS} == {o.name: o.default for o in STEP_OPTIONS}
    assert list(opt.state[0]) == [*rule.state_names, "step"]


@pytest.mark.parametrize("rule", DECLARED)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_the_functions_take_the_declared_keywords_in_one_order(rule: Any, sparse: bool) -> None:
    function = getattr(adagrad, rule.functions[sparse])
    parameters = inspect.signature(function).parameters
    states = [s.sparse_argument if sparse else s.argument for s in rule.states]
    arrays = ["table", "indices", "values", *states] if sparse else ["param", "grad", *states]
    keywords = [name for name, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert [name for name in parameters if name not in keywords] == arrays
    transforms = [o.name for o in GROUP_OPTIONS if o.kernel and (sparse or o.name != "duplicates")]
    assert keywords == ["step", *(o.name for o in rule.kernel_options), *transforms, *(o.name for o in STEP_OPTIONS)]
    step = parameters["step"]
    assert (step.default is inspect.Parameter.empty) == rule.uses_step


def test_every_option_is_in_the_same_relative_order_everywhere() -> None:
    """update and sparse_update once took weight_decay and eps in two orders: one order now."""
    dense = [n for n in inspect.signature(adagrad.update).parameters if n not in ("param", "grad", "state_sum")]
    sparse = [n for n in inspect.signature(adagrad.sparse_update).parameters if n not in ("table", "indices", "values")]
    sparse = [n for n in sparse if n not in ("state", "duplicates")]
    assert dense == sparse


@pytest.mark.parametrize("rule", DECLARED)
def test_the_docstrings_show_the_formula_every_option_and_the_citation(rule: Any) -> None:
    for doc in (
        getattr(adagrad, rule.optimizer).__doc__,
        getattr(adagrad, rule.functions[0]).__doc__,
        getattr(adagrad, rule.functions[1]).__doc__,
    ):
        assert rule.formula.splitlines()[0].strip() in doc
        assert rule.citation in doc
        assert ">>> import numpy as np, adagrad" in doc
    for option in rule.options + GROUP_OPTIONS + STEP_OPTIONS:
        assert f"{option.name}: {option.doc} (default {option.default!r})." in getattr(adagrad, rule.optimizer).__doc__
    table = _docs.options_markdown(rule.group_options)
    for option in rule.group_options:
        assert f"| `{option.name}` | `{option.default!r}` |" in table


# Written here, not read from the declarations: FTRL keeps Keras's and TensorFlow's 1e-3.
DEFAULT_LR = [
    pytest.param("Adagrad", ("update", "sparse_update"), 1e-2, id="Adagrad"),
    pytest.param("ProximalAdagrad", ("proximal_update", "sparse_proximal_update"), 1e-2, id="ProximalAdagrad"),
    pytest.param("AdagradDA", ("da_update", "sparse_da_update"), 1e-2, id="AdagradDA"),
    pytest.param("AdagradDecay", ("decay_update", "sparse_decay_update"), 1e-2, id="AdagradDecay"),
    pytest.param("Ftrl", ("ftrl_update", "sparse_ftrl_update"), 1e-3, id="Ftrl"),
]


@pytest.mark.parametrize("optimizer, functions, lr", DEFAULT_LR)
def test_every_rule_has_a_default_lr_everywhere(optimizer: str, functions: tuple[str, str], lr: float) -> None:
    assert getattr(adagrad, optimizer)([adagrad.aligned_zeros(4)]).param_groups[0]["lr"] == lr
    for name in functions:
        assert inspect.signature(getattr(adagrad, name)).parameters["lr"].default == lr
    torch_optimizers = pytest.importorskip("adagrad.torch.optimizers")
    assert inspect.signature(getattr(torch_optimizers, optimizer)).parameters["lr"].default == lr


def test_the_torch_drop_ins_derive_from_the_same_declarations() -> None:
    torch_optimizers = pytest.importorskip("adagrad.torch.optimizers")
    for rule in RULES.values():
        cls = getattr(torch_optimizers, rule.optimizer)
        assert cls.RULE is rule and rule.state_names == cls.STATE_NAMES
        if rule.name != "adagrad":  # Adagrad keeps torch.optim.Adagrad's own signature
            names = list(inspect.signature(cls).parameters)
            assert names[1 : 1 + len(rule.options)] == [o.name for o in rule.options]
            assert "nonfinite" in names and "max_grad_norm" in names


def test_a_wrong_option_type_is_refused_by_the_kernels_check_with_its_name() -> None:
    with pytest.raises(TypeError, match=r"^param group 0: l1 must be a real number, got str$"):
        adagrad.ProximalAdagrad([{"params": [adagrad.aligned_zeros(3)], "l1": "big"}])
    with pytest.raises(ValueError, match=r"^accumulator_decay_rate must be > 0 and < 1, got 1$"):
        adagrad.AdagradDecay([adagrad.aligned_zeros(3)], accumulator_decay_rate=1.0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'rowwise'"):
        adagrad.AdagradDA([adagrad.aligned_zeros(3)], rowwise=True)


def test_the_docs_rules_page_is_the_declarations_page() -> None:
    """docs/rules.md is written by ``python -m adagrad.rules``: an edited declaration shows there."""
    from pathlib import Path

    from adagrad.rules.__main__ import page

    committed = (Path(__file__).parent.parent / "docs" / "rules.md").read_text()
    assert committed == page(), "docs/rules.md is stale: python -m adagrad.rules > docs/rules.md"
    for rule in RULES.values():
        assert f"## {rule.title}" in committed
        for option in rule.group_options:
            assert f"| `{option.name}` |" in committed
