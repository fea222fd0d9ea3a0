"""Gradient clipping fused into the step: the native norm and clip against the reference, bit for
bit (every rule, norm type, dtype, ISA and thread count, odd sizes, sparse grads, loss scaling),
the clip semantics against torch's and Keras's formulas on worked examples, non-finite norms with
each nonfinite mode, and bad options refused with nothing written."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import adagrad
import adagrad.reference as ref
from conftest import assert_same_bits

DTYPES = [np.float32, np.float64]
# Around the 16-element groups, the 1,024-element blocks and the 16,384-element thread chunks.
SIZES = [0, 1, 15, 17, 1023, 1025, 16384 + 5, 40000 + 7]
RULES = {
    "global2": {"max_grad_norm": 0.7},
    "global-inf": {"max_grad_norm": 0.02, "norm_type": math.inf},
    "global-loose": {"max_grad_norm": 1e6},  # above the norm: nothing clipped
    "tensor2": {"clip_norm_per_tensor": 0.3},
    "tensor-inf": {"clip_norm_per_tensor": 0.01, "norm_type": "inf"},
    "value": {"clip_value": 0.004},
}


def grads_for(rng: np.random.Generator, sizes: list[int], dtype: Any) -> list[np.ndarray]:
    """Values over many binades, with exact zeros."""
    out = []
    for n in sizes:
        g = rng.standard_normal(n) * np.exp2(rng.integers(-10, 4, size=n))
        g[rng.random(n) < 0.05] = 0.0
        out.append(g.astype(dtype))
    return out


def pair(params: list[np.ndarray], **options: Any) -> tuple[adagrad.Adagrad, ref.Adagrad]:
    return (
        adagrad.Adagrad([p.copy() for p in params], lr=0.05, **options),
        ref.Adagrad([p.copy() for p in params], lr=0.05, **options),
    )


def assert_same_state(native: adagrad.Adagrad, reference: ref.Adagrad) -> None:
    for a, b in zip(native.param_groups[0]["params"], reference.param_groups[0]["params"]):
        assert_same_bits(a, b)
    for key in native.state:
        assert_same_bits(native.state[key]["sum"], reference.state[key]["sum"])


def same_float(a: float | None, b: float | None) -> bool:
    return a is b or (a is not None and b is not None and (a == b or (math.isnan(a) and math.isnan(b))))


def every_isa_and_thread_count() -> Iterator[tuple[str, int]]:
    """Each ISA available here with 1 and 2 threads in turn (the reference is computed once)."""
    default_isa, default_threads = adagrad.cpu_info()["isa"], adagrad.get_num_threads()
    try:
        for isa in adagrad.cpu_info()["available"]:
            for threads in (1, 2):
                adagrad.set_isa(isa)
                adagrad.set_num_threads(threads)
                yield isa, threads
    finally:
        adagrad.set_isa(default_isa)
        adagrad.set_num_threads(default_threads)


def run_steps(opt: adagrad.Adagrad, steps: list[Any]) -> list[float | None]:
    norms = []
    for grads in steps:
        assert opt.step(grads)
        norms.append(opt.last_grad_norm)
    return norms


def same_params(a: adagrad.Adagrad, b: adagrad.Adagrad) -> None:
    for group_a, group_b in zip(a.param_groups, b.param_groups):
        for x, y in zip(group_a["params"], group_b["params"]):
            assert_same_bits(x, y)
    for key in a.state:
        assert_same_bits(a.state[key]["sum"], b.state[key]["sum"])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
@pytest.mark.parametrize("grad_scale", [None, 3.0, 1024.0], ids=["unscaled", "divide", "power-of-two"])
def test_dense_clip_matches_reference(rule: dict[str, Any], dtype: Any, grad_scale: float | None) -> None:
    rng = np.random.default_rng(len(str(rule)))
    params = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    steps = [grads_for(rng, SIZES, dtype) for _ in range(3)]
    before = [[g.copy() for g in grads] for grads in steps]
    options = {"lr": 0.05, "grad_scale": grad_scale, "weight_decay": 0.01, **rule}
    reference = ref.Adagrad([p.copy() for p in params], **options)
    expected = run_steps(reference, steps)
    if "clip_value" not in rule:
        assert all(n is not None and n > 0 for n in expected)
    for _ in every_isa_and_thread_count():
        native = adagrad.Adagrad([p.copy() for p in params], **options)
        assert run_steps(native, steps) == expected
        same_params(native, reference)
    for grads, copies in zip(steps, before):
        for g, b in zip(grads, copies):
            assert_same_bits(g, b)  # grads are never modified


# The clip switch with every other switch of the kernel's variants.
VARIANTS = [
    pytest.param(
        {"maximize": maximize, "eps_inside_sqrt": inside, **wd}, id=f"max{int(maximize)}-in{int(inside)}-{name}"
    )
    for maximize in (False, True)
    for inside in (False, True)
    for name, wd in (
        ("nowd", {}),
        ("wd", {"weight_decay": 0.1}),
        ("dwd", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    )
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("variant", VARIANTS)
def test_clip_with_every_variant_matches_reference(variant: dict[str, Any], dtype: Any) -> None:
    rng = np.random.default_rng(5)
    sizes = [33, 1025]
    params = [rng.standard_normal(n).astype(dtype) for n in sizes]
    steps = [grads_for(rng, sizes, dtype) for _ in range(2)]
    for rule in (RULES["global2"], RULES["value"]):
        options = {"lr": 0.05, "lr_decay": 0.01, **variant, **rule}
        reference = ref.Adagrad([p.copy() for p in params], **options)
        expected = run_steps(reference, steps)
        for _ in every_isa_and_thread_count():
            native = adagrad.Adagrad([p.copy() for p in params], **options)
            assert run_steps(native, steps) == expected
            same_params(native, reference)


SPARSE_LAYOUTS = [("sum", False), ("sequential", False), ("sum", True), ("sequential", True)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
@pytest.mark.parametrize(
    ("duplicates", "rowwise"), SPARSE_LAYOUTS, ids=["sum", "sequential", "rowwise-sum", "rowwise-sequential"]
)
def test_sparse_clip_matches_reference(rule: dict[str, Any], dtype: Any, duplicates: str, rowwise: bool) -> None:
    rng = np.random.default_rng(7)
    table = rng.standard_normal((300, 33)).astype(dtype)
    dense = rng.standard_normal(1025).astype(dtype)
    steps = []
    for _ in range(3):
        ids = rng.integers(0, 300, 200)  # repeated rows
        values = grads_for(rng, [200 * 33], dtype)[0].reshape(200, 33)
        steps.append([[adagrad.SparseGrad(ids, values)], [grads_for(rng, [1025], dtype)[0]]])

    def build(kind: type[adagrad.Adagrad]) -> adagrad.Adagrad:
        groups = [
            {"params": [table.copy()], "rowwise": rowwise, "duplicates": duplicates},
            {"params": [dense.copy()]},
        ]
        return kind(groups, lr=0.05, grad_scale=2.0, **rule)

    reference = build(ref.Adagrad)
    expected = run_steps(reference, steps)
    for _ in every_isa_and_thread_count():
        native = build(adagrad.Adagrad)
        assert run_steps(native, steps) == expected
        same_params(native, reference)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("norm_type", [2.0, math.inf], ids=["2", "inf"])
def test_norm_has_one_value_for_every_isa_and_thread_count(dtype: Any, norm_type: float) -> None:
    rng = np.random.default_rng(3)
    grads = grads_for(rng, [5, 70000, 1 << 18, 333], dtype)
    expected = ref.grad_norms(grads, norm_type)[1]
    seen = set()
    for _ in every_isa_and_thread_count():
        opt = adagrad.Adagrad([np.zeros_like(g) for g in grads], max_grad_norm=1.0, norm_type=norm_type)
        opt.step(grads)
        seen.add(opt.last_grad_norm)
    assert seen == {expected}
    # And it is the norm, to float64 precision.
    exact = (
        max(float(np.abs(g).max()) for g in grads)
        if norm_type == math.inf
        else math.sqrt(math.fsum(float(x) ** 2 for g in grads for x in g.astype(np.float64)))
    )
    assert expected == pytest.approx(exact, rel=1e-13)


def test_sparse_norm_is_of_the_values_as_given() -> None:
    """Unique indices: the dense gradient's norm; repeated ones: the occurrences', not the sums'."""
    values = np.array([[3.0, 0.0], [0.0, 4.0], [1.0, 1.0]])
    for ids, expected in ((np.array([0, 1, 2]), math.sqrt(27.0)), (np.array([0, 0, 2]), math.sqrt(27.0))):
        opt = adagrad.Adagrad([np.zeros((3, 2))], max_grad_norm=100.0)
        opt.step([adagrad.SparseGrad(ids, values)])
        assert opt.last_grad_norm == pytest.approx(expected, rel=1e-15)


