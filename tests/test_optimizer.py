"""The optimizer's structure and state handling, for valid use.

What is covered, each as a table of cases:

- the three ways of passing params (a list of arrays; a dict name -> array; a list of param
  groups whose "params" is a list or a dict and whose options override the defaults), with the
  grads given in the same structure;
- a grad of None skips that param, which keeps its own step count;
- the live state (``opt.state[key]["sum"]`` / ``["step"]``), its keys, ``param_names``;
- ``initial_accumulator_value`` per group;
- ``state_dict()`` copies and exact ``load_state_dict()`` round trips, all or nothing;
- options changed between steps, as a scheduler would;
- ``adagrad.reference.Adagrad`` as a drop-in for the native one, under every ISA and thread count;
- Fortran order, read-only grads, 0-d and empty arrays; ``repr``.

Every expected value comes from a plain loop calling ``adagrad.update`` on copies, each param with
its group's options and its own step count, and is compared bit for bit. Bad input and the
kernels' arithmetic are tested elsewhere.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import pytest

import adagrad
from conftest import assert_same_bits, at_line_offset

Key = Union[int, str]
F32, F64 = np.float32, np.float64

UPDATE_OPTIONS = ("lr", "lr_decay", "weight_decay", "eps", "maximize", "decoupled_weight_decay", "eps_inside_sqrt")
DEFAULTS: dict[str, Any] = {
    "lr": 1e-2,
    "lr_decay": 0.0,
    "weight_decay": 0.0,
    "eps": 1e-10,
    "maximize": False,
    "decoupled_weight_decay": False,
    "eps_inside_sqrt": False,
    "initial_accumulator_value": 0.0,
    "rowwise": False,
    "duplicates": "sum",
    "state_dtype": None,
    "stochastic_rounding": False,
    "seed": 0,
}


# --------------------------------------------------------------------------------------------
# Describing a setup, building its arrays, and the expected results by a plain loop.


@dataclass(frozen=True)
class P:
    """One param: its shape, dtype and memory order."""

    shape: tuple[int, ...]
    dtype: type = F32
    order: str = "C"


@dataclass(frozen=True)
class G:
    """One param group: its params, whether they come as a dict, its own options."""

    params: tuple[P, ...]
    by_name: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Setup:
    """Param groups, how they are passed (as group dicts or bare), the constructor's options."""

    groups: tuple[G, ...]
    as_groups: bool = True
    defaults: Mapping[str, Any] = field(default_factory=dict)


def bare_list(*params: P, **defaults: Any) -> Setup:
    return Setup((G(params),), as_groups=False, defaults=defaults)


def bare_dict(*params: P, **defaults: Any) -> Setup:
    return Setup((G(params, by_name=True),), as_groups=False, defaults=defaults)


def keys_of(setup: Setup) -> list[list[Key]]:
    """State keys per group: names "g<group>_w<i>" for dict groups, else flat indices."""
    keys: list[list[Key]] = []
    count = 0
    for gi, group in enumerate(setup.groups):
        n = len(group.params)
        keys.append([f"g{gi}_w{i}" for i in range(n)] if group.by_name else list(range(count, count + n)))
        count += n
    return keys


def flat_keys(setup: Setup) -> list[Key]:
    return [k for ks in keys_of(setup) for k in ks]


def group_options(setup: Setup, gi: int) -> dict[str, Any]:
    return {**DEFAULTS, **setup.defaults, **setup.groups[gi].options}


def random_array(spec: P, rng: np.random.Generator) -> np.ndarray:
    return np.array(rng.standard_normal(spec.shape), dtype=spec.dtype, order=spec.order)


def new_params(setup: Setup, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[random_array(spec, rng) for spec in group.params] for group in setup.groups]


def new_grads(setup: Setup, rng: np.random.Generator, skip: Any = ()) -> list[list[np.ndarray | None]]:
    """Random grads like the params; None for the keys in `skip`."""
    return [
        [None if key in skip else random_array(spec, rng) for key, spec in zip(keys, group.params)]
        for keys, group in zip(keys_of(setup), setup.groups)
    ]


