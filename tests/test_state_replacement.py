"""Replacing an optimizer's state by hand (issue 27, item 6): ``opt.state[key]["sum"] = a``.

1. A valid replacement is what the next step uses, and what ``state_dict`` and ``save`` show: the
   training is bit for bit that of an optimizer given the same state by ``load_state_dict``.
2. An invalid one is refused by the next step with a ValueError naming the param; nothing changed
   (params, the arrays in use, the step counts), and once the entry is put right the training is
   bit for bit that of an optimizer that never saw it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import adagrad
from conftest import assert_same_bits

RULES = [
    pytest.param(adagrad.Adagrad, {"lr": 0.1, "lr_decay": 0.01}, id="adagrad"),
    pytest.param(adagrad.ProximalAdagrad, {"lr": 0.1, "l1": 0.01}, id="proximal"),
    pytest.param(adagrad.AdagradDA, {"lr": 0.1}, id="da"),
    pytest.param(adagrad.Ftrl, {"lr": 0.1, "l1": 0.01}, id="ftrl"),
]


def model(cls: type, options: dict[str, Any]) -> tuple[dict[str, np.ndarray], Any]:
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((4, 3)).astype(np.float32), "b": rng.standard_normal(5)}
    return params, cls(params, **options)


def grads(params: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(100 + k)
    return {name: rng.standard_normal(p.shape).astype(p.dtype) for name, p in params.items()}


def replacement(opt: Any, key: str, name: str) -> np.ndarray:
    """Values a state can hold (a sum of squares >= 0), unlike the ones it holds."""
    current = opt.state[key][name]
    return (np.abs(np.random.default_rng(7).standard_normal(current.shape)) + 0.5).astype(current.dtype)


def assert_same_training(pa: dict[str, np.ndarray], a: Any, pb: dict[str, np.ndarray], b: Any) -> None:
    for k in range(3):
        a.step(grads(pa, k))
        b.step(grads(pb, k))
    for name in pa:
        assert_same_bits(pa[name], pb[name])
    sa, sb = a.state_dict()["state"], b.state_dict()["state"]
    for key in sa:
        assert sa[key]["step"] == sb[key]["step"]
        for state in a.STATE_NAMES:
            assert_same_bits(sa[key][state], sb[key][state])


# --------------------------------------------------------------------------------------------
# 1. Honoured.


def as_is(values: np.ndarray) -> np.ndarray:
    return values


def fortran(values: np.ndarray) -> np.ndarray:  # another layout: a copy in the state's is used
    return np.asfortranarray(values)


def strided(values: np.ndarray) -> np.ndarray:
    out = np.zeros((values.shape[0], 2 * values.shape[1]), values.dtype)[:, ::2]
    out[...] = values
    return out


@pytest.mark.parametrize("cls, options", RULES)
@pytest.mark.parametrize("layout", [as_is, fortran, strided], ids=lambda f: f.__name__)
@pytest.mark.parametrize("how", ["item", "entry", "update"])
def test_a_replaced_state_is_what_the_next_step_uses(
    cls: type, options: dict[str, Any], layout: Callable[[np.ndarray], np.ndarray], how: str
) -> None:
    pa, a = model(cls, options)
    pb, b = model(cls, options)
    a.step(grads(pa, 9))
    b.step(grads(pb, 9))
    name = a.STATE_NAMES[-1]  # "sum" for every rule
    values = replacement(a, "w", name)
    given = layout(values.copy())
    if how == "item":
        a.state["w"][name] = given
    elif how == "entry":
        a.state["w"] = {**a.state["w"], name: given, "step": 4}
    else:
        a.state["w"].update({name: given})
    saved = b.state_dict()
    saved["state"]["w"][name] = values.copy()
    if how == "entry":
        saved["state"]["w"]["step"] = 4
    b.load_state_dict(saved)
    assert_same_training(pa, a, pb, b)
    assert (a.state["w"][name] is given) == (layout is as_is)  # same layout: used in place, else a copy
    if layout is as_is:
        assert_same_bits(given, b.state["w"][name])  # the caller's array was the one updated


@pytest.mark.parametrize("count", [0, 5, np.int64(12), np.array(3)], ids=["0", "5", "int64", "0-d"])
def test_a_replaced_step_count_is_what_the_next_step_uses(count: Any) -> None:
    pa, a = model(adagrad.Adagrad, {"lr": 0.1, "lr_decay": 0.5})
    pb, b = model(adagrad.Adagrad, {"lr": 0.1, "lr_decay": 0.5})
    a.state["b"]["step"] = count
    saved = b.state_dict()
    saved["state"]["b"]["step"] = int(count)
    b.load_state_dict(saved)
    assert_same_training(pa, a, pb, b)
    assert int(a.state["b"]["step"]) == int(count) + 3


@pytest.mark.parametrize("cls, options", RULES)
def test_state_dict_shows_the_replaced_state_before_any_step(cls: type, options: dict[str, Any]) -> None:
    _, opt = model(cls, options)
    values = {name: replacement(opt, "w", name) for name in opt.STATE_NAMES}
    for name, array in values.items():
        opt.state["w"][name] = array
    opt.state["b"]["step"] = 7
    shown = opt.state_dict()["state"]
    for name, array in values.items():
        assert_same_bits(shown["w"][name], array)
    assert (shown["w"]["step"], shown["b"]["step"]) == (0, 7)


def test_save_writes_the_replaced_state(tmp_path: Path) -> None:
    _pa, a = model(adagrad.Adagrad, {"lr": 0.1})
    values = replacement(a, "w", "sum")
    a.state["w"]["sum"] = values
    a.save(tmp_path / "a.npz")
    _pb, b = model(adagrad.Adagrad, {"lr": 0.1})
    b.load(tmp_path / "a.npz")
    assert_same_bits(b.state["w"]["sum"], values)


def test_a_deep_copy_steps_like_the_original() -> None:
    pa, a = model(adagrad.Adagrad, {"lr": 0.1})
    a.step(grads(pa, 0))
    b = copy.deepcopy(a)
    pb = {name: b.param_groups[0]["params"][i] for i, name in enumerate(pa)}
    assert_same_training(pa, a, pb, b)


# --------------------------------------------------------------------------------------------
# 2. Refused, nothing changed.


def read_only(opt: Any, params: dict[str, np.ndarray]) -> None:
    values = replacement(opt, "w", "sum")
    values.flags.writeable = False
    opt.state["w"]["sum"] = values


REFUSED = [
    pytest.param(lambda o, p: o.state["w"].__setitem__("sum", np.ones((4, 3))), "float32[4, 3]", id="dtype"),
    pytest.param(
        lambda o, p: o.state["w"].__setitem__("sum", np.ones((3, 4), np.float32)), "got float32[3, 4]", id="shape"
    ),
    pytest.param(lambda o, p: o.state["w"].__setitem__("sum", [[1.0] * 3] * 4), "numpy.ndarray, got list", id="list"),
    pytest.param(read_only, "read-only", id="read-only"),
    pytest.param(lambda o, p: o.state["w"].__setitem__("sum", p["w"]), "shares memory with the param 'w'", id="param"),
    pytest.param(
        lambda o, p: (
            o.state["b"].__setitem__("sum", np.zeros(10)[:5]) or o.state["w"].__setitem__("sum", np.zeros(10)[:5])
        ),
        "float32[4, 3]",
        id="dtype-after-valid",
    ),
    pytest.param(
        lambda o, p: (
            o.state["w"].__setitem__("sum", np.ones(24, np.float32).reshape(4, 6)[:, :3])
            or o.state["b"].__setitem__("sum", np.ones(24, np.float64)[:5])
        ),
        None,
        id="valid-strided-copy",
    ),
    pytest.param(lambda o, p: o.state["b"].pop("sum"), "has no 'sum'", id="no-sum"),
    pytest.param(lambda o, p: o.state["b"].pop("step"), "has no 'step'", id="no-step"),
    pytest.param(lambda o, p: o.state.__delitem__("b"), "missing or not a dict", id="no-entry"),
    pytest.param(lambda o, p: o.state["b"].__setitem__("step", -1), "from 0 to 2**63 - 2, got -1", id="step-negative"),
    pytest.param(lambda o, p: o.state["b"].__setitem__("step", 2.0), "must be an int, got float", id="step-float"),
    pytest.param(lambda o, p: o.state["b"].__setitem__("step", True), "must be an int, got bool", id="step-bool"),
    pytest.param(lambda o, p: o.state["b"].__setitem__("step", 2**63), "from 0 to 2**63 - 2", id="step-huge"),
]


@pytest.mark.parametrize("spoil, message", REFUSED)
def test_an_invalid_replacement_is_refused_and_nothing_changes(spoil: Any, message: str | None) -> None:
    pa, a = model(adagrad.Adagrad, {"lr": 0.1})
    pb, b = model(adagrad.Adagrad, {"lr": 0.1})
    a.step(grads(pa, 9))
    b.step(grads(pb, 9))
    entries = {key: dict(entry) for key, entry in a.state.items()}  # the arrays in use
    before = {name: p.copy() for name, p in pa.items()}
    sums = {key: entry["sum"].copy() for key, entry in entries.items()}
    spoil(a, pa)
    if message is None:  # a row that must pass: the table's checks are not over-eager
        a.step(grads(pa, 0))
        return
    with pytest.raises(ValueError) as raised:
        a.step(grads(pa, 0))
    assert message in str(raised.value)
    with pytest.raises(ValueError):
        a.state_dict()
    for name in pa:
        assert_same_bits(pa[name], before[name])
    for key, entry in entries.items():
        assert_same_bits(entry["sum"], sums[key])
        assert int(entry["step"]) == 1
    a.state.clear()  # put right: the entries in use back
    for key, entry in entries.items():
        a.state[key] = entry
    assert_same_training(pa, a, pb, b)


def test_a_state_table_for_each_rule_rejects_a_state_of_another_param() -> None:
    params, opt = model(adagrad.AdagradDA, {"lr": 0.1})
    opt.state["b"]["grad_sum"] = opt.state["b"]["sum"]
    with pytest.raises(ValueError, match=r"opt.state\['b'\]\['grad_sum'\] shares memory with the state 'sum' of 'b'"):
        opt.step(grads(params, 0))


@pytest.mark.parametrize("how", ["item", "entry", "table-update", "setdefault-after-pop"])
def test_the_torch_drop_ins_table_honours_a_replacement(how: str) -> None:
    """The torch drop-ins' table shares the bookkeeping: every way of replacing a sum is seen."""
    torch = pytest.importorskip("torch")
    import adagrad.torch

    p = torch.nn.Parameter(torch.ones(5))
    opt = adagrad.torch.Adagrad([p], lr=0.1)
    p.grad = torch.full((5,), 0.5)
    opt.step()
    entry = {**opt.state[p], "sum": torch.full((5,), 100.0)}
    if how == "item":
        opt.state[p]["sum"] = entry["sum"]
    elif how == "entry":
        opt.state[p] = entry
    elif how == "table-update":
        opt.state.update({p: entry})
    else:
        opt.state.pop(p)
        opt.state.setdefault(p, entry)
    before = p.detach().clone()
    opt.step()
    # With the replaced sum 100 + 0.5**2 (the old one would be 0.5: a step ~14x longer).
    expected = before - 0.1 * 0.5 / (torch.sqrt(torch.tensor(100.25)) + 1e-10)
    torch.testing.assert_close(p.detach(), expected)
    torch.testing.assert_close(opt.state[p]["sum"], torch.full((5,), 100.25))
