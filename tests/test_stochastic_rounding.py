"""Stochastic rounding of float16 / bfloat16 param writes: the rounding alone against the plain-NumPy
contract (adagrad.stochastic_rounding) and against NumPy's own round to nearest (the two neighbours);
unbiasedness, statistically; dense and sparse updates and the optimizer bit for bit the reference on
every ISA and thread count; reruns identical, seeds and streams independent; checkpoints keep the
seed; a run that stalls when rounded to nearest and learns when rounded stochastically."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import adagrad
from adagrad import _core
from adagrad import reference as ref
from adagrad.stochastic_rounding import random_bits, stochastic_round
from conftest import BF16, F16, F32, HALF_PAIRS, NEEDS_ML_DTYPES, assert_same_bits

DTYPES = [pytest.param(F16, id="f16"), pytest.param(BF16, id="bf16", marks=NEEDS_ML_DTYPES)]
# Where element 0's index lies: 0, just below 2**32 (a vector of lanes crosses it), beyond it.
INDEX0 = [0, 2**32 - 5, 3 * 2**32 + 17]


def sample_values(seed: int) -> np.ndarray:
    """float32 values over every range the roundings treat apart, and the special ones."""
    rng = np.random.default_rng(seed)
    random_bits_ = rng.integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    magnitudes = np.exp2(rng.uniform(-60, 17, 6000)) * rng.choice([-1, 1], 6000)  # float16's subnormals to past its max
    special = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, 65504, 65519, 65520, 65535, 65536, 1e30, 2.0**-14, 2.0**-24,
         2.0**-25, 3 * 2.0**-26, 2.0**-32, 2.0**-40, 1e-45, 3.4028235e38, 1.0, 1 + 2.0**-12, -(1 + 2.0**-9)],
        np.float64,
    )  # fmt: skip
    with np.errstate(over="ignore"):
        return np.concatenate([random_bits_, magnitudes.astype(np.float32), special.astype(np.float32)])


def typical_values(seed: int) -> np.ndarray:
    """Weights as training has them (the vector paths' common case), with signed zeros among them, and
    whole vectors of float16's normal range's ends and of values just outside it."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(4096) * np.exp2(rng.integers(-12, 14, 4096))).astype(np.float32)
    x[::7] = 0.0
    x[3::11] = -0.0
    below = np.nextafter(np.float32(65504), np.float32(0))
    ends = np.array([2.0**-14, -(2.0**-14), below, 65504, 65520, -70000, 3 * 2.0**-16], np.float32)
    return np.concatenate([x, np.repeat(ends, 32)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index0", INDEX0)
@pytest.mark.parametrize("values", [sample_values, typical_values])
def test_rounding_is_the_contract_on_every_isa(dtype: Any, index0: int, values: Any, isa: str) -> None:
    x = values(1)
    expected = stochastic_round(x, dtype, np.arange(x.size, dtype=np.uint64) + np.uint64(index0),
                                seed=7, stream=3, step=11)  # fmt: skip
    for start in (0, 3):  # vector groups at other offsets
        out = np.zeros(x.size - start, dtype)
        _core._stochastic_round(x[start:], out, index0 + start, 7, 3, 11)
        assert_same_bits(out, expected[start:])


def neighbours(x: np.ndarray, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """The 16-bit values nearest x below and above in magnitude, from NumPy's round to nearest."""
    nearest = x.astype(dtype)
    bits = nearest.view(np.uint16).astype(np.int32)
    magnitude_up = np.abs(nearest.astype(np.float64)) > np.abs(x.astype(np.float64))
    lower = np.where(magnitude_up, bits - 1, bits).astype(np.uint16).view(dtype)
    upper = np.where(magnitude_up, bits, bits + 1).astype(np.uint16).view(dtype)
    return lower, upper


@pytest.mark.parametrize("dtype", DTYPES)
def test_rounds_to_one_of_the_two_neighbours_and_keeps_exact_values(dtype: Any) -> None:
    patterns = np.random.default_rng(3).integers(0, 2**16, 2000).astype(np.uint16).view(dtype)
    patterns = patterns[np.isfinite(patterns)]  # (widening a signaling NaN raises "invalid" on aarch64)
    x = np.concatenate([sample_values(2), patterns.astype(np.float32)])  # and values the 16-bit type holds
    with np.errstate(over="ignore", invalid="ignore"):
        finite = np.isfinite(x) & np.isfinite(x.astype(dtype)) & (np.abs(x) < float(np.finfo(dtype).max))
    x = x[finite & (x != 0)]
    rounded = np.zeros(x.size, dtype)
    _core._stochastic_round(x, rounded, 0, 1, 0, 1)
    lower, upper = neighbours(x, dtype)
    bits = rounded.view(np.uint16)
    assert np.all((bits == lower.view(np.uint16)) | (bits == upper.view(np.uint16)))
    exact = x.astype(dtype).astype(np.float32) == x
    assert_same_bits(rounded[exact], x[exact].astype(dtype))
    assert exact.sum() > 1000 and (~exact).sum() > 5000  # both kinds were seen


# (value, dtype): where in its step the value lies, from tiny probabilities to large ones.
UNBIASED_CASES = [
    pytest.param(1 + 2.0**-12, F16, id="f16-quarter"),
    pytest.param(-(1 + 3 * 2.0**-13), F16, id="f16-neg-three-eighths"),
    pytest.param(1000.3, F16, id="f16-1000.3"),
    pytest.param(3 * 2.0**-27, F16, id="f16-subnormal-three-eighths"),
    pytest.param(2.0**-30, F16, id="f16-subnormal-1/64"),
    pytest.param(0.1, BF16, id="bf16-0.1", marks=NEEDS_ML_DTYPES),
    pytest.param(-(1 + 2.0**-9 + 2.0**-15), BF16, id="bf16-neg", marks=NEEDS_ML_DTYPES),
    pytest.param(1e-40, BF16, id="bf16-float32-subnormal", marks=NEEDS_ML_DTYPES),
]


@pytest.mark.parametrize(("value", "dtype"), UNBIASED_CASES)
def test_unbiased(value: float, dtype: Any) -> None:
    """Over N elements the count rounded up is Binomial(N, p), p = the fraction of the step past
    the lower neighbour: within 5 standard deviations, and the mean within as many of x."""
    n = 1 << 18
    x = np.full(n, value, np.float32)
    lower, upper = (v[0].astype(np.float64) for v in neighbours(x[:1], dtype))
    p = (float(x[0]) - lower) / (upper - lower)
    assert 0 < p < 1
    rounded = np.zeros(n, dtype)
    _core._stochastic_round(x, rounded, 12345, 99, 0, 1)
    up = int((rounded.astype(np.float64) == upper).sum())
    assert int((rounded.astype(np.float64) == lower).sum()) + up == n
    sd = (n * p * (1 - p)) ** 0.5
    assert abs(up - n * p) <= 5 * sd + 1, (up, n * p, sd)
    mean = float(rounded.astype(np.float64).mean())
    assert abs(mean - float(x[0])) <= 5 * sd / n * abs(upper - lower) + 1e-300


def test_random_bits_are_uniform_in_every_bit() -> None:
    r = random_bits(np.arange(1 << 16, dtype=np.uint64), seed=3, stream=0, step=1)
    ones = np.array([int(((r >> np.uint32(b)) & np.uint32(1)).sum()) for b in range(32)])
    assert np.all(np.abs(ones - 2**15) < 5 * 128)  # sd of Binomial(2**16, 1/2) is 128
    assert np.unique(r).size == r.size  # a bijection of the low 32 bits: no repeats


# Options the 16-bit kernels take, and sizes that leave tails; 2**16 + 3 runs on several threads.
OPTIONS = [
    pytest.param({"lr": 0.01}, id="plain"),
    pytest.param({"lr": 0.01, "weight_decay": 0.1, "maximize": True, "lr_decay": 0.05}, id="wd-max-decay"),
    pytest.param(
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "eps_inside_sqrt": True},
        id="decoupled-inside",
    ),
    pytest.param({"lr": 0.01, "grad_scale": 3.0}, id="scale"),
]


def dense_arrays(
    n: int, dtype: Any, state_dtype: Any, seed: int = 0
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(n).astype(dtype)
    grads = [(rng.standard_normal(n) * 0.1).astype(dtype) for _ in range(3)]
    return p, grads, (rng.random(n) + 0.5).astype(state_dtype)


@pytest.mark.parametrize(("dtype", "state_dtype"), HALF_PAIRS)
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("n", [1, 17, 1000])
def test_dense_update_is_reference(dtype: Any, state_dtype: Any, options: dict[str, Any], n: int, isa: str) -> None:
    p, grads, s = dense_arrays(n, dtype, state_dtype)
    p_ref, s_ref = p.copy(), s.copy()
    for t, g in enumerate(grads, start=1):
        assert adagrad.update(p, g, s, step=t, stochastic_rounding=True, seed=2**64 - 1, **options)
        ref.update(p_ref, g, s_ref, step=t, stochastic_rounding=True, seed=2**64 - 1, **options)
        assert_same_bits(p, p_ref)
        assert_same_bits(s, s_ref)


@pytest.mark.parametrize(("dtype", "state_dtype"), HALF_PAIRS)
def test_threaded_chunks_are_reference(dtype: Any, state_dtype: Any, isa: str, threads: int) -> None:
    """2**16 + 3 elements: chunks on the thread pool, each numbering its elements from its offset."""
    p, grads, s = dense_arrays(2**16 + 3, dtype, state_dtype, seed=1)
    p_ref, s_ref = p.copy(), s.copy()
    adagrad.update(p, grads[0], s, step=4, lr=0.01, stochastic_rounding=True, seed=5)
    ref.update(p_ref, grads[0], s_ref, step=4, lr=0.01, stochastic_rounding=True, seed=5)
    assert_same_bits(p, p_ref)
    assert_same_bits(s, s_ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reruns_repeat_and_seeds_steps_differ(dtype: Any) -> None:
    p0, grads, s0 = dense_arrays(4096, dtype, F32)
    g = grads[0]  # updates of about a 16-bit step: the rounding decides many of them

    def run(seed: int, step: int) -> np.ndarray:
        p, s = p0.copy(), s0.copy()
        adagrad.update(p, g, s, step=step, lr=1e-2, stochastic_rounding=True, seed=seed)
        return p

    first = run(1, 1)
    assert_same_bits(run(1, 1), first)
    for other in (run(2, 1), run(1, 2)):
        differ = (other.view(np.uint16) != first.view(np.uint16)).mean()
        assert 0.05 < differ < 0.95, differ
    nearest = p0.copy()
    adagrad.update(nearest, g, s0.copy(), step=1, lr=1e-2)
    assert (first.view(np.uint16) != nearest.view(np.uint16)).any()


SPARSE_DIMS = [5, 16, 64]  # 16 and 64: the fixed-length kernels


@pytest.mark.parametrize(("dtype", "state_dtype"), HALF_PAIRS)
@pytest.mark.parametrize("rowwise", [False, True], ids=["elementwise", "rowwise"])
@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("dim", SPARSE_DIMS)
def test_sparse_update_is_reference(
    dtype: Any, state_dtype: Any, rowwise: bool, duplicates: str, dim: int, isa: str
) -> None:
    rng = np.random.default_rng(dim)
    rows, k = 40, 60  # repeated rows
    table = rng.standard_normal((rows, dim)).astype(dtype)
    state = (rng.random(rows if rowwise else (rows, dim)) + 0.5).astype(state_dtype)
    table_ref, state_ref = table.copy(), state.copy()
    for step in (1, 2):
        ids = rng.integers(0, rows, k)
        values = (rng.standard_normal((k, dim)) * 0.1).astype(dtype)
        options = {"step": step, "lr": 0.01, "duplicates": duplicates, "stochastic_rounding": True, "seed": 9}
        adagrad.sparse_update(table, ids, values, state, **options)
        ref.sparse_update(table_ref, ids, values, state_ref, **options)
        assert_same_bits(table, table_ref)
        assert_same_bits(state, state_ref)


@pytest.mark.parametrize(("dtype", "state_dtype"), HALF_PAIRS)
@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
def test_sparse_threads_give_the_same_bits(dtype: Any, state_dtype: Any, duplicates: str, isa: str) -> None:
    """k * dim above the threaded threshold: rows dealt to parts; the same bits on 1 and 2 threads."""
    rng = np.random.default_rng(3)
    table0 = rng.standard_normal((3000, 64)).astype(dtype)
    ids = rng.integers(0, 3000, 2000)
    values = (rng.standard_normal((2000, 64)) * 0.1).astype(dtype)
    results = []
    before = adagrad.get_num_threads()
    try:
        for threads in (1, 2):
            adagrad.set_num_threads(threads)
            table, state = table0.copy(), np.ones((3000, 64), state_dtype)
            adagrad.sparse_update(table, ids, values, state, step=1, lr=0.01, duplicates=duplicates,
                                  stochastic_rounding=True, seed=4)  # fmt: skip
            results.append(table)
    finally:
        adagrad.set_num_threads(before)
    assert_same_bits(results[1], results[0])
    assert (results[0].view(np.uint16) != table0.view(np.uint16)).any()


def test_repeated_rows_in_sequential_mode_draw_fresh_bits() -> None:
    """The same row twice in one call: its two writes use different bits (index i * dim + j)."""
    dim = 256
    table = np.ones((1, dim), F16)
    values = np.full((2, dim), 1e-3, F16)
    state = np.full((1, dim), 1e6, F32)  # a tiny step: far below a float16 step at 1.0
    first = random_bits(np.arange(dim, dtype=np.uint64), seed=0, stream=0, step=1)
    second = random_bits(np.arange(dim, 2 * dim, dtype=np.uint64), seed=0, stream=0, step=1)
    assert (first != second).all()
    expected = table.copy()
    ref.sparse_update(expected, np.array([0, 0]), values, state.copy(), step=1, lr=1.0, duplicates="sequential",
                      stochastic_rounding=True, seed=0)  # fmt: skip
    adagrad.sparse_update(table, np.array([0, 0]), values, state, step=1, lr=1.0, duplicates="sequential",
                          stochastic_rounding=True, seed=0)  # fmt: skip
    assert_same_bits(table, expected)


def test_float32_and_float64_params_are_unaffected() -> None:
    for dtype in (np.float32, np.float64):
        p, g, s = np.linspace(-1, 1, 33, dtype=dtype), np.full(33, 0.3, dtype), np.ones(33, dtype)
        p_nearest, s_nearest = p.copy(), s.copy()
        adagrad.update(p, g, s, step=1, stochastic_rounding=True, seed=3)
        adagrad.update(p_nearest, g, s_nearest, step=1)
        assert_same_bits(p, p_nearest)


@pytest.mark.parametrize(("dtype", "state_dtype"), HALF_PAIRS)
def test_optimizer_is_reference_with_a_stream_per_param_and_resumes(
    dtype: Any, state_dtype: Any, tmp_path: Any
) -> None:
    """Two groups, dense and sparse grads; param i of the optimizer draws stream i. A checkpoint
    taken midway and loaded into an optimizer built with another seed continues bit for bit."""
    rng = np.random.default_rng(5)

    def params() -> dict[str, np.ndarray]:
        r = np.random.default_rng(6)
        return {"a": r.standard_normal(300).astype(dtype), "b": r.standard_normal(300).astype(dtype),
                "emb": r.standard_normal((50, 16)).astype(dtype)}  # fmt: skip

    def build(cls: Any, ps: dict[str, np.ndarray], seed: int) -> Any:
        groups = [{"params": {"a": ps["a"], "b": ps["b"]}}, {"params": {"emb": ps["emb"]}, "duplicates": "sequential"}]
        return cls(groups, lr=0.01, state_dtype=None if state_dtype == dtype else "float32",
                   stochastic_rounding=True, seed=seed)  # fmt: skip

    grads = []
    for _ in range(4):
        ids = rng.integers(0, 50, 30)
        grads.append([
            {"a": (rng.standard_normal(300) * 0.1).astype(dtype), "b": (rng.standard_normal(300) * 0.1).astype(dtype)},
            {"emb": adagrad.SparseGrad(ids, (rng.standard_normal((30, 16)) * 0.1).astype(dtype))},
        ])  # fmt: skip
    native, expected = params(), params()
    opt, opt_ref = build(adagrad.Adagrad, native, 11), build(ref.Adagrad, expected, 11)
    for step, g in enumerate(grads):
        opt.step(g)
        opt_ref.step(g)
        if step == 1:
            opt.save(tmp_path / "ckpt.npz", params=True)
        for name in native:
            assert_same_bits(native[name], expected[name])
    # a and b, equal and given equal grads, draw different streams: their roundings differ
    same = params()
    same["b"][...] = same["a"]
    build(adagrad.Adagrad, same, 11).step([{"a": grads[0][0]["a"], "b": grads[0][0]["a"]}, {"emb": None}])
    assert (same["a"].view(np.uint16) != same["b"].view(np.uint16)).any()

    resumed = params()
    opt2 = build(adagrad.Adagrad, resumed, 12345)
    opt2.load(tmp_path / "ckpt.npz")
    assert opt2.param_groups[0]["seed"] == 11
    for g in grads[2:]:
        opt2.step(g)
    for name in native:
        assert_same_bits(resumed[name], native[name])
    assert opt.state_dict()["param_groups"][1]["seed"] == 11


def test_seed_is_a_group_option_default_zero() -> None:
    p, q = np.zeros(4, F16), np.zeros(4, F16)
    opt = adagrad.Adagrad([{"params": [p]}, {"params": [q], "seed": 2**64 - 1}], stochastic_rounding=True)
    assert [g["seed"] for g in opt.state_dict()["param_groups"]] == [0, 2**64 - 1]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"stochastic_rounding": 1}, TypeError, "stochastic_rounding must be a bool"),
        ({"stochastic_rounding": True, "seed": -1}, ValueError, "seed must be an int from 0 to 2\\*\\*64 - 1"),
        ({"stochastic_rounding": True, "seed": 2**64}, ValueError, "seed must be an int from 0"),
        ({"stochastic_rounding": True, "seed": 1.0}, TypeError, "seed must be an int"),
        ({"stochastic_rounding": True, "seed": True}, TypeError, "seed must be an int"),
    ],
)
def test_bad_options_are_refused_before_anything_changes(kwargs: dict[str, Any], error: type, message: str) -> None:
    p, g, s = np.ones(8, F16), np.ones(8, F16), np.ones(8, F16)
    for update in (adagrad.update, ref.update):
        with pytest.raises(error, match=message):
            update(p, g, s, step=1, **kwargs)
        assert_same_bits(p, np.ones(8, F16))
    with pytest.raises(error, match=message):
        adagrad.sparse_update(np.ones((2, 4), F16), np.array([0]), np.ones((1, 4), F16), np.ones((2, 4), F16),
                              step=1, **kwargs)  # fmt: skip
    with pytest.raises(error, match=message):
        adagrad.Adagrad([p], **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
def test_stochastic_rounding_learns_where_round_to_nearest_stalls(dtype: Any) -> None:
    """Every param at 1.0 with a constant grad of 1: each Adagrad step, lr / sqrt(t), is below half
    a 16-bit step at 1.0 (float32 sums: they do not stall). Rounded to nearest the params never move;
    rounded stochastically they follow the float32 run, on average to 3% of the distance moved."""
    n, steps = 4096, 1000
    lr = 0.2 * float(np.finfo(dtype).eps)  # a fifth of a step at 1.0: below half a step either side
    grad = np.ones(n, dtype)
    exact = np.ones(n, np.float32)
    exact_sum = np.zeros(n, np.float32)
    nearest, nearest_sum = np.ones(n, dtype), np.zeros(n, np.float32)
    stochastic, stochastic_sum = np.ones(n, dtype), np.zeros(n, np.float32)
    for t in range(1, steps + 1):
        adagrad.update(exact, np.ones(n, np.float32), exact_sum, step=t, lr=lr)
        adagrad.update(nearest, grad, nearest_sum, step=t, lr=lr)
        adagrad.update(stochastic, grad, stochastic_sum, step=t, lr=lr, stochastic_rounding=True, seed=0)
    assert np.all(nearest == 1.0)  # stalled: every update rounded away
    moved = 1.0 - float(exact.mean())
    assert moved > 10 * float(np.finfo(dtype).eps)  # the float32 run moved many 16-bit steps
    assert abs((1.0 - float(stochastic.astype(np.float64).mean())) - moved) < 0.03 * moved