def copies(per_group: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    return [[a.copy(order="K") for a in arrays] for arrays in per_group]


def wrap(setup: Setup, per_group: list[list[Any]], with_options: bool) -> Any:
    """Arrays per group in the setup's structure: as the optimizer's params, or as its grads."""
    containers: list[Any] = []
    for group, keys, arrays in zip(setup.groups, keys_of(setup), per_group):
        container = dict(zip(keys, arrays)) if group.by_name else list(arrays)
        containers.append({"params": container, **group.options} if with_options and setup.as_groups else container)
    return containers if setup.as_groups else containers[0]


def make_optimizer(setup: Setup, params: list[list[np.ndarray]], cls: type = adagrad.Adagrad) -> Any:
    return cls(wrap(setup, params, with_options=True), **setup.defaults)


def step(opt: Any, setup: Setup, grads: list[list[np.ndarray | None]]) -> None:
    opt.step(wrap(setup, grads, with_options=False))


def by_key(setup: Setup, per_group: list[list[Any]]) -> dict[Key, Any]:
    return {k: a for keys, arrays in zip(keys_of(setup), per_group) for k, a in zip(keys, arrays)}


class Manual:
    """The expected params and state: a plain loop calling adagrad.update on copies."""

    def __init__(self, setup: Setup, params: list[list[np.ndarray]]) -> None:
        self.keys = keys_of(setup)
        self.options = [{n: group_options(setup, gi)[n] for n in UPDATE_OPTIONS} for gi in range(len(setup.groups))]
        self.params = by_key(setup, copies(params))
        self.sums = {
            k: np.full_like(p, group_options(setup, gi)["initial_accumulator_value"])
            for gi, (keys, arrays) in enumerate(zip(self.keys, params))
            for k, p in zip(keys, arrays)
        }
        self.steps = {k: 0 for k in self.params}

    def step(self, grads: list[list[np.ndarray | None]]) -> None:
        for keys, group_grads, options in zip(self.keys, grads, self.options):
            for key, grad in zip(keys, group_grads):
                if grad is None:
                    continue
                self.steps[key] += 1
                adagrad.update(self.params[key], grad, self.sums[key], step=self.steps[key], **options)


def assert_matches(opt: Any, setup: Setup, params: list[list[np.ndarray]], manual: Manual) -> None:
    for key, param in by_key(setup, params).items():
        assert_same_bits(param, manual.params[key])
        assert_same_bits(opt.state[key]["sum"], manual.sums[key])
        assert int(opt.state[key]["step"]) == manual.steps[key], key


def assert_same_state(a: Any, a_params: list[list[np.ndarray]], b: Any, b_params: list[list[np.ndarray]]) -> None:
    """Two optimizers hold bitwise identical params, sums, step counts and options."""
    for pa, pb in zip(sum(a_params, []), sum(b_params, [])):
        assert_same_bits(pa, pb)
    assert list(a.state) == list(b.state)
    for key in a.state:
        assert_same_bits(a.state[key]["sum"], b.state[key]["sum"])
        assert int(a.state[key]["step"]) == int(b.state[key]["step"]), key
    assert len(a.param_groups) == len(b.param_groups)
    for ga, gb in zip(a.param_groups, b.param_groups):
        assert {n: ga[n] for n in DEFAULTS} == {n: gb[n] for n in DEFAULTS}


def assert_same_state_dict(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    assert list(actual["state"]) == list(expected["state"])
    for key, entry in expected["state"].items():
        assert actual["state"][key]["step"] == entry["step"], key
        assert_same_bits(actual["state"][key]["sum"], entry["sum"])
    assert actual["param_groups"] == expected["param_groups"]


# --------------------------------------------------------------------------------------------
# 1. The three params structures: each param updated with its group's options.

STRUCTURES = [
    pytest.param(bare_list(P((5,)), P((3, 4)), P((7,), F64), lr=0.1), id="list"),
    pytest.param(bare_list(P((6,), F64), lr=0.05, lr_decay=0.1, weight_decay=0.01), id="list-decays"),
    pytest.param(bare_dict(P((5,)), P((2, 3), F64), lr=0.05, lr_decay=0.1, weight_decay=0.01), id="dict"),
    pytest.param(Setup((G((P((4,)), P((3,), F64)), options={"lr": 0.2}),)), id="groups-one-list-group"),
    pytest.param(Setup((G((P((4,)),), by_name=True, options={"lr": 0.2}),)), id="groups-one-dict-group"),
    pytest.param(
        Setup(
            (G((P((5,)), P((3,), F64))), G((P((2, 2)),), options={"lr": 0.3, "weight_decay": 0.1, "maximize": True})),
            defaults={"lr_decay": 0.05},
        ),
        id="groups-lists",
    ),
    pytest.param(
        Setup(
            (
                G((P((5,)), P((4,), F64)), by_name=True, options={"lr": 0.02}),
                G((P((3, 2), F64),), by_name=True, options={"eps": 1e-3, "eps_inside_sqrt": True}),
            ),
            defaults={"lr": 0.1},
        ),
        id="groups-dicts",
    ),
    pytest.param(
        Setup(
            (
                G((P((5,)), P((4,), F64)), by_name=True),
                G((P((3,)), P((2, 2), F64)), options={"weight_decay": 0.2, "decoupled_weight_decay": True}),
            ),
            defaults={"lr": 0.1, "lr_decay": 0.3},
        ),
        id="groups-dict-then-list",
    ),
    pytest.param(
        Setup(
            (
                G((P((8,), F64),)),
                G(
                    (P((5,)), P((2, 3), F64)),
                    by_name=True,
                    options={
                        "lr": 0.7,
                        "lr_decay": 0.25,
                        "weight_decay": 0.05,
                        "eps": 1e-4,
                        "maximize": True,
                        "decoupled_weight_decay": True,
                        "eps_inside_sqrt": True,
                        "initial_accumulator_value": 0.3,
                    },
                ),
            ),
            defaults={"lr": 0.1, "weight_decay": 0.01},
        ),
        id="groups-every-option-overridden",
    ),
]


@pytest.mark.parametrize("setup", STRUCTURES)
def test_step_updates_each_param_like_update_with_its_groups_options(setup: Setup) -> None:
    params = new_params(setup, seed=1)
    manual = Manual(setup, params)
    opt = make_optimizer(setup, params)
    rng = np.random.default_rng(2)
    for _ in range(4):
        grads = new_grads(setup, rng)
        step(opt, setup, grads)
        manual.step(grads)
        assert_matches(opt, setup, params, manual)


@pytest.mark.parametrize("setup", STRUCTURES)
def test_param_groups_hold_the_groups_options_over_the_defaults(setup: Setup) -> None:
    params = new_params(setup, seed=1)
    opt = make_optimizer(setup, params)
    assert len(opt.param_groups) == len(setup.groups)
    assert opt.defaults == {**DEFAULTS, **setup.defaults}
    for gi, group in enumerate(opt.param_groups):
        assert {n: group[n] for n in DEFAULTS} == group_options(setup, gi)
        assert len(group["params"]) == len(params[gi])
        assert all(got is given for got, given in zip(group["params"], params[gi]))


@pytest.mark.parametrize(
    "container",
    [pytest.param(list, id="list"), pytest.param(tuple, id="tuple")],
)
def test_grads_may_be_a_list_or_a_tuple(container: Callable[[Any], Any]) -> None:
    setup = bare_list(P((3,)), P((2,), F64), lr=0.1)
    params = new_params(setup, seed=1)
    manual = Manual(setup, params)
    opt = make_optimizer(setup, params)
    grads = new_grads(setup, np.random.default_rng(2))
    opt.step(container(grads[0]))
    manual.step(grads)
    assert_matches(opt, setup, params, manual)


@pytest.mark.parametrize(
    "order",
    [pytest.param(lambda keys: keys, id="params-order"), pytest.param(lambda keys: keys[::-1], id="reversed")],
)
def test_dict_grads_are_matched_by_name_not_position(order: Callable[[list[Key]], list[Key]]) -> None:
    setup = bare_dict(P((3,)), P((3,)), P((2,), F64), lr=0.1)
    params = new_params(setup, seed=1)
    manual = Manual(setup, params)
    opt = make_optimizer(setup, params)
    grads = new_grads(setup, np.random.default_rng(2))
    named = by_key(setup, grads)
    opt.step({k: named[k] for k in order(list(named))})
    manual.step(grads)
    assert_matches(opt, setup, params, manual)


# --------------------------------------------------------------------------------------------
# 2. A grad of None skips that param; it keeps its own step count.

DECAYING_LIST = bare_list(P((5,)), P((3,), F64), P((2, 2)), lr=0.1, lr_decay=0.5)
DECAYING_DICT = bare_dict(P((5,)), P((3,), F64), lr=0.1, lr_decay=0.5, weight_decay=0.1)
DECAYING_GROUPS = Setup(
    (G((P((4,)), P((3,), F64))), G((P((2, 3)), P((5,), F64)), by_name=True, options={"lr": 0.3, "lr_decay": 1.0})),
    defaults={"lr": 0.1, "lr_decay": 0.5},
)

SKIP_SCHEDULES = [
    pytest.param(DECAYING_LIST, [set(), {1}, set(), set()], id="list-skip-one-once"),
    pytest.param(DECAYING_LIST, [{0, 2}, set(), {1}, {0}], id="list-skip-several"),
    pytest.param(DECAYING_LIST, [{0, 1, 2}, set(), set()], id="list-skip-all-at-first"),
    pytest.param(DECAYING_LIST, [{2}, {2}, {2}], id="list-one-never-updated"),
    pytest.param(DECAYING_DICT, [{"g0_w0"}, set(), {"g0_w0"}, set()], id="dict-skip-one-twice"),
    pytest.param(DECAYING_GROUPS, [set(), {0, "g1_w1"}, set(), {"g1_w0"}], id="groups-skip-in-both-groups"),
    pytest.param(DECAYING_GROUPS, [{"g1_w0", "g1_w1"}, set(), {0, 1}], id="groups-skip-whole-group"),
]


@pytest.mark.parametrize("setup, schedule", SKIP_SCHEDULES)
def test_none_grad_skips_the_param_and_keeps_its_own_step_count(setup: Setup, schedule: list[set[Key]]) -> None:
    params = new_params(setup, seed=3)
    manual = Manual(setup, params)
    opt = make_optimizer(setup, params)
    arrays = by_key(setup, params)
    rng = np.random.default_rng(4)
    for skipped in schedule:
        grads = new_grads(setup, rng, skip=skipped)
        before = {k: (arrays[k].copy(), opt.state[k]["sum"].copy(), int(opt.state[k]["step"])) for k in skipped}
        step(opt, setup, grads)
        manual.step(grads)
        for key, (param, state_sum, count) in before.items():
            assert_same_bits(arrays[key], param)
            assert_same_bits(opt.state[key]["sum"], state_sum)
            assert int(opt.state[key]["step"]) == count
        assert_matches(opt, setup, params, manual)


def test_skipped_param_later_uses_its_own_step_count_not_the_optimizers() -> None:
    """With lr_decay the step count changes the bits: step 3 of the optimizer is step 2 of `b`."""
    options = {"lr": 0.1, "lr_decay": 0.5}
    a, b = np.array([1.0, -2.0], F32), np.array([0.5, 3.0, -1.0], F32)
    opt = adagrad.Adagrad([a, b], **options)
    grads_b = [np.array([0.3, -0.2, 0.1], F32), np.array([0.7, 0.4, -0.9], F32)]
    expected_b, expected_sum = b.copy(), np.zeros_like(b)
    for count, grad_b in enumerate(grads_b, start=1):
        adagrad.update(expected_b, grad_b, expected_sum, step=count, **options)
    wrong_b = b.copy()
    adagrad.update(wrong_b, grads_b[0], np.zeros_like(b), step=1, **options)
    adagrad.update(wrong_b, grads_b[1], np.zeros_like(b) + grads_b[0] * grads_b[0], step=3, **options)

    opt.step([np.ones(2, F32), grads_b[0]])
    opt.step([np.ones(2, F32), None])
    opt.step([np.ones(2, F32), grads_b[1]])

    assert (int(opt.state[0]["step"]), int(opt.state[1]["step"])) == (3, 2)
    assert_same_bits(b, expected_b)
    assert_same_bits(opt.state[1]["sum"], expected_sum)
    assert not np.array_equal(b, wrong_b)  # the check above can tell the two counts apart


# --------------------------------------------------------------------------------------------
# 3. The state is readable: live sums, step counts, keys, param_names.

STATE_KEYS = [
    pytest.param(bare_list(P((2,)), P((3,)), P((1,))), [[0, 1, 2]], id="list"),
    pytest.param(bare_dict(P((2,)), P((3,))), [["g0_w0", "g0_w1"]], id="dict"),
    pytest.param(
        Setup((G((P((2,)), P((3,)))), G((P((1,)), P((4,)), P((5,)))))), [[0, 1], [2, 3, 4]], id="groups-lists"
    ),
    pytest.param(
        Setup((G((P((2,)), P((3,))), by_name=True), G((P((1,)), P((4,)))))),
        [["g0_w0", "g0_w1"], [2, 3]],
        id="groups-dict-then-list",
    ),
    pytest.param(
        Setup((G((P((2,)),)), G((P((3,)),), by_name=True), G((P((1,)), P((4,)))))),
        [[0], ["g1_w0"], [2, 3]],
        id="groups-list-dict-list",
    ),
]


@pytest.mark.parametrize("setup, expected_keys", STATE_KEYS)
def test_state_keys_are_flat_indices_or_names(setup: Setup, expected_keys: list[list[Key]]) -> None:
    opt = make_optimizer(setup, new_params(setup, seed=1))
    assert list(opt.state) == [k for ks in expected_keys for k in ks]
    saved = opt.state_dict()
    assert list(saved["state"]) == list(opt.state)
    for gi, (group, keys) in enumerate(zip(opt.param_groups, expected_keys)):
        assert saved["param_groups"][gi]["params"] == keys
        if setup.groups[gi].by_name:
            assert group["param_names"] == keys
        else:
            assert "param_names" not in group


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(P((4,)), id="f32"),
        pytest.param(P((2, 3), F64), id="f64-2d"),
        pytest.param(P((3, 2), F32, "F"), id="f32-F"),
    ],
)
def test_state_sum_is_the_live_accumulator_and_step_counts_updates(spec: P) -> None:
    setup = bare_dict(spec, lr=0.1)
    params = new_params(setup, seed=1)
    (w,) = params[0]
    manual = Manual(setup, params)
    opt = make_optimizer(setup, params)
    state_sum, count = opt.state["g0_w0"]["sum"], opt.state["g0_w0"]["step"]
    assert state_sum.dtype == w.dtype and state_sum.shape == w.shape and state_sum.flags.writeable
    assert not np.shares_memory(state_sum, w)
    assert count.dtype == np.int64 and count.shape == () and int(count) == 0
    rng = np.random.default_rng(2)
    for n in range(1, 4):
        grads = new_grads(setup, rng)
        step(opt, setup, grads)
        manual.step(grads)
        assert opt.state["g0_w0"]["sum"] is state_sum
        assert int(opt.state["g0_w0"]["step"]) == int(count) == n
        assert_same_bits(state_sum, manual.sums["g0_w0"])


