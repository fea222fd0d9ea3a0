"""add_param_group on the NumPy optimizers: checked as the constructor checks (nothing changes when
refused), fresh states for the new params, the same training as groups given at once (against the
reference), and state_dict and checkpoints over the added group."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

import adagrad
from adagrad import reference
from conftest import assert_same_bits

RULES = [
    pytest.param(adagrad.Adagrad, reference.Adagrad, {"lr": 0.1}, {"lr": 0.05, "lr_decay": 0.1}, id="Adagrad"),
    pytest.param(adagrad.ProximalAdagrad, reference.ProximalAdagrad, {"lr": 0.1}, {"l1": 0.01}, id="Proximal"),
    pytest.param(adagrad.AdagradDA, reference.AdagradDA, {"lr": 0.1}, {"l2": 0.01}, id="AdagradDA"),
    pytest.param(adagrad.AdagradDecay, reference.AdagradDecay, {"lr": 0.1}, {"lr": 0.02}, id="AdagradDecay"),
    pytest.param(adagrad.Ftrl, reference.Ftrl, {"lr": 0.1}, {"l1": 0.01}, id="Ftrl"),
]


def arrays(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((4, 3)), rng.standard_normal(5)


def grads(rng: np.random.Generator) -> list[list[np.ndarray]]:
    return [[rng.standard_normal((4, 3))], [rng.standard_normal(5)]]


@pytest.mark.parametrize("native, ref, defaults, added", RULES)
def test_an_added_group_trains_as_if_given_at_once(native: Any, ref: Any, defaults: Any, added: Any) -> None:
    """One step on the first group alone, then both: the reference is built with both groups and
    stepped with no grads for the second group at first."""
    (a, b), (ra, rb) = arrays(0), arrays(0)
    opt = native([a], **defaults)
    expected = ref([{"params": [ra]}, {"params": [rb], **added}], **defaults)
    rng = np.random.default_rng(1)
    first = rng.standard_normal((4, 3))
    opt.step([first])
    expected.step([[first], [None]])
    opt.add_param_group({"params": [b], **added})
    assert opt.param_groups[1]["params"][0] is b
    assert {k: opt.param_groups[1][k] for k in added} == added
    assert all(opt.param_groups[1][k] == v for k, v in opt.defaults.items() if k not in added)
    assert [int(opt.state[k]["step"]) for k in (0, 1)] == [1, 0]
    for _ in range(3):
        g = grads(rng)
        opt.step(g)
        expected.step(g)
    assert_same_bits(a, ra)
    assert_same_bits(b, rb)
    for name in opt.STATE_NAMES:
        assert_same_bits(opt.state[1][name], expected.state[1][name])
    assert [int(opt.state[k]["step"]) for k in (0, 1)] == [4, 3]


def test_named_params_keep_their_names_and_new_ones_are_checked() -> None:
    (a, b), c = arrays(0), np.zeros(2)
    opt = adagrad.Adagrad({"a": a}, lr=0.1)
    opt.add_param_group({"params": {"b": b}})
    assert list(opt.state) == ["a", "b"] and opt.param_groups[1]["param_names"] == ["b"]
    with pytest.raises(ValueError, match="param name 'b' appears in more than one param group"):
        opt.add_param_group({"params": {"b": c}})
    opt.step([{"a": np.ones((4, 3))}, {"b": None}])
    assert int(opt.state["a"]["step"]) == 1 and int(opt.state["b"]["step"]) == 0


BAD_GROUPS = [
    pytest.param(lambda a, b: [b], TypeError, "a param group must be a dict with 'params', got list", id="not-a-dict"),
    pytest.param(lambda a, b: {"lr": 0.1}, TypeError, "a param group must be a dict with 'params'", id="no-params"),
    pytest.param(
        lambda a, b: {"params": [b], "beta": 1}, TypeError, "param group 1: unknown option 'beta'", id="unknown"
    ),
    pytest.param(
        lambda a, b: {"params": [b], "lr": -1.0}, ValueError, "param group 1: lr must be a finite number >= 0", id="lr"
    ),
    pytest.param(
        lambda a, b: {"params": [a]},
        ValueError,
        r"duplicate param: params\[0\] and params\[1\] are the same array",
        id="duplicate",
    ),
    pytest.param(lambda a, b: {"params": [a.reshape(-1)]}, ValueError, "share memory", id="a-view-of-a-param"),
    pytest.param(
        lambda a, b: {"params": [b.astype(np.int32)]}, TypeError, r"param params\[1\] must have dtype", id="dtype"
    ),
    pytest.param(lambda a, b: {"params": b}, TypeError, "got a single ndarray", id="single-array"),
]


@pytest.mark.parametrize("make_group, error, message", BAD_GROUPS)
def test_a_refused_group_changes_nothing(make_group: Any, error: type, message: str) -> None:
    a, b = arrays(0)
    opt = adagrad.Adagrad([a], lr=0.1)
    opt.step([np.ones((4, 3))])
    before = opt.state_dict()
    with pytest.raises(error, match=message):
        opt.add_param_group(make_group(a, b))
    assert len(opt.param_groups) == 1 and list(opt.state) == [0]
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert_same_bits(after["state"][0]["sum"], before["state"][0]["sum"])
    opt.step([np.ones((4, 3))])  # still steps as a one-group optimizer
    assert int(opt.state[0]["step"]) == 2


@pytest.mark.parametrize("how", ["state_dict", "save"])
@pytest.mark.parametrize("native, ref, defaults, added", RULES)
def test_an_added_group_round_trips(native: Any, ref: Any, defaults: Any, added: Any, how: str) -> None:
    (a, b), (ta, tb) = arrays(0), arrays(0)
    opt, twin = native([a], **defaults), native([ta], **defaults)
    opt.add_param_group({"params": [b], **added})
    twin.add_param_group({"params": [tb]})  # the other options come from the state
    rng = np.random.default_rng(2)
    opt.step(grads(rng))
    if how == "state_dict":
        twin.load_state_dict(opt.state_dict())
    else:
        buffer = io.BytesIO()
        opt.save(buffer, params=True)
        buffer.seek(0)
        twin.load(buffer)
    ta[...], tb[...] = a, b
    assert {k: twin.param_groups[1][k] for k in added} == added
    g = grads(rng)
    opt.step(g)
    twin.step(g)
    assert_same_bits(ta, a)
    assert_same_bits(tb, b)
