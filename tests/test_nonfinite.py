"""Non-finite gradients (nonfinite = propagate / skip / raise) and loss scaling (grad_scale).

- skip: a step whose grads (dense arrays, sparse values) hold a NaN or an infinity changes
  nothing, step counts included, and returns False; training then goes on exactly as if that
  step had never been given (compared bitwise with an optimizer that never saw it).
- raise: NonFiniteGradError (a ValueError) naming the first such grad in step order and the
  element, nothing changed; the same answer at every thread count and instruction set.
- propagate: today's behaviour, bitwise equal to the reference, NaN and inf included.
- grad_scale: bitwise equal to the reference and to torch.optim.Adagrad(fused=True) given the
  same loss scale (a float32 tensor there), including torch's found_inf skip.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import adagrad
from conftest import assert_same_bits

NAN, INF = float("nan"), float("inf")
BIG = adagrad.cpu_info()["parallel_threshold"] + 5  # the check and the update run on the thread pool
ROWS, DIM = 300, 12


def model(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "big": rng.standard_normal(BIG).astype(np.float32),
        "w": np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32)),
        "emb": rng.standard_normal((ROWS, DIM)).astype(np.float32),
        "rw": rng.standard_normal((ROWS, DIM)).astype(np.float64),
        "d": rng.standard_normal(37),
    }


def groups(params: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    return [
        {"params": {"big": params["big"], "w": params["w"]}, "lr_decay": 0.1},
        {"params": {"emb": params["emb"]}, "weight_decay": 0.01},
        {"params": {"rw": params["rw"]}, "rowwise": True, "duplicates": "sequential"},
        {"params": {"d": params["d"]}, "maximize": True, "lr": 0.05},
    ]


def grads_for(rng: np.random.Generator, params: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    ids = rng.integers(0, ROWS, size=40)
    return [
        {
            "big": rng.standard_normal(BIG).astype(np.float32),
            "w": np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32)),
        },
        {"emb": adagrad.SparseGrad(ids, rng.standard_normal((40, DIM)).astype(np.float32))},
        {"rw": adagrad.SparseGrad(ids[::-1].copy(), rng.standard_normal((40, DIM)))},
        {"d": rng.standard_normal(37)},
    ]


def grad_array(grads: list[dict[str, Any]], name: str) -> np.ndarray:
    for group in grads:
        if name in group:
            grad = group[name]
            return grad.values if isinstance(grad, adagrad.SparseGrad) else grad
    raise KeyError(name)


def spoil(grads: list[dict[str, Any]], name: str, index: tuple[int, ...], value: float) -> None:
    grad_array(grads, name)[index] = value


def snapshot(opt: adagrad.Adagrad, params: dict[str, np.ndarray]) -> list[tuple[str, bytes]]:
    out = [(f"param {k}", v.tobytes(order="A")) for k, v in params.items()]
    out += [(f"sum {k}", s["sum"].tobytes()) for k, s in opt.state.items()]
    out += [(f"step {k}", s["step"].tobytes()) for k, s in opt.state.items()]
    return out


def assert_same_optimizers(a: adagrad.Adagrad, pa: dict[str, np.ndarray], b: Any, pb: dict[str, np.ndarray]) -> None:
    for key in pa:
        assert_same_bits(pa[key], pb[key])
        assert_same_bits(a.state[key]["sum"], b.state[key]["sum"])
        assert int(a.state[key]["step"]) == int(b.state[key]["step"]), key


# Where a bad value goes: (param whose grad is spoilt, index in that grad (values for sparse), the
# message's grad name and index).
BAD_PLACES = [
    pytest.param("big", (0,), "grad of 'big'", "(0,)", id="big-first"),
    pytest.param("big", (BIG - 1,), "grad of 'big'", f"({BIG - 1},)", id="big-last"),
    pytest.param("big", (BIG // 2 + 3,), "grad of 'big'", f"({BIG // 2 + 3},)", id="big-middle-other-chunk"),
    pytest.param("w", (2, 1), "grad of 'w'", "(2, 1)", id="fortran-2d"),
    pytest.param("emb", (39, 11), "grad of 'emb'", "(39, 11)", id="sparse-values-last"),
    pytest.param("rw", (0, 5), "grad of 'rw'", "(0, 5)", id="rowwise-sparse-values"),
    pytest.param("d", (36,), "grad of 'd'", "(36,)", id="float64-last-group"),
]
BAD_VALUES = [
    pytest.param(NAN, "nan", id="nan"),
    pytest.param(INF, "inf", id="inf"),
    pytest.param(-INF, "-inf", id="-inf"),
]


@pytest.mark.parametrize("value, shown", BAD_VALUES)
@pytest.mark.parametrize("name, index, grad_name, position", BAD_PLACES)
def test_skip_changes_nothing_and_training_goes_on_as_without_that_step(
    name: str, index: tuple[int, ...], grad_name: str, position: str, value: float, shown: str, threads: int
) -> None:
    params, expected_params = model(), model()
    opt = adagrad.Adagrad(groups(params), lr=0.1, nonfinite="skip")
    expected = adagrad.Adagrad(groups(expected_params), lr=0.1)  # never sees the bad step
    rng = np.random.default_rng(1)
    for t in range(4):
        grads = grads_for(rng, params)
        if t == 2:
            spoil(grads, name, index, value)
            before = snapshot(opt, params)
            assert opt.step(grads) is False
            assert snapshot(opt, params) == before
        else:
            assert opt.step(grads) is True
            assert expected.step(grads) is True
    assert_same_optimizers(opt, params, expected, expected_params)
    assert int(opt.state["big"]["step"]) == 3


@pytest.mark.parametrize("value, shown", BAD_VALUES)
@pytest.mark.parametrize("name, index, grad_name, position", BAD_PLACES)
def test_raise_names_the_grad_and_the_element_and_changes_nothing(
    name: str, index: tuple[int, ...], grad_name: str, position: str, value: float, shown: str, threads: int
) -> None:
    params = model()
    opt = adagrad.Adagrad(groups(params), lr=0.1, nonfinite="raise")
    rng = np.random.default_rng(1)
    opt.step(grads_for(rng, params))
    grads = grads_for(rng, params)
    spoil(grads, name, index, value)
    before = snapshot(opt, params)
    message = f"{grad_name} holds a non-finite value ({shown} at index {position}); nonfinite='raise'"
    with pytest.raises(adagrad.NonFiniteGradError, match="^" + re.escape(message)):
        opt.step(grads)
    assert snapshot(opt, params) == before
    assert issubclass(adagrad.NonFiniteGradError, ValueError)


# Several bad grads: the first in step order is named, however the threads split the check.
FIRST_BAD = [
    pytest.param([("d", (0,)), ("big", (BIG - 1,))], "grad of 'big'", id="later-chunk-of-an-earlier-tensor"),
    pytest.param([("emb", (3, 3)), ("rw", (1, 1)), ("d", (5,))], "grad of 'emb'", id="sparse-then-others"),
    pytest.param([("w", (0, 0)), ("big", (BIG // 2,))], "grad of 'big'", id="same-group"),
]


@pytest.mark.parametrize("places, grad_name", FIRST_BAD)
def test_raise_names_the_first_bad_grad_in_step_order(
    places: list[tuple[str, tuple[int, ...]]], grad_name: str, isa: str, threads: int
) -> None:
    params = model()
    opt = adagrad.Adagrad(groups(params), nonfinite="raise")
    grads = grads_for(np.random.default_rng(2), params)
    for name, index in places:
        spoil(grads, name, index, NAN)
    with pytest.raises(adagrad.NonFiniteGradError, match="^" + re.escape(grad_name + " holds")):
        opt.step(grads)


@pytest.mark.parametrize("nonfinite", ["propagate", "skip", "raise"])
def test_finite_grads_give_the_same_bits_in_every_mode(nonfinite: str, isa: str, threads: int) -> None:
    params, expected_params = model(), model()
    opt = adagrad.Adagrad(groups(params), lr=0.1, nonfinite=nonfinite)
    expected = adagrad.reference.Adagrad(groups(expected_params), lr=0.1)
    rng = np.random.default_rng(3)
    for _ in range(2):
        grads = grads_for(rng, params)
        assert opt.step(grads) is True
        expected.step(grads)
    assert_same_optimizers(opt, params, expected, expected_params)


def test_propagate_computes_with_nan_and_inf_like_the_reference(isa: str, threads: int) -> None:
    params, expected_params = model(), model()
    opt = adagrad.Adagrad(groups(params), lr=0.1)
    expected = adagrad.reference.Adagrad(groups(expected_params), lr=0.1)
    grads = grads_for(np.random.default_rng(4), params)
    for name, index, value in (("big", (7,), NAN), ("w", (1, 1), INF), ("emb", (2, 2), -INF), ("d", (0,), NAN)):
        spoil(grads, name, index, value)
    assert opt.step(grads) is True
    expected.step(grads)
    assert_same_optimizers(opt, params, expected, expected_params)
    assert np.isnan(params["big"][7]) and np.isnan(params["w"][1, 1])


@pytest.mark.parametrize("nonfinite", ["skip", "raise"])
def test_the_reference_optimizer_skips_and_raises_alike(nonfinite: str) -> None:
    params = model()
    opt = adagrad.reference.Adagrad(groups(params), nonfinite=nonfinite)
    grads = grads_for(np.random.default_rng(5), params)
    spoil(grads, "rw", (4, 4), INF)
    before = snapshot(opt, params)
    if nonfinite == "skip":
        assert opt.step(grads) is False
    else:
        # The standalone reference raises its own NonFiniteGradError (a ValueError, as the native one).
        with pytest.raises(adagrad.reference.NonFiniteGradError, match=r"^grad of 'rw' holds a non-finite value"):
            opt.step(grads)
    assert snapshot(opt, params) == before


# The functional forms: (call, arrays it may write).
def dense_call(bad: bool, **kwargs: Any) -> tuple[bool, list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(6)
    p, g, s = (rng.standard_normal(BIG).astype(np.float32) for _ in range(3))
    s = np.abs(s)
    if bad:
        g[BIG - 3] = NAN
    p2, s2 = p.copy(), s.copy()
    got = adagrad.update(p, g, s, step=3, lr=0.1, **kwargs)
    want = adagrad.reference.update(p2, g, s2, step=3, lr=0.1, **kwargs)
    assert got is want
    return got, [p, s], [p2, s2]


def sparse_call(bad: bool, **kwargs: Any) -> tuple[bool, list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(7)
    table, state = rng.standard_normal((ROWS, DIM)), np.abs(rng.standard_normal((ROWS, DIM)))
    ids, values = rng.integers(0, ROWS, size=50), rng.standard_normal((50, DIM))
    if bad:
        values[49, 0] = -INF
    t2, s2 = table.copy(), state.copy()
    got = adagrad.sparse_update(table, ids, values, state, step=2, **kwargs)
    want = adagrad.reference.sparse_update(t2, ids, values, s2, step=2, **kwargs)
    assert got is want
    return got, [table, state], [t2, s2]


@pytest.mark.parametrize("call", [dense_call, sparse_call], ids=["update", "sparse_update"])
@pytest.mark.parametrize("bad", [False, True], ids=["finite", "nonfinite"])
def test_functional_skip_returns_false_and_writes_nothing(call: Any, bad: bool, threads: int) -> None:
    applied, got, want = call(bad, nonfinite="skip", grad_scale=4.0)
    assert applied is (not bad)
    for a, b in zip(got, want):
        assert_same_bits(a, b)


@pytest.mark.parametrize("call, message", [(dense_call, "grad holds"), (sparse_call, "values holds")])
def test_functional_raise_names_the_argument(call: Any, message: str) -> None:
    with pytest.raises(adagrad.NonFiniteGradError, match="^" + message):
        call(True, nonfinite="raise")


# --------------------------------------------------------------------------------------------
# grad_scale


SCALES = [
    pytest.param(65536.0, id="2^16"),  # GradScaler's initial scale
    pytest.param(3.0, id="3"),
    pytest.param(0.1, id="0.1-not-a-float32"),  # the divisor is float32(0.1) on both dtypes
    pytest.param(1e-30, id="tiny"),
    pytest.param(1e30, id="huge"),
    pytest.param(1, id="int-1"),
]
OPTIONS = [
    pytest.param({}, id="default"),
    pytest.param({"maximize": True, "weight_decay": 0.1}, id="maximize-wd"),
    pytest.param({"weight_decay": 0.1, "decoupled_weight_decay": True, "lr_decay": 0.2}, id="decoupled-decay"),
    pytest.param({"eps_inside_sqrt": True, "eps": 1e-3}, id="eps-inside"),
]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
def test_grad_scale_matches_the_reference(dtype: type, scale: float, options: dict[str, Any], isa: str) -> None:
    rng = np.random.default_rng(8)
    sizes = [1, 7, 9, 33, 1000]
    params = [rng.standard_normal(n).astype(dtype) for n in sizes]
    expected = [p.copy() for p in params]
    opt = adagrad.Adagrad(params, lr=0.1, grad_scale=scale, **options)
    ref = adagrad.reference.Adagrad(expected, lr=0.1, grad_scale=scale, **options)
    for _ in range(3):
        grads = [(rng.standard_normal(n) * scale).astype(dtype) for n in sizes]
        opt.step(grads)
        ref.step(grads)
    for i in range(len(sizes)):
        assert_same_bits(params[i], expected[i])
        assert_same_bits(opt.state[i]["sum"], ref.state[i]["sum"])


@pytest.mark.parametrize("scale", [65536.0, 0.1])
@pytest.mark.parametrize("rowwise", [False, True], ids=["elementwise", "rowwise"])
@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
def test_sparse_grad_scale_matches_the_reference(scale: float, rowwise: bool, duplicates: str, threads: int) -> None:
    rng = np.random.default_rng(9)
    rows, dim = 300, 256  # ~200 unique rows of 256: enough to split the rows over the threads
    table = rng.standard_normal((rows, dim)).astype(np.float32)
    state = np.zeros(rows if rowwise else (rows, dim), np.float32)
    table2, state2 = table.copy(), state.copy()
    for t in range(1, 3):
        ids = rng.integers(0, rows, size=350)  # many repeats
        values = (rng.standard_normal((350, dim)) * scale).astype(np.float32)
        kwargs = {"step": t, "lr": 0.1, "duplicates": duplicates, "grad_scale": scale}
        adagrad.sparse_update(table, ids, values, state, **kwargs)
        adagrad.reference.sparse_update(table2, ids, values, state2, **kwargs)
    assert_same_bits(table, table2)
    assert_same_bits(state, state2)


# A power-of-two scale (GradScaler's) is applied as a multiplication by its exact reciprocal: the
# same exact value rounded once, so the same bits as the division, for every grad. Checked at the
# edges: subnormal results, overflow to inf, huge and special values; and scales just outside the
# range where the reciprocal is exact (those divide).
EDGE_SCALES = [2.0**-126, 2.0**-127, 2.0**-149, 2.0**-20, 0.5, 2.0, 65536.0, 2.0**127, 3.0, 1.5 * 2.0**-126]


def edge_grads(dtype: type) -> np.ndarray:
    info = np.finfo(dtype)
    rng = np.random.default_rng(13)
    specials = [0.0, -0.0, NAN, INF, -INF, info.max, -info.max, info.tiny, info.smallest_subnormal, 1.0, -3.0]
    g = np.concatenate([specials, rng.standard_normal(200) * np.exp2(rng.integers(-160, 130, 200))])
    with np.errstate(all="ignore"):
        return g.astype(dtype)


@pytest.mark.parametrize("scale", EDGE_SCALES, ids=lambda s: f"{s:.3g}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
def test_grad_scale_bits_at_the_edges_equal_a_division(dtype: type, scale: float, isa: str) -> None:
    g = edge_grads(dtype)
    p, s = np.zeros_like(g), np.zeros_like(g)
    p2, s2 = p.copy(), s.copy()
    adagrad.update(p, g, s, step=1, lr=1.0, eps=0.0, grad_scale=scale)
    adagrad.reference.update(p2, g, s2, step=1, lr=1.0, eps=0.0, grad_scale=scale)
    assert_same_bits(s, s2)  # s = (g / scale)**2: every bit of the unscaled grad's square
    assert_same_bits(p, p2)
    with np.errstate(all="ignore"):  # and independently of the reference: s = fma(g', g', 0) = g'*g'
        unscaled = g / dtype(np.float32(scale))
        assert_same_bits(s, unscaled * unscaled)


def test_sparse_grad_scale_keeps_sum_mode_equal_to_the_dense_update() -> None:
    rng = np.random.default_rng(10)
    table = rng.standard_normal((50, 8)).astype(np.float32)
    dense, state, dense_state = table.copy(), np.zeros_like(table), np.zeros_like(table)
    ids = rng.integers(0, 50, size=200)
    values = rng.standard_normal((200, 8)).astype(np.float32) * 3
    adagrad.sparse_update(table, ids, values, state, step=1, grad_scale=3.0)
    grad = np.zeros_like(table)
    np.add.at(grad, ids, values)
    touched = np.unique(ids)
    adagrad.update(dense, grad, dense_state, step=1, grad_scale=3.0)
    assert_same_bits(table[touched], dense[touched])
    assert_same_bits(state[touched], dense_state[touched])


BAD_STEP_OPTIONS = [
    pytest.param({"nonfinite": "ignore"}, ValueError, "nonfinite must be 'propagate', 'skip' or 'raise', got 'ignore'"),
    pytest.param({"nonfinite": None}, TypeError, "nonfinite must be 'propagate', 'skip' or 'raise', got NoneType"),
    pytest.param({"nonfinite": True}, TypeError, "nonfinite must be 'propagate', 'skip' or 'raise', got bool"),
    pytest.param({"grad_scale": 0.0}, ValueError, "grad_scale must be a finite number > 0"),
    pytest.param({"grad_scale": -2.0}, ValueError, "grad_scale must be a finite number > 0"),
    pytest.param({"grad_scale": NAN}, ValueError, "grad_scale must be a finite number > 0"),
    pytest.param({"grad_scale": INF}, ValueError, "grad_scale must be a finite number > 0"),
    pytest.param({"grad_scale": 1e39}, ValueError, "grad_scale must be a finite number > 0 (in float32"),
    pytest.param({"grad_scale": 1e-46}, ValueError, "grad_scale must be a finite number > 0 (in float32"),
    pytest.param({"grad_scale": 10**400}, ValueError, "grad_scale must be a finite number > 0, got an int too large"),
    pytest.param({"grad_scale": True}, TypeError, "grad_scale must be a real number, got bool"),
    pytest.param({"grad_scale": "2"}, TypeError, "grad_scale must be a real number, got str"),
    pytest.param({"grad_scale": np.array([2.0])}, TypeError, "grad_scale must be a real number, got ndarray"),
]


@pytest.mark.parametrize("options, error, message", BAD_STEP_OPTIONS)
def test_bad_nonfinite_or_grad_scale_is_refused_everywhere(options: dict[str, Any], error: type, message: str) -> None:
    w, g, s = np.ones(3), np.ones(3), np.zeros(3)
    pattern = "^" + re.escape(message)
    with pytest.raises(error, match=pattern):
        adagrad.Adagrad([w], **options)
    with pytest.raises(error, match=pattern):
        adagrad.update(w, g, s, step=1, **options)
    with pytest.raises(error, match=pattern):
        adagrad.sparse_update(w.reshape(3, 1), np.array([0]), g[:1].reshape(1, 1), s.reshape(3, 1), step=1, **options)
    with pytest.raises(error, match=pattern):
        adagrad.reference.update(w, g, s, step=1, **options)
    opt = adagrad.Adagrad([w])
    for name, value in options.items():
        setattr(opt, name, value)  # changed after construction: refused at the step
    with pytest.raises(error, match=pattern):
        opt.step([g])
    assert (w == 1).all() and (s == 0).all() and int(opt.state[0]["step"]) == 0


def test_grad_scale_can_change_between_steps() -> None:
    w, w2 = np.ones(4, np.float32), np.ones(4, np.float32)
    opt = adagrad.Adagrad([w], grad_scale=8.0)
    s2 = np.zeros_like(w2)
    g = np.array([1, 2, 3, 4], np.float32) * 8
    opt.step([g])
    opt.grad_scale = 2.0
    opt.step([g])
    opt.grad_scale = None
    opt.step([g])
    for t, scale in enumerate([8.0, 2.0, None], start=1):
        adagrad.reference.update(w2, g, s2, step=t, grad_scale=scale)
    assert_same_bits(w, w2)


# --------------------------------------------------------------------------------------------
# torch.optim.Adagrad(fused=True) with a loss scale, and its found_inf skip


TORCH_SIZES = [1, 7, 33, 1000, BIG]


@pytest.mark.parametrize(
    "config", [pytest.param({}, id="default"), pytest.param({"weight_decay": 0.1, "maximize": True}, id="wd-maximize")]
)
@pytest.mark.parametrize("scale", [65536.0, 3.0, 0.1, 1024.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: d.__name__)
def test_grad_scale_and_skip_match_torch_fused(dtype: type, scale: float, config: dict[str, Any], threads: int) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    ours = [rng.standard_normal(n).astype(dtype) for n in TORCH_SIZES]
    theirs = [torch.tensor(p.copy(), requires_grad=True) for p in ours]
    opt = adagrad.Adagrad(ours, lr=0.1, nonfinite="skip", grad_scale=scale, **config)
    torch_opt = torch.optim.Adagrad(theirs, lr=0.1, fused=True, **config)
    torch_opt.grad_scale = torch.tensor(scale)  # float32, as GradScaler keeps it
    for t in range(8):
        grads = [(rng.standard_normal(n) * scale).astype(dtype) for n in TORCH_SIZES]
        if t in (3, 4):
            grads[t % len(grads)][0] = INF if t == 3 else NAN
        found_inf = not all(np.isfinite(g).all() for g in grads)
        assert opt.step(grads) is (not found_inf)
        for p, g in zip(theirs, grads):
            p.grad = torch.from_numpy(g.copy())
        torch_opt.found_inf = torch.tensor(float(found_inf))
        torch_opt.step()
    for i, (p, t) in enumerate(zip(ours, theirs)):
        assert_same_bits(opt.state[i]["sum"], torch_opt.state[t]["sum"].numpy())
        assert_same_bits(p, t.detach().numpy())
        assert int(opt.state[i]["step"]) == int(torch_opt.state[t]["step"]) == 6