# --------------------------------------------------------------------------------------------
# 4. initial_accumulator_value per group (torch would use the default's for every group).


@pytest.mark.parametrize("dtype", [pytest.param(F32, id="f32"), pytest.param(F64, id="f64")])
@pytest.mark.parametrize(
    "initials",
    [pytest.param((0.1, 0.5, 0.25), id="0.1-0.5-default0.25"), pytest.param((0.0, 2.0, 1e-3), id="0-2-default1e-3")],
)
def test_initial_accumulator_value_is_honoured_per_group(dtype: type, initials: tuple[float, float, float]) -> None:
    first, second, default = initials
    setup = Setup(
        (
            G((P((3,), dtype), P((2, 2), dtype)), options={"initial_accumulator_value": first}),
            G((P((4,), dtype),), by_name=True, options={"initial_accumulator_value": second}),
            G((P((5,), dtype),)),
        ),
        defaults={"lr": 0.1, "initial_accumulator_value": default},
    )
    params = new_params(setup, seed=1)
    manual = Manual(setup, params)
    opt = make_optimizer(setup, params)
    for group, value in zip(opt.param_groups, initials):
        assert group["initial_accumulator_value"] == value
    for keys, value in zip(keys_of(setup), initials):
        for key in keys:
            assert_same_bits(opt.state[key]["sum"], np.full_like(opt.state[key]["sum"], value))
    grads = new_grads(setup, np.random.default_rng(2))
    step(opt, setup, grads)
    manual.step(grads)
    assert_matches(opt, setup, params, manual)


