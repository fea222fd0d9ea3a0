"""Every rule takes every transform and every dtype: the native kernels against the reference, bit for
bit. The transforms (loss scale, clip, maximize, stochastic rounding) and the 16-bit params were
Adagrad's alone, or refused for compile time; each is now a runtime switch of one kernel body per rule
(cpp/src/dense_kernel.inl), and these tables hold each rule x transform x dtype pair to the reference,
dense and sparse (both duplicates modes, a fixed row length and another), on every ISA; the optimizers
(streams of stochastic rounding, several groups) and the threaded paths too."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import adagrad
from adagrad import reference as ref
from conftest import BF16, F16, F32, HALF_PAIRS, assert_same_bits

F64 = np.dtype(np.float64)
PAIRS = [pytest.param(F32, F32, id="f32"), pytest.param(F64, F64, id="f64"), *HALF_PAIRS]


class Rule:
    """A rule's single-call functions (by name, in adagrad and in its reference) and its states."""

    def __init__(self, name: str, dense: str, sparse: str, options: dict[str, Any], states: Callable[..., list[Any]]):
        self.name, self.dense, self.sparse, self.options, self.states = name, dense, sparse, options, states


def _sums(shape: Any, dtype: Any, rng: np.random.Generator) -> np.ndarray:
    return (0.1 + rng.random(shape)).astype(dtype)


RULES = [
    pytest.param(
        Rule("adagrad", "update", "sparse_update", {"lr": 0.05, "weight_decay": 0.01, "lr_decay": 0.02},
             lambda shape, dtype, rng, rows: [_sums(shape, dtype, rng)]),
        id="adagrad",
    ),
    pytest.param(
        Rule("proximal", "proximal_update", "sparse_proximal_update", {"lr": 0.05, "l1": 0.01, "l2": 0.02},
             lambda shape, dtype, rng, rows: [_sums(shape, dtype, rng)]),
        id="proximal",
    ),
    pytest.param(
        Rule("proximal", "proximal_update", "sparse_proximal_update", {"lr": 0.05, "l1": 0.01, "eps": 1e-3},
             lambda shape, dtype, rng, rows: [_sums(shape, dtype, rng) - 0.1]),
        id="proximal-eps",
    ),
    pytest.param(
        Rule("dual_averaging", "da_update", "sparse_da_update", {"lr": 0.05, "l1": 0.01, "l2": 0.02},
             lambda shape, dtype, rng, rows: [rng.standard_normal(shape).astype(dtype), _sums(shape, dtype, rng)]),
        id="da",
    ),
    pytest.param(
        Rule("adagrad_decay", "decay_update", "sparse_decay_update",
             {"lr": 0.05, "accumulator_decay_step": 2, "accumulator_decay_rate": 0.5, "initial_accumulator_value": 0.1},
             lambda shape, dtype, rng, rows: [_sums(shape, dtype, rng), np.zeros(rows, np.int64)]),
        id="decay",
    ),
    pytest.param(
        Rule("ftrl", "ftrl_update", "sparse_ftrl_update",
             {"lr": 0.05, "l1": 0.01, "l2": 0.02, "l2_shrinkage": 0.01, "beta": 0.1},
             lambda shape, dtype, rng, rows: [_sums(shape, dtype, rng), rng.standard_normal(shape).astype(dtype)]),
        id="ftrl",
    ),
    pytest.param(
        Rule("ftrl", "ftrl_update", "sparse_ftrl_update",
             {"lr": 0.05, "lr_power": -0.7, "l1": 0.01, "l2": 0.02, "multiply_linear_by_lr": True},
             lambda shape, dtype, rng, rows: [_sums(shape, dtype, rng), rng.standard_normal(shape).astype(dtype)]),
        id="ftrl-pow-by-lr",
    ),
    pytest.param(
        Rule("ftrl", "ftrl_update", "sparse_ftrl_update", {"lr": 0.05, "lr_power": 0.0, "l1": 0.3},
             lambda shape, dtype, rng, rows: [_sums(shape, dtype, rng), rng.standard_normal(shape).astype(dtype)]),
        id="ftrl-fixed-rate",
    ),
]  # fmt: skip

TRANSFORMS = [
    pytest.param({}, id="none"),
    pytest.param({"grad_scale": 64.0}, id="scale-pow2"),
    pytest.param({"grad_scale": 3.0}, id="scale-divide"),
    pytest.param({"clip_value": 0.4}, id="clip-value"),
    pytest.param({"max_grad_norm": 1.0}, id="clip-global"),
    pytest.param({"clip_norm_per_tensor": 0.5, "norm_type": "inf"}, id="clip-tensor-inf"),
    pytest.param({"maximize": True}, id="maximize"),
    pytest.param({"grad_scale": 3.0, "clip_value": 0.3, "maximize": True}, id="all"),
    pytest.param({"stochastic_rounding": True, "seed": 11}, id="sr"),
]

