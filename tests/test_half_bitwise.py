"""float16 and bfloat16 params, grads and state (and float32 master state) through the native
kernels, held to the reference bit for bit: every Adagrad option, sizes that leave vector tails,
special values, every bit pattern through the conversions; every ISA, 1 and 2 threads."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import adagrad
from adagrad import _core
from adagrad import reference as ref
from conftest import BF16, F16, HALF_PAIRS, NEEDS_ML_DTYPES, assert_same_bits, ml_dtypes

PAIRS = HALF_PAIRS
DTYPES = [pytest.param(F16, id="f16"), pytest.param(BF16, id="bf16", marks=NEEDS_ML_DTYPES)]
SIZES = [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 1000]


def option_table() -> list[Any]:
    cases = []
    wd_modes = {
        "no_wd": {},
        "wd": {"weight_decay": 0.1},
        "decoupled": {"weight_decay": 0.1, "decoupled_weight_decay": True},
    }
    for (wd_name, wd), maximize, inside, lr_decay in itertools.product(
        wd_modes.items(), [False, True], [False, True], [0.0, 0.05]
    ):
        options = {"lr": 0.05, "lr_decay": lr_decay, "maximize": maximize, "eps_inside_sqrt": inside, **wd}
        cases.append(pytest.param(options, id=f"{wd_name}-max{int(maximize)}-inside{int(inside)}-decay{lr_decay}"))
    cases += [
        pytest.param({"grad_scale": 1024.0}, id="scale-pow2"),
        pytest.param({"grad_scale": 3.0}, id="scale-divide"),
        pytest.param({"eps": 1e-3, "lr": 1.0}, id="big-eps-lr"),
    ]
    return cases


def arrays(n: int, dtype: np.dtype, state_dtype: np.dtype, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    p = (rng.standard_normal(n) * 3).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    s = (rng.random(n) * 2).astype(state_dtype)
    return p, g, s


def run_both(p: np.ndarray, grads: list[np.ndarray], s: np.ndarray, options: dict[str, Any]) -> None:
    """Native on (p, s), the reference on copies; the same bits after every step."""
    p_ref, s_ref = p.copy(), s.copy()
    for t, g in enumerate(grads, start=1):
        adagrad.update(p, g, s, step=t, **options)
        ref.update(p_ref, g, s_ref, step=t, **options)
        assert_same_bits(p, p_ref)
        assert_same_bits(s, s_ref)


@pytest.mark.parametrize(("dtype", "state_dtype"), PAIRS)
@pytest.mark.parametrize("options", option_table())
@pytest.mark.parametrize("n", SIZES)
def test_native_is_reference(dtype: Any, state_dtype: Any, options: dict[str, Any], n: int, isa: str) -> None:
    p, _g, s = arrays(n, dtype, state_dtype, n)
    grads = [arrays(n, dtype, state_dtype, 100 * n + k)[1] for k in range(3)]
    run_both(p, grads, s, options)


@pytest.mark.parametrize(("dtype", "state_dtype"), PAIRS)
def test_threaded_large_array_is_reference(dtype: Any, state_dtype: Any, isa: str, threads: int) -> None:
    n = 2**16 + 3  # split over the threads, with a tail
    p, _g, s = arrays(n, dtype, state_dtype, 7)
    grads = [arrays(n, dtype, state_dtype, 8 + k)[1] for k in range(2)]
    run_both(p, grads, s, {"lr": 0.1, "weight_decay": 0.01})


def special_values(dtype: np.dtype) -> np.ndarray:
    info = np.finfo(dtype) if dtype == F16 else ml_dtypes.finfo(dtype)
    tiny, smallest, big = float(info.smallest_normal), float(info.smallest_subnormal), float(info.max)
    values = [0.0, -0.0, np.inf, -np.inf, np.nan, tiny, -tiny, smallest, -smallest, 3 * smallest, big, -big,
              big / 2, 1.0, -1.0, 1e-3, 65504.0 if dtype == F16 else 1e30]  # fmt: skip
    return np.array(values, np.float32).astype(dtype)


@pytest.mark.parametrize(("dtype", "state_dtype"), PAIRS)
@pytest.mark.parametrize("options", [{"lr": 0.5}, {"lr": 1e4, "eps": 0.0}, {"lr": 0.5, "weight_decay": 2.0}])
def test_special_values_are_reference(dtype: Any, state_dtype: Any, options: dict[str, Any], isa: str) -> None:
    """Every pair of special values as (param, grad) and as (state, grad): overflow to inf,
    underflow to subnormals and zero, nan and inf in and out, signed zeros."""
    v = special_values(dtype)
    p0, g = (x.ravel() for x in np.meshgrid(v, v))
    for s0 in (np.zeros(p0.size, state_dtype), np.abs(np.roll(p0, 3)).astype(state_dtype)):
        run_both(p0.copy(), [g, g[::-1].copy()], s0, options)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("grad", [0.0, 1.0, -1.0, 2.0**-9, 2.0**-8, 2.0**-12, 2.0**-24, 3.0 * 2.0**-25, 1e-20])
def test_every_bit_pattern_converts_exactly(dtype: Any, grad: float, isa: str) -> None:
    """The benchmark's stream pass (param += grad, sum += grad, in float32 between the 16-bit
    loads and stores) over all 65,536 bit patterns: widening exact, narrowing to nearest even
    (grads of half an ulp make ties; subnormal, overflowing and nan results included)."""
    p = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(dtype).copy()
    s = p.copy()
    g = np.full(p.size, grad, np.float32).astype(dtype)
    with np.errstate(all="ignore"):  # inf + -inf, and sums beyond the 16-bit range
        expected = (p.astype(np.float32) + g.astype(np.float32)).astype(dtype)
    _core.stream_ceiling([p], [g], [s])
    assert_same_bits(p, expected)
    assert_same_bits(s, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_float32_state_keeps_learning_where_16bit_state_stalls(dtype: Any) -> None:
    """g = 1 every step: a 16-bit sum stops growing once s + 1 rounds back to s (256 in
    bfloat16, 2048 in float16), so the step size stops shrinking; a float32 sum counts on."""
    stall = 2048.0 if dtype == F16 else 256.0
    steps = int(stall) + 500
    low = adagrad.Adagrad([np.zeros(4, dtype)], lr=0.01)
    master = adagrad.Adagrad([np.zeros(4, dtype)], lr=0.01, state_dtype="float32")
    g = np.ones(4, dtype)
    for _ in range(steps):
        low.step([g])
        master.step([g])
    assert np.all(low.state[0]["sum"].astype(np.float32) == stall)  # s + g*g == s: stalled
    assert np.all(master.state[0]["sum"] == steps)  # exact in float32
    assert master.state[0]["sum"].dtype == np.float32


@pytest.mark.parametrize(("dtype", "state_dtype"), PAIRS)
def test_optimizer_is_reference_and_resumes_bitwise(dtype: Any, state_dtype: Any, tmp_path: Any) -> None:
    state_option = None if state_dtype == dtype else "float32"
    rng = np.random.default_rng(3)
    shapes = [(3, 5), (1000,), ()]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    twins = [p.copy() for p in params]
    options = {"lr": 0.05, "weight_decay": 0.01, "state_dtype": state_option}
    ours = adagrad.Adagrad(params, **options)
    theirs = ref.Adagrad(twins, **options)
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(6)]
    for gs in grads[:3]:
        ours.step(gs)
        theirs.step(gs)
    assert ours.state[0]["sum"].dtype == state_dtype
    path = tmp_path / "half.npz"
    ours.save(path, params=True)
    resumed_params = [np.zeros_like(p) for p in params]
    resumed = adagrad.Adagrad(resumed_params, **options)
    resumed.load(path)
    for gs in grads[3:]:
        for opt in (ours, theirs, resumed):
            opt.step(gs)
    for a, b, c in zip(params, twins, resumed_params):
        assert_same_bits(a, b)
        assert_same_bits(c, a)


@pytest.mark.parametrize(("dtype", "state_dtype"), PAIRS)
@pytest.mark.parametrize("nonfinite", ["skip", "raise"])
def test_nonfinite_16bit_grads_change_nothing(dtype: Any, state_dtype: Any, nonfinite: str) -> None:
    for bad in (np.inf, -np.inf, np.nan):
        p, g, s = arrays(100, dtype, state_dtype, 5)
        g[57] = bad
        before = (p.copy(), s.copy())
        if nonfinite == "skip":
            assert adagrad.update(p, g, s, step=1, nonfinite="skip") is False
        else:
            with pytest.raises(adagrad.NonFiniteGradError, match=r"at index \(57,\)"):
                adagrad.update(p, g, s, step=1, nonfinite="raise")
        assert_same_bits(p, before[0])
        assert_same_bits(s, before[1])


def _refusals() -> list[Any]:
    f16 = lambda n=4: np.zeros(n, np.float16)  # noqa: E731
    return [
        pytest.param(lambda: adagrad.update(f16(), f16(), np.zeros(4), step=1), TypeError,
                     "state_sum has dtype float64 but param has float16; it must be the param's or float32",
                     id="float64-state"),
        pytest.param(lambda: adagrad.update(f16(), np.zeros(4, np.float32), f16(), step=1), TypeError,
                     "grad has dtype float32 but param has float16", id="float32-grad"),
        pytest.param(lambda: adagrad.Adagrad([np.zeros(3)], state_dtype="float32"), ValueError,
                     "state_dtype='float32' is for float16 and bfloat16 params", id="float64-master"),
        pytest.param(lambda: adagrad.Adagrad([f16()], state_dtype="float16"), ValueError,
                     "state_dtype must be None", id="bad-state-dtype"),
    ]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "message"), _refusals())
def test_refused_with_a_clear_error(call: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_reference_refuses_what_the_kernel_refuses() -> None:
    z = np.zeros(4, np.float16)
    with pytest.raises(TypeError, match="share one dtype"):
        ref.update(z, z.copy(), np.zeros(4), step=1)