# Worked examples: one step from s = 0 leaves s = g_clipped ** 2, the gradient the update saw.
# Expected values from torch's and Keras's formulas, in float64.
WORKED = [
    # torch clip_grad_norm_(max_norm=1): g * min(1, 1 / (||g|| + 1e-6)); ||[3, 4], [12]|| = 13
    ({"max_grad_norm": 1.0}, [[3.0, 4.0], [12.0]], [[3 / (13 + 1e-6), 4 / (13 + 1e-6)], [12 / (13 + 1e-6)]]),
    # below the bound: unchanged
    ({"max_grad_norm": 20.0}, [[3.0, 4.0], [12.0]], [[3.0, 4.0], [12.0]]),
    # inf norm 12: g * 6 / (12 + 1e-6)
    (
        {"max_grad_norm": 6.0, "norm_type": "inf"},
        [[3.0, 4.0], [12.0]],
        [[18 / (12 + 1e-6), 24 / (12 + 1e-6)], [6 * 12 / (12 + 1e-6)]],
    ),
    # Keras clipnorm=1: each g * 1 / max(||g||, 1): ||[3, 4]|| = 5, ||[0.5]|| = 0.5 (unchanged)
    ({"clip_norm_per_tensor": 1.0}, [[3.0, 4.0], [0.5]], [[0.6, 0.8], [0.5]]),
    # Keras clipvalue=2: clamp to [-2, 2]
    ({"clip_value": 2.0}, [[3.0, -4.0], [0.5]], [[2.0, -2.0], [0.5]]),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize(("options", "grads", "clipped"), WORKED)
def test_worked_examples(
    options: dict[str, Any], grads: list[list[float]], clipped: list[list[float]], dtype: Any
) -> None:
    params = [np.zeros(len(g), dtype) for g in grads]
    opt = adagrad.Adagrad(params, lr=0.1, eps=0.0, **options)
    assert opt.step([np.array(g, dtype) for g in grads])
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    for i, expected in enumerate(clipped):
        np.testing.assert_allclose(opt.state[i]["sum"], np.square(expected), rtol=rtol)
        # theta = -lr * g / |g| for a first step: the sign of what the update saw
        np.testing.assert_allclose(params[i], -0.1 * np.sign(expected), rtol=rtol)


def test_functional_forms_clip_their_one_grad() -> None:
    g = np.array([3.0, 4.0])
    for function in (adagrad.update, ref.update):
        w, s = np.zeros(2), np.zeros(2)
        assert function(w, g, s, step=1, max_grad_norm=1.0)
        np.testing.assert_allclose(s, np.square(g / (5 + 1e-6)), rtol=1e-15)
    for function in (adagrad.sparse_update, ref.sparse_update):
        table, state = np.zeros((4, 2)), np.zeros((4, 2))
        assert function(table, np.array([2]), g[None, :], state, step=1, clip_value=1.0)
        np.testing.assert_array_equal(state[2], [1.0, 1.0])


def test_clip_composes_with_grad_scale_unscale_first() -> None:
    """GradScaler's order: the norm is of the unscaled grads, and the clip applies to them."""
    g = np.array([300.0, 400.0])
    opt = adagrad.Adagrad([np.zeros(2)], max_grad_norm=1.0, grad_scale=100.0)
    opt.step([g])
    assert opt.last_grad_norm == 5.0
    np.testing.assert_allclose(opt.state[0]["sum"], np.square([3 / (5 + 1e-6), 4 / (5 + 1e-6)]), rtol=1e-15)


NONFINITE = [
    pytest.param(np.nan, "propagate", True, id="nan-propagate"),
    pytest.param(np.inf, "propagate", True, id="inf-propagate"),
    pytest.param(np.nan, "skip", False, id="nan-skip"),
    pytest.param(-np.inf, "skip", False, id="inf-skip"),
]


@pytest.mark.parametrize(
    "rule", [RULES["global2"], RULES["global-inf"], RULES["tensor2"]], ids=["global2", "global-inf", "tensor2"]
)
@pytest.mark.parametrize(("bad", "mode", "applied"), NONFINITE)
def test_nonfinite_norms(isa: str, rule: dict[str, Any], bad: float, mode: str, applied: bool) -> None:
    rng = np.random.default_rng(11)
    params = [rng.standard_normal(n).astype(np.float32) for n in (40000, 33)]
    native, reference = pair(params, nonfinite=mode, **rule)
    grads = grads_for(rng, [40000, 33], np.float32)
    grads[0][12345] = bad
    assert native.step(grads) is applied and reference.step(grads) is applied
    assert native.last_grad_norm is not None and not math.isfinite(native.last_grad_norm)
    assert same_float(native.last_grad_norm, reference.last_grad_norm)
    assert_same_state(native, reference)
    if not applied:
        for a, p in zip(native.param_groups[0]["params"], params):
            assert_same_bits(a, p)
        assert all(int(native.state[k]["step"]) == 0 for k in native.state)
    elif "max_grad_norm" in rule:
        # As torch's clip_grad_norm_: every grad multiplied by NaN (a NaN norm) or by 0 (inf), so
        # the other tensor's params become NaN, or stay where they were.
        second = native.param_groups[0]["params"][1]
        assert np.isnan(second).all() if math.isnan(bad) else np.array_equal(second, params[1])


def test_nonfinite_raise_names_the_grad_and_writes_nothing() -> None:
    params = [np.ones(5, np.float32), np.ones(3, np.float32)]
    opt = adagrad.Adagrad({"w": params[0], "b": params[1]}, max_grad_norm=1.0, nonfinite="raise")
    with pytest.raises(
        adagrad.NonFiniteGradError, match=r"grad of 'b' holds a non-finite value \(nan at index \(1,\)\)"
    ):
        opt.step({"w": np.ones(5, np.float32), "b": np.array([0, np.nan, 0], np.float32)})
    assert (params[0] == 1).all() and (params[1] == 1).all() and opt.state["w"]["sum"].max() == 0
    assert opt.last_grad_norm is None


def test_float64_norm_overflow_with_finite_grads_is_applied() -> None:
    """Squares beyond float64's range: the norm is inf, yet every grad is finite, so "skip" applies
    the step, with torch's coefficient 0 (as clip_grad_norm_ on these grads would)."""
    params = [np.ones(4)]
    native, reference = pair(params, max_grad_norm=1.0, nonfinite="skip")
    grads = [np.array([1e200, -1e200, 3.0, 0.0])]
    assert native.step(grads) and reference.step(grads)
    assert native.last_grad_norm == math.inf
    assert_same_state(native, reference)


BAD = [
    pytest.param({"max_grad_norm": -1.0}, ValueError, "max_grad_norm must be a finite number > 0", id="negative"),
    pytest.param({"max_grad_norm": 0.0}, ValueError, "max_grad_norm must be a finite number > 0, got 0", id="zero"),
    pytest.param({"max_grad_norm": math.inf}, ValueError, "max_grad_norm must be a finite number > 0", id="inf"),
    pytest.param({"clip_norm_per_tensor": math.nan}, ValueError, "clip_norm_per_tensor must be a finite", id="nan"),
    pytest.param({"clip_value": 0}, ValueError, "clip_value must be a finite number > 0", id="value-zero"),
    pytest.param({"clip_value": 10**400}, ValueError, "clip_value must be a finite number > 0", id="huge-int"),
    pytest.param({"max_grad_norm": "1"}, TypeError, "max_grad_norm must be a real number", id="str"),
    pytest.param({"max_grad_norm": True}, TypeError, "max_grad_norm must be a real number", id="bool"),
    pytest.param({"max_grad_norm": 1.0, "norm_type": 1}, ValueError, "norm_type must be 2 or inf", id="norm-1"),
    pytest.param({"max_grad_norm": 1.0, "norm_type": "fro"}, ValueError, "norm_type must be 2 or inf", id="norm-str"),
    pytest.param({"max_grad_norm": 1.0, "norm_type": -math.inf}, ValueError, "norm_type must be 2 or inf", id="-inf"),
    pytest.param(
        {"max_grad_norm": 1.0, "clip_value": 1.0},
        ValueError,
        "at most one of max_grad_norm, clip_norm_per_tensor and clip_value may be set, "
        "got max_grad_norm and clip_value",
        id="two",
    ),
]


@pytest.mark.parametrize(("options", "error", "message"), BAD)
def test_bad_options_raise_and_write_nothing(options: dict[str, Any], error: type, message: str) -> None:
    w = np.ones(3)
    with pytest.raises(error, match=message):
        adagrad.Adagrad([w], **options)
    for function in (adagrad.update, ref.update):
        s = np.zeros(3)
        with pytest.raises(error, match=message):
            function(w, np.ones(3), s, step=1, **options)
        assert (w == 1).all() and (s == 0).all()
    # Set on a live optimizer: refused at the step, before anything is written.
    opt = adagrad.Adagrad([w])
    for name, value in options.items():
        setattr(opt, name, value)
    with pytest.raises(error, match=message):
        opt.step([np.ones(3)])
    assert (w == 1).all() and int(opt.state[0]["step"]) == 0


@pytest.mark.parametrize("rule", RULES.values(), ids=RULES.keys())
def test_checkpoint_keeps_the_clip_options(tmp_path: Any, rule: dict[str, Any]) -> None:
    params = [np.ones(3)]
    opt = adagrad.Adagrad(params, **rule)
    opt.save(tmp_path / "c.npz")
    other = adagrad.Adagrad([np.ones(3)])
    other.load(tmp_path / "c.npz")
    for name in ("max_grad_norm", "clip_norm_per_tensor", "clip_value"):
        assert getattr(other, name) == rule.get(name)
    assert float(other.norm_type) == float(rule.get("norm_type", 2.0))


def test_without_clipping_nothing_is_measured() -> None:
    opt = adagrad.Adagrad([np.zeros(3)])
    opt.step([np.ones(3)])
    assert opt.last_grad_norm is None
    assert "max_grad_norm=None" in repr(opt)


def test_a_version_1_checkpoint_loads_as_no_clipping(tmp_path: Any) -> None:
    import json

    opt = adagrad.Adagrad([np.ones(3)])
    opt.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as f:
        members = {name: f[name] for name in f.files}
    meta = json.loads(str(members["meta"][()]))
    for name in ("max_grad_norm", "norm_type", "clip_norm_per_tensor", "clip_value"):
        del meta[name]
    meta["version"] = 1
    members["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **members)
    other = adagrad.Adagrad([np.ones(3)], max_grad_norm=1.0)
    other.load(tmp_path / "old.npz")
    assert (other.max_grad_norm, other.norm_type, other.clip_norm_per_tensor, other.clip_value) == (
        None,
        2.0,
        None,
        None,
    )