STEPS = 3
N = 77  # a vector body and a tail on every ISA


def _grad(shape: Any, dtype: Any, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


# The reference's results per case, computed once and compared on every ISA.
_EXPECTED: dict[Any, list[list[np.ndarray]]] = {}


def _run(
    function: Callable[..., bool], arrays: list[np.ndarray], feed: list[list[Any]], options: dict[str, Any]
) -> list[list[np.ndarray]]:
    """`function(*arrays before the states, *states, step=t, **options)` for each step's inputs;
    the written arrays after each step."""
    param, states = arrays[0], arrays[1:]
    after = []
    for t, inputs in enumerate(feed, start=1):
        assert function(param, *inputs, *states, step=t, **options) is True
        after.append([param.copy(), *(s.copy() for s in states)])
    return after


def _dense_case(rule: Rule, dtype: Any, state_dtype: Any, seed: int) -> tuple[list[np.ndarray], list[list[Any]]]:
    rng = np.random.default_rng(seed)
    param = rng.standard_normal(N).astype(dtype)
    states = rule.states(N, state_dtype, rng, 1)
    feed = [[_grad(N, dtype, rng)] for _ in range(STEPS)]
    return [param, *states], feed


@pytest.mark.parametrize(("dtype", "state_dtype"), PAIRS)
@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("rule", RULES)
def test_dense_is_reference(rule: Rule, transform: dict[str, Any], dtype: Any, state_dtype: Any, isa: str) -> None:
    options = {**rule.options, **transform}
    arrays, feed = _dense_case(rule, dtype, state_dtype, 1)
    key = ("dense", rule.dense, tuple(sorted(options.items())), dtype, state_dtype)
    if key not in _EXPECTED:
        _EXPECTED[key] = _run(getattr(ref, rule.dense), [a.copy() for a in arrays], feed, options)
    for got, expected in zip(_run(getattr(adagrad, rule.dense), arrays, feed, options), _EXPECTED[key]):
        for a, b in zip(got, expected):
            assert_same_bits(a, b)


def _sparse_case(
    rule: Rule, dtype: Any, state_dtype: Any, dim: int, seed: int
) -> tuple[list[np.ndarray], list[list[Any]]]:
    rng = np.random.default_rng(seed)
    rows = 12
    table = rng.standard_normal((rows, dim)).astype(dtype)
    states = rule.states((rows, dim), state_dtype, rng, rows)
    feed = []
    for _ in range(STEPS):
        ids = rng.integers(0, rows, size=20)  # repeats
        feed.append([ids, _grad((20, dim), dtype, rng)])
    return [table, *states], feed


@pytest.mark.parametrize("dim", [16, 37])
@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize(
    ("dtype", "state_dtype"),
    [pytest.param(F32, F32, id="f32"), pytest.param(F64, F64, id="f64"), HALF_PAIRS[0], HALF_PAIRS[3]],
)
@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("rule", RULES)
def test_sparse_is_reference(
    rule: Rule, transform: dict[str, Any], dtype: Any, state_dtype: Any, duplicates: str, dim: int, isa: str
) -> None:
    options = {**rule.options, **transform, "duplicates": duplicates}
    arrays, feed = _sparse_case(rule, dtype, state_dtype, dim, 2)
    key = ("sparse", rule.dense, tuple(sorted(options.items())), dtype, state_dtype, dim)
    if key not in _EXPECTED:
        _EXPECTED[key] = _run(getattr(ref, rule.sparse), [a.copy() for a in arrays], feed, options)
    for got, expected in zip(_run(getattr(adagrad, rule.sparse), arrays, feed, options), _EXPECTED[key]):
        for a, b in zip(got, expected):
            assert_same_bits(a, b)


@pytest.mark.parametrize("rule", RULES)
def test_threaded_steps_are_reference(rule: Rule, isa: str, threads: int) -> None:
    """Above the parallel threshold, dense and sparse, a 16-bit param with every transform at once:
    the same bits on 1 and 2 threads."""
    n = adagrad.cpu_info()["parallel_threshold"] + 5
    options = {**rule.options, "grad_scale": 3.0, "max_grad_norm": 20.0, "maximize": True}
    arrays, feed = _dense_case(rule, F16, F32, 3)
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(n).astype(F16), *rule.states(n, F32, rng, 1)]
    feed = [[_grad(n, F16, rng)] for _ in range(2)]
    key = ("threaded", rule.dense, tuple(sorted(options.items())))
    if key not in _EXPECTED:
        _EXPECTED[key] = _run(getattr(ref, rule.dense), [a.copy() for a in arrays], feed, options)
    for got, expected in zip(_run(getattr(adagrad, rule.dense), arrays, feed, options), _EXPECTED[key]):
        for a, b in zip(got, expected):
            assert_same_bits(a, b)


