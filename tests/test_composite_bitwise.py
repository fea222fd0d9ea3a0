"""Proximal Adagrad and Adagrad-DA: the native kernels against the reference, bit for bit.

Dense and sparse (both duplicates modes, the fixed row lengths and others), float32 and float64,
vector tails, threaded sizes, special values; every instruction set here, 1 and 2 threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import adagrad
from adagrad import reference
from conftest import assert_same_bits
from test_dense_bitwise import random_grad, unaligned

DTYPES = [np.float32, np.float64]
SIZES = [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 1000]
THREADED_SIZES = [2**16 + 3, 5]  # several threads' chunks, and a small array in the same call


class Rule:
    """A composite rule's four entry points and how many state arrays it keeps besides the param."""

    def __init__(self, name: str, dense: Callable[..., bool], sparse: Callable[..., bool], states: int, step: bool):
        self.name, self.dense, self.sparse, self.states, self.step = name, dense, sparse, states, step

    def initial_states(self, like: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """Proximal: the squared sum at 0.1; DA: a grad sum of random values, the squared sum at 0.1."""
        sums = np.full_like(like, 0.1)
        if self.states == 1:
            return [sums]
        return [(rng.standard_normal(like.shape) * 0.1).astype(like.dtype), sums]

    def call(
        self, native: bool, param: np.ndarray, grad: Any, states: list[np.ndarray], t: int, **options: Any
    ) -> bool:
        module = adagrad if native else reference
        step = {"step": t} if self.step else {}
        if isinstance(grad, tuple):
            indices, values = grad
            return getattr(module, self.sparse.__name__)(param, indices, values, *states, **step, **options)
        return getattr(module, self.dense.__name__)(param, grad, *states, **step, **options)


RULES = [
    Rule("proximal", adagrad.proximal_update, adagrad.sparse_proximal_update, states=1, step=False),
    Rule("dual_averaging", adagrad.da_update, adagrad.sparse_da_update, states=2, step=True),
]
RULE_IDS = [r.name for r in RULES]

OPTIONS = [
    pytest.param({"lr": 0.1}, id="plain"),
    pytest.param({"lr": 0.1, "l1": 0.02}, id="l1"),
    pytest.param({"lr": 0.1, "l2": 0.05}, id="l2"),
    pytest.param({"lr": 0.3, "l1": 0.01, "l2": 0.2}, id="l1-l2"),
    pytest.param({"lr": 0.0, "l1": 0.01}, id="lr0"),
]


def run_dense(
    rule: Rule, dtype: type, options: dict[str, Any], sizes: list[int], steps: int, seed: int, shift: bool
) -> None:
    rng = np.random.default_rng(seed)
    params = [(rng.standard_normal(n) * 0.5).astype(dtype) for n in sizes]
    states = [rule.initial_states(p, rng) for p in params]
    if shift:
        params = [unaligned(p) for p in params]
        states = [[unaligned(s) for s in st] for st in states]
    expected = [p.copy() for p in params]
    expected_states = [[s.copy() for s in st] for st in states]
    for t in range(1, steps + 1):
        for p, st, e, est in zip(params, states, expected, expected_states):
            g = random_grad(rng, p.shape, dtype)
            assert rule.call(True, p, g, st, t, **options) is True
            assert rule.call(False, e, g, est, t, **options) is True
    for p, st, e, est in zip(params, states, expected, expected_states):
        for s, es in zip(st, est):
            assert_same_bits(s, es)
        assert_same_bits(p, e)


@pytest.mark.parametrize("shift", [False, True], ids=["aligned", "unaligned"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_dense_every_option(rule: Rule, options: dict[str, Any], dtype: type, shift: bool, isa: str) -> None:
    run_dense(rule, dtype, options, SIZES, steps=4, seed=11, shift=shift)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_dense_threaded(rule: Rule, dtype: type, isa: str, threads: int) -> None:
    run_dense(rule, dtype, {"lr": 0.3, "l1": 0.01, "l2": 0.2}, THREADED_SIZES, steps=3, seed=13, shift=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_dense_many_steps(rule: Rule, dtype: type, isa: str) -> None:
    run_dense(rule, dtype, {"lr": 0.2, "l1": 0.001, "l2": 0.01}, [257, 64], steps=120, seed=12, shift=False)


SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 5e-324, 1e-30, 1e30, 3e38, 1e300, -1e-300]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("options", [{"lr": 0.1}, {"lr": 0.1, "l1": 0.5, "l2": 0.5}], ids=["plain", "l1-l2"])
@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_special_values_like_reference(rule: Rule, options: dict[str, Any], dtype: type, isa: str) -> None:
    """Non-finite, signed-zero, subnormal and huge grads; params of both signs and zero; sums of
    0 (Proximal: an infinite rate) and of 0.1."""
    n = len(SPECIAL)
    with np.errstate(all="ignore"):
        grads = np.array(SPECIAL * 6, dtype=dtype)
        params = np.repeat(np.array([1.0, -2.0, 0.0, -0.0, 1e-40, 3.0], dtype=dtype), n)
    states = [np.zeros_like(params) for _ in range(rule.states)]
    states[-1][: 3 * n] = 0.1
    expected, expected_states = params.copy(), [s.copy() for s in states]
    for t in (1, 2):
        rule.call(True, params, grads, states, t, **options)
        rule.call(False, expected, grads, expected_states, t, **options)
    for s, es in zip(states, expected_states):
        assert_same_bits(s, es)
    assert_same_bits(params, expected)


def random_rows(rng: np.random.Generator, rows: int, k: int) -> np.ndarray:
    """k row ids with many repeats (a skewed draw), int64 or int32 by the draw's parity."""
    ids = np.minimum(rng.zipf(1.3, size=k) - 1, rows - 1)
    return ids.astype(np.int64 if k % 2 == 0 else np.int32)


def run_sparse(
    rule: Rule, dtype: type, options: dict[str, Any], dim: int, k: int, duplicates: str, steps: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    rows = 3 * k
    table = (rng.standard_normal((rows, dim)) * 0.5).astype(dtype)
    states = rule.initial_states(table, rng)
    untouched = table.copy()
    expected, expected_states = table.copy(), [s.copy() for s in states]
    seen = np.zeros(rows, bool)
    for t in range(1, steps + 1):
        indices = random_rows(rng, rows, k)
        values = random_grad(rng, (k, dim), dtype)
        seen[indices] = True
        grad = (indices, values)
        assert rule.call(True, table, grad, states, t, duplicates=duplicates, **options) is True
        assert rule.call(False, expected, grad, expected_states, t, duplicates=duplicates, **options) is True
    for s, es in zip(states, expected_states):
        assert_same_bits(s, es)
    assert_same_bits(table, expected)
    assert_same_bits(table[~seen], untouched[~seen])


SPARSE_OPTIONS = [
    pytest.param({"lr": 0.1}, id="plain"),
    pytest.param({"lr": 0.3, "l1": 0.01, "l2": 0.2}, id="l1-l2"),
]


@pytest.mark.parametrize("dim", [1, 5, 16, 32, 64, 128, 200])
@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("options", SPARSE_OPTIONS)
@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_sparse_like_reference(
    rule: Rule, options: dict[str, Any], dtype: type, duplicates: str, dim: int, isa: str
) -> None:
    run_sparse(rule, dtype, options, dim, k=40, duplicates=duplicates, steps=3, seed=dim)


@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("rule", RULES, ids=RULE_IDS)
def test_sparse_threaded_like_reference(rule: Rule, dtype: type, duplicates: str, isa: str, threads: int) -> None:
    """k * dim beyond the inline limit: the rows are dealt to one part per thread."""
    run_sparse(rule, dtype, {"lr": 0.3, "l1": 0.01, "l2": 0.2}, 64, k=600, duplicates=duplicates, steps=2, seed=5)
