"""Native kernels against the pure-NumPy reference, bit for bit.

Every option combination, float32 and float64, awkward sizes (vector tails, empty, large),
unaligned views, many steps; for every instruction set available here and 1 and 2 threads.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import adagrad
from conftest import assert_same_bits, at_line_offset

DTYPES = [np.float32, np.float64]
SMALL_SIZES = [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 1000]
LARGE_SIZE = 2**20 + 3

WEIGHT_DECAY_MODES = {
    "no_wd": {},
    "coupled_wd": {"weight_decay": 0.1},
    "decoupled_wd": {"weight_decay": 0.1, "decoupled_weight_decay": True},
}


def option_table() -> list[Any]:
    """Every combination of the switches, with lr_decay and the initial accumulator."""
    cases = []
    for (wd_name, wd), maximize, inside, lr_decay, initial in itertools.product(
        WEIGHT_DECAY_MODES.items(), [False, True], [False, True], [0.0, 0.05], [0.0, 0.1]
    ):
        options = {"lr": 0.05, "lr_decay": lr_decay, "maximize": maximize, "eps_inside_sqrt": inside, **wd}
        case_id = f"{wd_name}-max{int(maximize)}-inside{int(inside)}-decay{lr_decay}-init{initial}"
        cases.append(pytest.param(options, initial, id=case_id))
    return cases


def random_grad(rng: np.random.Generator, shape: Any, dtype: type) -> np.ndarray:
    """Normal values spread over many binades, with some exact zeros."""
    g = rng.standard_normal(shape) * np.exp2(rng.integers(-12, 6, size=shape))
    g[rng.random(shape) < 0.05] = 0.0
    return g.astype(dtype)


def unaligned(values: np.ndarray) -> np.ndarray:
    """The same values in a buffer that starts one element past an aligned address."""
    buffer = np.empty(values.size + 1, values.dtype)
    view = buffer[1:]
    view[...] = values
    return view


def run_both(
    sizes: list[int], dtype: type, options: dict[str, Any], initial: float, steps: int, seed: int, *, shift: bool
) -> None:
    rng = np.random.default_rng(seed)
    params = [(rng.standard_normal(n) * 3).astype(dtype) for n in sizes]
    if shift:
        params = [unaligned(p) for p in params]
    expected = [p.copy() for p in params]
    expected_sums = [np.full_like(p, initial) for p in params]
    opt = adagrad.Adagrad(params, initial_accumulator_value=initial, **options)
    for t in range(1, steps + 1):
        grads = [random_grad(rng, p.shape, dtype) for p in params]
        opt.step([unaligned(g) if shift else g for g in grads])
        for p, g, s in zip(expected, grads, expected_sums):
            adagrad.reference.update(p, g, s, step=t, **options)
    for i, (p, e, s) in enumerate(zip(params, expected, expected_sums)):
        assert_same_bits(opt.state[i]["sum"], s)
        assert_same_bits(p, e)
        assert int(opt.state[i]["step"]) == steps


@pytest.mark.parametrize("shift", [False, True], ids=["aligned", "unaligned"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("options, initial", option_table())
def test_small_sizes_every_option(
    options: dict[str, Any], initial: float, dtype: type, shift: bool, isa: str, threads: int
) -> None:
    run_both(SMALL_SIZES, dtype, options, initial, steps=12, seed=1, shift=shift)


LARGE_CASES = [
    pytest.param({"lr": 0.05}, 0.0, id="default"),
    pytest.param({"lr": 0.05, "weight_decay": 0.1, "maximize": True, "lr_decay": 0.05}, 0.1, id="coupled-max-decay"),
    pytest.param(
        {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True, "eps_inside_sqrt": True},
        0.1,
        id="decoupled-inside",
    ),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("options, initial", LARGE_CASES)
def test_large_tensor(options: dict[str, Any], initial: float, dtype: type, isa: str, threads: int) -> None:
    run_both([LARGE_SIZE, 5], dtype, options, initial, steps=3, seed=2, shift=True)


# Long calls start with scalar elements up to the param's next cache line (the vector loop then
# runs on whole lines): every offset, around the length where that starts, grads and sums at other
# offsets than the param.
@pytest.mark.parametrize("n", [4095, 4096, 4111])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_every_offset_from_a_cache_line(dtype: type, n: int, isa: str) -> None:
    rng = np.random.default_rng(n)
    itemsize = np.dtype(dtype).itemsize
    options = {"lr": 0.05, "weight_decay": 0.1, "lr_decay": 0.01}
    for offset in range(0, 64, itemsize):
        param = at_line_offset((rng.standard_normal(n) * 3).astype(dtype), offset)
        state = at_line_offset(np.full(n, 0.1, dtype), (offset + 3 * itemsize) % 64)
        expected, expected_state = param.copy(), state.copy()
        for t in range(1, 4):
            grad = at_line_offset(random_grad(rng, n, dtype), (offset + 5 * itemsize) % 64)
            adagrad.update(param, grad, state, step=t, **options)
            adagrad.reference.update(expected, grad, expected_state, step=t, **options)
        assert_same_bits(state, expected_state)
        assert_same_bits(param, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_many_steps(dtype: type, isa: str) -> None:
    run_both([257, 64], dtype, {"lr": 0.3, "lr_decay": 0.01, "weight_decay": 0.01}, 0.0, steps=300, seed=3, shift=False)


SPECIAL_GRADS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 5e-324, 1e-30, 1e30, 3e38, 1e300, -1e-300]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize(
    "options",
    [{}, {"weight_decay": 0.5}, {"eps": 0.0}, {"eps_inside_sqrt": True, "eps": 0.0}],
    ids=["default", "wd", "eps0", "inside-eps0"],
)
def test_special_values_propagate_like_reference(dtype: type, options: dict[str, Any], isa: str) -> None:
    with np.errstate(all="ignore"):
        grads = np.array(SPECIAL_GRADS * 3, dtype=dtype)
        params = np.array([1.0, -2.0, 0.0] * len(SPECIAL_GRADS), dtype=dtype)
    sums = np.zeros_like(params)
    p_ref, s_ref = params.copy(), sums.copy()
    for t in (1, 2):
        adagrad.update(params, grads, sums, step=t, **options)
        adagrad.reference.update(p_ref, grads, s_ref, step=t, **options)
    assert_same_bits(sums, s_ref)
    assert_same_bits(params, p_ref)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_functional_matches_optimizer(dtype: type) -> None:
    rng = np.random.default_rng(4)
    p1 = rng.standard_normal(100).astype(dtype)
    p2, s2 = p1.copy(), np.zeros_like(p1)
    opt = adagrad.Adagrad([p1], lr=0.2, lr_decay=0.1)
    for t in range(1, 6):
        g = random_grad(rng, p1.shape, dtype)
        opt.step([g])
        adagrad.update(p2, g, s2, step=t, lr=0.2, lr_decay=0.1)
    assert_same_bits(p1, p2)
    assert_same_bits(opt.state[0]["sum"], s2)