OPTIMIZERS = [
    pytest.param(adagrad.Adagrad, ref.Adagrad, {"lr": 0.05}, id="adagrad"),
    pytest.param(adagrad.ProximalAdagrad, ref.ProximalAdagrad, {"lr": 0.05, "l1": 0.01}, id="proximal"),
    pytest.param(adagrad.AdagradDA, ref.AdagradDA, {"lr": 0.05, "l1": 0.01, "l2": 0.1}, id="da"),
    pytest.param(adagrad.AdagradDecay, ref.AdagradDecay, {"lr": 0.05, "accumulator_decay_step": 2}, id="decay"),
    pytest.param(adagrad.Ftrl, ref.Ftrl, {"lr": 0.05, "l1": 0.01, "l2_shrinkage": 0.01}, id="ftrl"),
]


def _groups(seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {"params": [rng.standard_normal((8, 16)).astype(F16), rng.standard_normal(33).astype(F64)], "maximize": True},
        {
            "params": {"emb": rng.standard_normal((10, 16)).astype(BF16), "b": rng.standard_normal(5).astype(F32)},
            "stochastic_rounding": True,
            "seed": 5,
            "state_dtype": "float32",
        },
    ]


def _grads(opt: Any, rng: np.random.Generator) -> list[Any]:
    out = []
    for group in opt.param_groups:
        arrays = group["params"]
        grads = [
            adagrad.SparseGrad(rng.integers(0, p.shape[0], 6), rng.standard_normal((6, p.shape[1])).astype(p.dtype))
            if p.ndim == 2 and i == 0
            else rng.standard_normal(p.shape).astype(p.dtype)
            for i, p in enumerate(arrays)
        ]
        names = group.get("param_names")
        out.append(dict(zip(names, grads)) if names else grads)
    return out


@pytest.mark.parametrize(
    "step_options",
    [pytest.param({}, id="plain"), pytest.param({"grad_scale": 8.0, "clip_norm_per_tensor": 2.0}, id="scale-clip")],
)
@pytest.mark.parametrize(("native_cls", "reference_cls", "options"), OPTIMIZERS)
def test_optimizers_are_reference(
    native_cls: Any, reference_cls: Any, options: dict[str, Any], step_options: dict[str, Any]
) -> None:
    """Every rule's optimizer over 16-bit and float32/float64 params in two groups, one maximizing,
    one stochastically rounding (each param its own stream): the reference optimizer's bits."""
    if BF16 == F16:
        pytest.skip("bfloat16 arrays need ml_dtypes")
    native = native_cls(_groups(7), **options, **step_options)
    reference = reference_cls(_groups(7), **options, **step_options)
    rng_a, rng_b = np.random.default_rng(8), np.random.default_rng(8)
    for _ in range(STEPS):
        assert native.step(_grads(native, rng_a)) is True
        assert reference.step(_grads(reference, rng_b)) is True
    assert native.last_grad_norm == reference.last_grad_norm
    for key, state in native.state.items():
        for name, value in state.items():
            assert_same_bits(np.asarray(value), np.asarray(reference.state[key][name]))
    for group, twin in zip(native.param_groups, reference.param_groups):
        for p, q in zip(group["params"], twin["params"]):
            assert_same_bits(p, q)


def test_proximal_eps_guards_a_zero_sum() -> None:
    """A sum of 0 (a state warm-started from Adagrad's) and a zero grad: with eps = 0 (TensorFlow's
    maths) the rate is lr / 0 and the param NaN; with eps > 0 the step leaves the param as it was."""
    for update in (adagrad.proximal_update, ref.proximal_update):
        w, s = np.array([0.5, -0.5]), np.zeros(2)
        assert update(w, np.zeros(2), s, lr=0.1, eps=1e-3) is True
        assert w.tolist() == [0.5, -0.5]
        w, s = np.array([0.5, -0.5]), np.zeros(2)
        update(w, np.zeros(2), s, lr=0.1)
        assert np.isnan(w).all()