# --------------------------------------------------------------------------------------------
# 5. state_dict() is a copy; load_state_dict() round-trips exactly, all or nothing.

SAVE_SETUP = Setup(
    (G((P((5,)), P((2, 3), F64)), by_name=True, options={"lr": 0.2}), G((P((4,), F64), P((3, 2), F32, "F")))),
    defaults={"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.01},
)


def stepped(setup: Setup, n: int, seed: int = 5) -> tuple[Any, list[list[np.ndarray]]]:
    params = new_params(setup, seed=seed)
    opt = make_optimizer(setup, params)
    rng = np.random.default_rng(seed + 1)
    for _ in range(n):
        step(opt, setup, new_grads(setup, rng))
    return opt, params


def mutate_sums(sd: dict[str, Any]) -> None:
    for entry in sd["state"].values():
        entry["sum"][...] = 7.0


def mutate_steps(sd: dict[str, Any]) -> None:
    for entry in sd["state"].values():
        entry["step"] = 99


def mutate_lr(sd: dict[str, Any]) -> None:
    sd["param_groups"][0]["lr"] = 9.0


def mutate_params_list(sd: dict[str, Any]) -> None:
    sd["param_groups"][1]["params"].append(17)


def mutate_param_names(sd: dict[str, Any]) -> None:
    sd["param_groups"][0]["param_names"].append("extra")


def mutate_state_dict_itself(sd: dict[str, Any]) -> None:
    sd["state"].clear()
    sd["param_groups"].clear()


STATE_DICT_MUTATIONS = [
    pytest.param(mutate_sums, id="sums"),
    pytest.param(mutate_steps, id="steps"),
    pytest.param(mutate_lr, id="lr"),
    pytest.param(mutate_params_list, id="params-list"),
    pytest.param(mutate_param_names, id="param_names-list"),
    pytest.param(mutate_state_dict_itself, id="containers"),
]


@pytest.mark.parametrize("mutate", STATE_DICT_MUTATIONS)
def test_mutating_a_state_dict_does_not_touch_the_optimizer(mutate: Callable[[dict[str, Any]], None]) -> None:
    opt, _ = stepped(SAVE_SETUP, n=2)
    pristine = copy.deepcopy(opt.state_dict())
    saved = opt.state_dict()
    for key in opt.state:
        assert not np.shares_memory(saved["state"][key]["sum"], opt.state[key]["sum"])
    mutate(saved)
    assert_same_state_dict(opt.state_dict(), pristine)


def test_state_dict_is_a_snapshot_not_a_view() -> None:
    opt, _ = stepped(SAVE_SETUP, n=2)
    saved = opt.state_dict()
    kept = copy.deepcopy(saved)
    step(opt, SAVE_SETUP, new_grads(SAVE_SETUP, np.random.default_rng(9)))
    opt.param_groups[0]["lr"] = 0.5
    assert_same_state_dict(saved, kept)
    assert all(entry["step"] == 2 and type(entry["step"]) is int for entry in saved["state"].values())


def roundtrip_setup(kind: str, dtype: type) -> Setup:
    if kind == "list":
        return bare_list(P((5,), dtype), P((3, 4), dtype), P((2, 3), dtype, "F"), lr=0.1, lr_decay=0.2)
    if kind == "dict":
        return bare_dict(P((5,), dtype), P((3, 4), dtype), lr=0.1, lr_decay=0.2, weight_decay=0.05)
    return Setup(
        (
            G((P((5,), dtype), P((3,), dtype)), options={"lr": 0.3}),
            G((P((2, 2), dtype),), by_name=True, options={"maximize": True, "lr_decay": 0.2}),
            G((P((4,), dtype), P((), dtype)), options={"weight_decay": 0.1, "decoupled_weight_decay": True}),
        ),
        defaults={"lr": 0.1, "lr_decay": 0.05},
    )


@pytest.mark.parametrize("dtype", [pytest.param(F32, id="f32"), pytest.param(F64, id="f64")])
@pytest.mark.parametrize("kind", ["list", "dict", "groups"])
def test_load_state_dict_into_a_new_optimizer_round_trips_exactly(kind: str, dtype: type) -> None:
    setup = roundtrip_setup(kind, dtype)
    a_params = new_params(setup, seed=5)
    a = make_optimizer(setup, a_params)
    rng = np.random.default_rng(6)
    for n in range(4):
        if n == 2:  # hyper-parameters changed before saving must come back too
            a.param_groups[-1]["lr"] = 0.123
            a.param_groups[0]["lr_decay"] = 0.7
        step(a, setup, new_grads(setup, rng, skip={flat_keys(setup)[0]} if n == 1 else ()))
    saved = a.state_dict()

    b_params = copies(a_params)
    b = make_optimizer(setup, b_params)
    live = {k: (b.state[k]["sum"], b.state[k]["step"]) for k in b.state}
    b.load_state_dict(saved)
    assert b.param_groups[-1]["lr"] == 0.123 and b.param_groups[0]["lr_decay"] == 0.7
    assert_same_state(a, a_params, b, b_params)
    for key, (state_sum, count) in live.items():  # loaded in place: references stay live
        assert b.state[key]["sum"] is state_sum
        assert int(count) == int(a.state[key]["step"])
    mutate_sums(saved)  # the load copied the sums
    for _ in range(4):
        grads = new_grads(setup, rng)
        step(a, setup, grads)
        step(b, setup, grads)
    assert_same_state(a, a_params, b, b_params)


def bad_sum_shape(sd: dict[str, Any], last: Key) -> None:
    sd["state"][last]["sum"] = np.zeros((9, 9), sd["state"][last]["sum"].dtype)


def bad_sum_dtype(sd: dict[str, Any], last: Key) -> None:
    sd["state"][last]["sum"] = sd["state"][last]["sum"].astype(F64)


def bad_sum_type(sd: dict[str, Any], last: Key) -> None:
    sd["state"][last]["sum"] = sd["state"][last]["sum"].tolist()


def bad_step(sd: dict[str, Any], last: Key) -> None:
    sd["state"][last]["step"] = -1


def missing_state_entry(sd: dict[str, Any], last: Key) -> None:
    del sd["state"][last]


def fewer_groups(sd: dict[str, Any], last: Key) -> None:
    sd["param_groups"].pop()


def more_groups(sd: dict[str, Any], last: Key) -> None:
    sd["param_groups"].append({**sd["param_groups"][-1], "params": []})


def other_keys(sd: dict[str, Any], last: Key) -> None:
    sd["param_groups"][-1]["params"] = [k + 10 for k in sd["param_groups"][-1]["params"]]


def keys_reordered(sd: dict[str, Any], last: Key) -> None:
    sd["param_groups"][-1]["params"].reverse()


def bad_option(sd: dict[str, Any], last: Key) -> None:
    sd["param_groups"][-1]["lr"] = -1.0


def no_param_groups(sd: dict[str, Any], last: Key) -> None:
    del sd["param_groups"]


BAD_LOADS = [
    pytest.param(bad_sum_shape, id="sum-shape"),
    pytest.param(bad_sum_dtype, id="sum-dtype"),
    pytest.param(bad_sum_type, id="sum-not-ndarray"),
    pytest.param(bad_step, id="negative-step"),
    pytest.param(missing_state_entry, id="missing-state-entry"),
    pytest.param(fewer_groups, id="fewer-groups"),
    pytest.param(more_groups, id="more-groups"),
    pytest.param(other_keys, id="other-keys"),
    pytest.param(keys_reordered, id="keys-reordered"),
    pytest.param(bad_option, id="bad-option"),
    pytest.param(no_param_groups, id="no-param-groups"),
]


@pytest.mark.parametrize("spoil", BAD_LOADS)
def test_mismatched_load_raises_and_changes_nothing(spoil: Callable[[dict[str, Any], Key], None]) -> None:
    """The fault sits in the last group's last param, so a partial load would show in the others."""
    source, _ = stepped(SAVE_SETUP, n=3)
    source.param_groups[0]["lr"] = 0.4
    saved = source.state_dict()
    spoil(saved, flat_keys(SAVE_SETUP)[-1])

    params = new_params(SAVE_SETUP, seed=5)
    target = make_optimizer(SAVE_SETUP, params)
    before, before_params = target.state_dict(), copies(params)
    with pytest.raises((ValueError, TypeError)):
        target.load_state_dict(saved)
    assert_same_state_dict(target.state_dict(), before)
    for got, expected in zip(sum(params, []), sum(before_params, [])):
        assert_same_bits(got, expected)


# --------------------------------------------------------------------------------------------
# 6. Options changed between steps take effect, as a scheduler's would.

OPTION_CHANGES = [
    pytest.param("lr", 0.5, id="lr"),
    pytest.param("lr_decay", 0.3, id="lr_decay"),
    pytest.param("weight_decay", 0.2, id="weight_decay"),
    pytest.param("eps", 1e-2, id="eps"),
    pytest.param("maximize", True, id="maximize"),
    pytest.param("eps_inside_sqrt", True, id="eps_inside_sqrt"),
]


@pytest.mark.parametrize("name, value", OPTION_CHANGES)
def test_changing_a_groups_option_between_steps_takes_effect(name: str, value: Any) -> None:
    setup = Setup(
        (G((P((5,)), P((3,), F64))), G((P((4,)),), by_name=True, options={"lr": 0.2})),
        defaults={"lr": 0.1, "weight_decay": 0.01},
    )
    params = new_params(setup, seed=1)
    manual = Manual(setup, params)
    opt = make_optimizer(setup, params)
    rng = np.random.default_rng(2)
    for n in range(4):
        if n == 2:
            opt.param_groups[0][name] = value
            manual.options[0][name] = value
        grads = new_grads(setup, rng)
        step(opt, setup, grads)
        manual.step(grads)
        assert_matches(opt, setup, params, manual)
    assert opt.param_groups[1][name] == group_options(setup, 1)[name]


def test_changed_lr_changes_the_result() -> None:
    """Guards the test above: the same steps with the old lr give other bits."""
    kept, changed = np.array([1.0, -2.0], F32), np.array([1.0, -2.0], F32)
    opts = [adagrad.Adagrad([kept], lr=0.1), adagrad.Adagrad([changed], lr=0.1)]
    grad = np.array([0.5, 0.25], F32)
    for opt in opts:
        opt.step([grad])
    opts[1].param_groups[0]["lr"] = 0.5
    for opt in opts:
        opt.step([grad])
    expected, state_sum = np.array([1.0, -2.0], F32), np.zeros(2, F32)
    adagrad.update(expected, grad, state_sum, step=1, lr=0.1)
    adagrad.update(expected, grad, state_sum, step=2, lr=0.5)
    assert_same_bits(changed, expected)
    assert not np.array_equal(kept, changed)


# --------------------------------------------------------------------------------------------
# 7. adagrad.reference.Adagrad is a drop-in: same constructor, same state, same bits.

# The largest size crosses the threshold above which a step is split over the threads.
SIZES = (0, 1, 17, 1000, adagrad.cpu_info()["parallel_threshold"] + 3)

REFERENCE_SETUPS = [
    pytest.param(bare_list(*(P((n,)) for n in SIZES), lr=0.1), id="list-f32"),
    pytest.param(bare_dict(*(P((n,), F64) for n in SIZES), lr=0.1, lr_decay=0.05, weight_decay=0.01), id="dict-f64"),
    pytest.param(
        Setup(
            (
                G(tuple(P((n,), F32 if i % 2 else F64) for i, n in enumerate(SIZES))),
                G(
                    (P((100_003,), F64), P((300, 400), F32, "F"), P(()), P((17,)), P((0, 5), F64)),
                    by_name=True,
                    options={"lr": 0.05, "weight_decay": 0.01, "initial_accumulator_value": 0.1},
                ),
                G(
                    (P((1000,), F64), P((40, 2500), F64, "F"), P((17,))),
                    options={
                        "lr_decay": 0.1,
                        "maximize": True,
                        "weight_decay": 0.02,
                        "decoupled_weight_decay": True,
                        "eps_inside_sqrt": True,
                        "eps": 1e-6,
                    },
                ),
            ),
            defaults={"lr": 0.1, "lr_decay": 0.01},
        ),
        id="groups-mixed",
    ),
]


@pytest.mark.parametrize("setup", REFERENCE_SETUPS)
def test_reference_optimizer_matches_native_bit_for_bit(setup: Setup, isa: str, threads: int) -> None:
    native_params = new_params(setup, seed=7)
    reference_params = copies(native_params)
    native = make_optimizer(setup, native_params)
    reference = make_optimizer(setup, reference_params, adagrad.reference.Adagrad)
    assert list(native.state) == list(reference.state)
    keys = flat_keys(setup)
    rng = np.random.default_rng(8)
    for n in range(10):
        grads = new_grads(setup, rng, skip={keys[n % len(keys)]} if n % 3 else ())
        step(native, setup, grads)
        step(reference, setup, grads)
    assert_same_state(native, native_params, reference, reference_params)
    assert_same_state_dict(native.state_dict(), reference.state_dict())


@pytest.mark.parametrize(
    "source, target",
    [
        pytest.param(adagrad.Adagrad, adagrad.reference.Adagrad, id="native-to-reference"),
        pytest.param(adagrad.reference.Adagrad, adagrad.Adagrad, id="reference-to-native"),
    ],
)
def test_state_dicts_move_between_native_and_reference(source: type, target: type) -> None:
    setup = roundtrip_setup("groups", F32)
    a_params = new_params(setup, seed=5)
    a = make_optimizer(setup, a_params, source)
    rng = np.random.default_rng(6)
    for _ in range(3):
        step(a, setup, new_grads(setup, rng))
    b_params = copies(a_params)
    b = make_optimizer(setup, b_params, target)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        grads = new_grads(setup, rng)
        step(a, setup, grads)
        step(b, setup, grads)
    assert_same_state(a, a_params, b, b_params)


# --------------------------------------------------------------------------------------------
# 8./9. Fortran order, read-only grads, 0-d and empty arrays.

LAYOUTS = [
    pytest.param(P((3, 4), F32, "F"), id="F-2d-f32"),
    pytest.param(P((5, 2), F64, "F"), id="F-2d-f64"),
    pytest.param(P((2, 3, 4), F32, "F"), id="F-3d"),
    pytest.param(P((1, 5), F32, "F"), id="F-one-row"),
    pytest.param(P(()), id="0d-f32"),
    pytest.param(P((), F64), id="0d-f64"),
    pytest.param(P((0,)), id="empty-1d"),
    pytest.param(P((3, 0), F64), id="empty-2d"),
    pytest.param(P((0, 4), F32, "F"), id="empty-F"),
]


@pytest.mark.parametrize(
    "readonly", [pytest.param(False, id="writeable-grads"), pytest.param(True, id="readonly-grads")]
)
@pytest.mark.parametrize("spec", LAYOUTS)
def test_layouts_and_readonly_grads(spec: P, readonly: bool) -> None:
    setup = Setup(
        (G((spec, P((3,)))), G((spec,), by_name=True, options={"initial_accumulator_value": 0.5})),
        defaults={"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.01},
    )
    params = new_params(setup, seed=1)
    manual = Manual(setup, params)
    opt = make_optimizer(setup, params)
    for key, param in by_key(setup, params).items():
        state_sum = opt.state[key]["sum"]
        assert state_sum.shape == param.shape
        assert state_sum.flags.c_contiguous == param.flags.c_contiguous
        assert state_sum.flags.f_contiguous == param.flags.f_contiguous
    rng = np.random.default_rng(2)
    for _ in range(3):
        grads = new_grads(setup, rng)
        kept = copies(grads)
        for grad in sum(grads, []):
            grad.flags.writeable = not readonly
        step(opt, setup, grads)
        manual.step(grads)
        assert_matches(opt, setup, params, manual)
        for grad, original in zip(sum(grads, []), sum(kept, [])):
            assert_same_bits(grad, original)


def test_grads_from_a_readonly_buffer() -> None:
    w = np.array([1.0, 2.0, 3.0], F64)
    grad = np.frombuffer(np.array([0.5, -0.5, 0.0], F64).tobytes(), F64)
    assert not grad.flags.writeable
    expected, state_sum = w.copy(), np.zeros(3, F64)
    adagrad.update(expected, grad, state_sum, step=1, lr=0.1)
    opt = adagrad.Adagrad({"w": w}, lr=0.1)
    opt.step({"w": grad})
    assert_same_bits(w, expected)
    assert_same_bits(opt.state["w"]["sum"], state_sum)


# --------------------------------------------------------------------------------------------
# 10. repr names every group.

REPRS = [
    pytest.param(bare_list(P((2,)), P((3,)), lr=0.25), [(2, 0.25)], id="list"),
    pytest.param(bare_dict(P((2,)), lr=0.25), [(1, 0.25)], id="dict"),
    pytest.param(
        Setup(
            (
                G((P((2,)),), options={"lr": 0.1}),
                G((P((2,)), P((1,))), by_name=True, options={"lr": 0.2}),
                G((P((3,)),)),
            )
        ),
        [(1, 0.1), (2, 0.2), (1, 0.01)],
        id="groups",
    ),
]


@pytest.mark.parametrize("setup, groups", REPRS)
def test_repr_mentions_each_group(setup: Setup, groups: list[tuple[int, float]]) -> None:
    text = repr(make_optimizer(setup, new_params(setup, seed=1)))
    assert text.startswith("Adagrad")
    lines = [line for line in text.splitlines() if "param group" in line]
    assert len(lines) == len(groups)
    for index, (line, (count, lr)) in enumerate(zip(lines, groups)):
        assert f"param group {index}" in line
        assert f"{count} params" in line
        assert f"lr={lr}" in line


@pytest.mark.parametrize(
    ("shape", "dtype", "offset", "order"),
    [
        ((5000,), F32, 16, "C"),
        ((5000,), F32, 0, "C"),
        ((70, 90), F64, 40, "C"),
        ((70, 90), F32, 4, "F"),
        ((3,), F64, 56, "C"),
        ((), F32, 12, "C"),
    ],
)
def test_state_sums_start_at_the_params_offset_from_a_cache_line(
    shape: tuple[int, ...], dtype: type, offset: int, order: str
) -> None:
    """The kernel puts its vector loop on the param's cache lines; the sums then share them."""
    param = at_line_offset(np.ones(shape, dtype), offset, order)
    opt = adagrad.Adagrad([param], initial_accumulator_value=0.25)
    sums = opt.state[0]["sum"]
    assert sums.ctypes.data % 64 == offset
    assert sums.shape == param.shape and sums.dtype == param.dtype
    assert sums.flags.f_contiguous == param.flags.f_contiguous and sums.flags.c_contiguous == param.flags.c_contiguous
    assert (sums == 0.25).all()
