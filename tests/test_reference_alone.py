"""The reference on its own: it imports nothing of the native package, `import adagrad` leaves it
unimported, and the semantics every rule shares hold in it (tables of hand-computed cases, and
identities whose two sides the reference computes along different paths)."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import adagrad
from adagrad import reference as ref
from adagrad.stochastic_rounding import stochastic_round
from conftest import BF16, F16, F32, HALF_PAIRS, NEEDS_ML_DTYPES, assert_same_bits

REFERENCE = Path(ref.__file__).parent
F64 = np.dtype(np.float64)
DTYPES = [
    pytest.param(F16, id="f16"),
    pytest.param(BF16, id="bf16", marks=NEEDS_ML_DTYPES),
    pytest.param(F32, id="f32"),
    pytest.param(F64, id="f64"),
]
HALVES = [pytest.param(F16, id="f16"), pytest.param(BF16, id="bf16", marks=NEEDS_ML_DTYPES)]

# --------------------------------------------------------------------------------------------
# Imports


def imports_in(source: str, package: str) -> list[tuple[str, bool]]:
    """(absolute module name, imported at module level) of every import in a module of `package`."""
    tree = ast.parse(source)
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            if node.module is None:  # from . import rules: the names are modules
                found += [(f"{module}.{alias.name}", id(node) in top) for alias in node.names]
            else:
                found.append((module, id(node) in top))
    return found


def allowed(module: str, at_top: bool) -> bool:
    root = module.split(".")[0]
    if root == "adagrad":
        if module == "adagrad._checkpoint":
            return not at_top  # the checkpoint reader, imported inside load only
        return module == "adagrad.stochastic_rounding" or module.startswith("adagrad.reference.")
    return root in sys.stdlib_module_names or root in ("__future__", "numpy")


MODULES = sorted(REFERENCE.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_the_reference_imports_nothing_but_numpy_the_stdlib_and_the_rounding_contract(path: Path) -> None:
    found = imports_in(path.read_text(), "adagrad.reference")
    refused = [module for module, at_top in found if not allowed(module, at_top)]
    assert refused == [], f"{path.name} imports {refused}"


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("from .. import _core", "adagrad._core"),
        ("from ..optimizer import Adagrad", "adagrad.optimizer"),
        ("import adagrad.composite", "adagrad.composite"),
        ("from .._groups import label", "adagrad._groups"),
        ("from .._checkpoint import read", "adagrad._checkpoint"),  # at module level
        ("def f():\n    from ..torch import Adagrad", "adagrad.torch"),  # not even lazily
        ("import ml_dtypes", "ml_dtypes"),
    ],
)
def test_the_import_check_refuses_the_native_package(source: str, module: str) -> None:
    ((found, at_top),) = imports_in(source, "adagrad.reference")
    assert found == module
    assert not allowed(found, at_top)


def test_the_checkpoint_reader_imports_nothing_native_at_module_level() -> None:
    found = imports_in((REFERENCE.parent / "_checkpoint.py").read_text(), "adagrad")
    assert [m for m, at_top in found if at_top and m.startswith("adagrad")] == []
    assert ("adagrad._core", False) in found  # where the version is written


def test_import_adagrad_leaves_the_reference_unimported_until_asked() -> None:
    script = (
        "import sys, adagrad\n"
        "print('adagrad.reference' in sys.modules)\n"
        "print(adagrad.reference.update.__module__, 'reference' in adagrad.__all__)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "adagrad.reference.functions", "True"]


# --------------------------------------------------------------------------------------------
# The hand-computed table: every rule, every transform, exact numbers in every dtype.
# p0 = 1, lr = 1, eps = 0 (Adagrad), l1 = l2 = 0 (Proximal, DA), step 1 (no decay due).
# Adagrad, Proximal and AdagradDecay then all give p = 1 - g' / sqrt(s0 + g'^2) for the grad g'
# the update sees; DA gives p = -g' / sqrt(s0 + g'^2) (a = g').


class Case:
    def __init__(self, grad: list[float], s0: list[float], options: dict[str, Any], seen: list[float]) -> None:
        self.grad, self.s0, self.options, self.seen = grad, s0, options, seen
        s = [a + b * b for a, b in zip(s0, seen)]
        self.sum = s
        self.descent = [1 - g / np.sqrt(v) for g, v in zip(seen, s)]  # every value is exact
        self.da = [-g / np.sqrt(v) for g, v in zip(seen, s)]


HAND = {
    "plain": Case([3, 3], [7, 7], {}, seen=[3, 3]),
    "grad_scale": Case([6, 6], [7, 7], {"grad_scale": 2.0}, seen=[3, 3]),
    "maximize": Case([3, 3], [7, 7], {"maximize": True}, seen=[-3, -3]),
    "clip_value": Case([3, -3], [12, 12], {"clip_value": 2.0}, seen=[2, -2]),
    "tensor_norm": Case([3, 4], [1.75, 0], {"clip_norm_per_tensor": 2.5}, seen=[1.5, 2]),  # norm 5: times 0.5
    "global_norm_under": Case([0.375, 0.5], [0.109375, 0], {"max_grad_norm": 1.0}, seen=[0.375, 0.5]),
    "scale_then_clip": Case([6, -8], [12, 0], {"grad_scale": 2.0, "clip_value": 2.0}, seen=[2, -2]),
}
ALL_RULES = ["adagrad", "proximal", "dual_averaging", "adagrad_decay"]
RULE_OPTIONS: dict[str, dict[str, Any]] = {
    "adagrad": {"lr": 1.0, "eps": 0.0},
    "proximal": {"lr": 1.0},
    "dual_averaging": {"lr": 1.0},
    "adagrad_decay": {"lr": 1.0},
}


def call(rule: str, sparse: bool, param: np.ndarray, grad: Any, states: list[np.ndarray], **options: Any) -> bool:
    """The rule's function on (param, grad, its states); a sparse grad is (indices, values)."""
    functions: dict[str, tuple[Callable[..., bool], Callable[..., bool]]] = {
        "adagrad": (ref.update, ref.sparse_update),
        "proximal": (ref.proximal_update, ref.sparse_proximal_update),
        "dual_averaging": (ref.da_update, ref.sparse_da_update),
        "adagrad_decay": (ref.decay_update, ref.sparse_decay_update),
    }
    dense_fn, sparse_fn = functions[rule]
    options = {"step": 1, **RULE_OPTIONS[rule], **options}
    if sparse:
        return sparse_fn(param, grad[0], grad[1], *states, **options)
    return dense_fn(param, grad, *states, **options)


def new_states(rule: str, like: np.ndarray, s0: Any, state_dtype: Any = None) -> list[np.ndarray]:
    """The rule's states in its functions' order, the sum set to s0 (DA's grad sum 0, counts 0)."""
    dtype = state_dtype or like.dtype
    s = np.full(like.shape, s0, dtype=dtype) if np.ndim(s0) == 0 else np.array(np.broadcast_to(s0, like.shape), dtype)
    if rule == "dual_averaging":
        return [np.zeros(like.shape, dtype), s]
    if rule == "adagrad_decay":
        rows = like.shape[0] if like.ndim == 2 else 1
        return [s, np.zeros(rows, np.int64)]
    return [s]


OPTIMIZERS = {
    "adagrad": ref.Adagrad,
    "proximal": ref.ProximalAdagrad,
    "dual_averaging": ref.AdagradDA,
    "adagrad_decay": ref.AdagradDecay,
}


def run_form(form: str, rule: str, case: Case, dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(param, sum, DA's grad sum or None) of the touched values after one update in `form`."""
    g = np.array(case.grad, np.float32).astype(dtype)
    s0 = np.array(case.s0, np.float32).astype(dtype)
    if form.startswith("optimizer"):
        param = np.ones((3, 2) if form == "optimizer_sparse" else 2, dtype)
        group = {"params": [param], "maximize": case.options.get("maximize", False)}
        step_options = {k: v for k, v in case.options.items() if k != "maximize"}
        opt = OPTIMIZERS[rule]([group], **RULE_OPTIONS[rule], **step_options)
        touched: Any = 1 if form == "optimizer_sparse" else slice(None)
        opt.state[0]["sum"][touched] = s0
        grad = (np.array([1]), g[None, :]) if form == "optimizer_sparse" else g
        assert opt.step([[grad]])
        grad_sum = opt.state[0]["grad_sum"][touched] if rule == "dual_averaging" else None
        return param[touched], opt.state[0]["sum"][touched], grad_sum
    if form == "dense":
        p = np.ones(2, dtype)
        states = new_states(rule, p, s0)
        assert call(rule, False, p, g, states, **case.options)
        return p, states[-1] if rule == "dual_averaging" else states[0], states[0] if rule == "dual_averaging" else None
    table = np.ones((3, 2), dtype)
    states = new_states(rule, table, s0)
    if form == "sparse_split":  # one row's grad in two halves, summed before anything else
        halves = (np.stack([g, g]).astype(np.float32) / 2).astype(dtype)
        grad, options = (np.array([1, 1]), halves), case.options
    else:
        grad, options = (np.array([1]), g[None, :]), {**case.options, "duplicates": form.split("_")[1]}
    before = [table.copy()] + [s.copy() for s in states]
    assert call(rule, True, table, grad, states, **options)
    for row in (0, 2):  # untouched rows keep every bit
        for a, b in zip([table, *states], before):
            if a.ndim == 2:
                assert_same_bits(a[row], b[row])
    if rule == "dual_averaging":
        return table[1], states[1][1], states[0][1]
    return table[1], states[0][1], None


FORMS = ["dense", "sparse_sum", "sparse_sequential", "sparse_split", "optimizer", "optimizer_sparse"]
# A norm clip measures a sparse grad's occurrences, not their sum: the split form has other norms.
CASES_AND_FORMS = [
    (name, form)
    for name, case in HAND.items()
    for form in FORMS
    if not (form == "sparse_split" and {"clip_norm_per_tensor", "max_grad_norm"} & set(case.options))
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", ALL_RULES)
@pytest.mark.parametrize(("name", "form"), CASES_AND_FORMS)
def test_hand_computed_transforms_of_every_rule(name: str, form: str, rule: str, dtype: Any) -> None:
    case = HAND[name]
    param, s, grad_sum = run_form(form, rule, case, dtype)
    expected = case.da if rule == "dual_averaging" else case.descent
    assert_same_bits(param, np.array(expected, np.float32).astype(dtype))
    assert_same_bits(s, np.array(case.sum, np.float32).astype(dtype))
    if grad_sum is not None:
        assert_same_bits(grad_sum, np.array(case.seen, np.float32).astype(dtype))


# --------------------------------------------------------------------------------------------
# Identities: each side computed by the reference along a different path.

COMPOSITES = ["proximal", "dual_averaging", "adagrad_decay"]
COMPOSITE_OPTIONS: dict[str, dict[str, Any]] = {
    "proximal": {"lr": 0.3, "l1": 0.01, "l2": 0.1},
    "dual_averaging": {"lr": 0.3, "l1": 0.01, "l2": 0.1, "step": 3},
    "adagrad_decay": {"lr": 0.3, "step": 7, "accumulator_decay_step": 3},
}


def problem(rule: str, dtype: Any, state_dtype: Any = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.5, 2.0, (6, 5)).astype(np.float32).astype(dtype)
    g = rng.standard_normal((6, 5)).astype(np.float32).astype(dtype)
    states = new_states(rule, p, rng.uniform(0.1, 1.0, p.shape).astype(np.float32), state_dtype)
    return p, g, states


def sparse_grad(dtype: Any, ids: tuple[int, ...] = (4, 1, 4, 0, 4)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return np.array(ids), rng.standard_normal((len(ids), 5)).astype(np.float32).astype(dtype)


def apply(rule: str, sparse: bool, dtype: Any, *, negate: bool = False, **options: Any) -> list[np.ndarray]:
    p, g, states = problem(rule, dtype)
    grad: Any = sparse_grad(dtype) if sparse else g
    if negate:
        grad = (grad[0], -grad[1]) if sparse else -grad
    assert call(rule, sparse, p, grad, states, **{**COMPOSITE_OPTIONS.get(rule, {}), **options})
    return [p, *states]


@pytest.mark.parametrize("duplicates", [None, "sum", "sequential"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rule", ALL_RULES)
def test_maximize_is_the_negated_grad(rule: str, dtype: Any, duplicates: str | None) -> None:
    sparse = {} if duplicates is None else {"duplicates": duplicates}
    ascended = apply(rule, duplicates is not None, dtype, maximize=True, **sparse)
    negated = apply(rule, duplicates is not None, dtype, negate=True, **sparse)
    for a, b in zip(ascended, negated):
        assert_same_bits(a, b)
    descended = apply(rule, duplicates is not None, dtype, **sparse)
    assert not np.array_equal(ascended[0], descended[0])


@pytest.mark.parametrize("scale", [3.0, 1024.0, 0.1])
@pytest.mark.parametrize("dtype", [pytest.param(F32, id="f32"), pytest.param(F64, id="f64")])
@pytest.mark.parametrize("rule", COMPOSITES)
def test_grad_scale_is_the_division_in_the_dtype(rule: str, dtype: Any, scale: float) -> None:
    p, g, states = problem(rule, dtype)
    unscaled = [p.copy(), g / dtype.type(np.float32(scale)), [s.copy() for s in states]]
    assert call(rule, False, p, g, states, grad_scale=scale, **COMPOSITE_OPTIONS[rule])
    assert call(rule, False, unscaled[0], unscaled[1], unscaled[2], **COMPOSITE_OPTIONS[rule])
    for a, b in zip([p, *states], [unscaled[0], *unscaled[2]]):
        assert_same_bits(a, b)


@pytest.mark.parametrize("dtype", [pytest.param(F32, id="f32"), pytest.param(F64, id="f64")])
@pytest.mark.parametrize("rule", COMPOSITES)
def test_a_composite_norm_clip_multiplies_by_torchs_coefficient(rule: str, dtype: Any) -> None:
    p, g, states = problem(rule, dtype)
    t = dtype.type
    norm = float(np.sqrt(np.sum(g.astype(np.float64) ** 2)))
    assert norm > 1.0  # so the clip applies
    coefficient = (t(1) / (t(norm) + t(1e-6))) * t(1.0)
    twin = [p.copy(), g * coefficient, [s.copy() for s in states]]
    assert call(rule, False, p, g, states, max_grad_norm=1.0, **COMPOSITE_OPTIONS[rule])
    assert call(rule, False, twin[0], twin[1], twin[2], **COMPOSITE_OPTIONS[rule])
    # The norm's float64 sum runs in a fixed order, not NumPy's: equal here to the last bit or so.
    np.testing.assert_allclose(p, twin[0], rtol=1e-5 if dtype == F32 else 1e-13)


@pytest.mark.parametrize("duplicates", [None, "sum", "sequential"])
@pytest.mark.parametrize(("dtype", "state_dtype"), HALF_PAIRS)
@pytest.mark.parametrize("rule", COMPOSITES)
def test_a_16bit_composite_update_is_the_float32_one_narrowed_once(
    rule: str, dtype: Any, state_dtype: Any, duplicates: str | None
) -> None:
    p, g, states = problem(rule, dtype, state_dtype)
    wide = [
        p.astype(np.float32),
        g.astype(np.float32),
        [s.copy() if s.dtype == np.int64 else s.astype(np.float32) for s in states],
    ]
    options = dict(COMPOSITE_OPTIONS[rule])
    if rule == "adagrad_decay":  # no decay due: a 16-bit state would round each decay (the next test)
        options["accumulator_decay_step"] = 100000
    sparse = duplicates is not None
    # Each occurrence of a repeated row is its own update, narrowed: sequential rows are distinct here.
    grad: Any = sparse_grad(dtype, (4, 1, 0) if duplicates == "sequential" else (4, 1, 4, 0, 4)) if sparse else g
    wide_grad: Any = (grad[0], grad[1].astype(np.float32)) if sparse else wide[1]
    extra = {"duplicates": duplicates} if sparse else {}
    assert call(rule, sparse, p, grad, states, **options, **extra)
    assert call(rule, sparse, wide[0], wide_grad, wide[2], **options, **extra)
    assert_same_bits(p, wide[0].astype(dtype))
    for s, w in zip(states, wide[2]):
        assert_same_bits(s, w.astype(s.dtype))


def test_a_16bit_decay_is_rounded_to_the_state_dtype_at_each_decay() -> None:
    """float16 state 1.013671875 (1038/1024), two decays of 0.9 due (decay step 1, step 2):
    1038/1024 * 0.9 = 0.91230... -> 1868/2048 = 0.912109375 (float16's spacing below 1 is 2**-11);
    * 0.9 = 0.82089... -> 1681/2048 = 0.82080078125. Rounded once at the end instead, 1038/1024 *
    0.81 = 0.82107... would give 1682/2048. A zero grad leaves the decayed sum and the param."""
    options = {"lr": 1.0, "accumulator_decay_step": 1, "accumulator_decay_rate": 0.9, "step": 2}
    for sparse in (False, True):
        p = np.zeros((2, 1), F16)
        s = np.full((2, 1), 1.013671875, F16)
        counts = np.zeros(2, np.int64)
        if sparse:
            assert ref.sparse_decay_update(p, np.array([1]), np.zeros((1, 1), F16), s, counts, **options)
            assert s[0, 0] == 1.013671875 and counts[0] == 0  # untouched rows wait
            s, counts = s[1:], counts[1:]
        else:
            assert ref.decay_update(p, np.zeros_like(p), s, counts, **options)
        assert s[0, 0] == 1681 / 2048 and counts[0] == 2
        assert np.all(p == 0)
    s32 = np.full((1, 1), 1.013671875, F32)  # a float32 state rounds each decay to float32 instead
    assert ref.decay_update(np.zeros((1, 1), F16), np.zeros((1, 1), F16), s32, np.zeros(1, np.int64), **options)
    assert s32[0, 0] == np.float32(np.float32(np.float32(1.013671875) * np.float32(0.9)) * np.float32(0.9))


# --------------------------------------------------------------------------------------------
# Stochastic rounding of every rule's 16-bit param


def neighbours(x: np.ndarray, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """The two values of `dtype` around each float32 x (equal where x is one): by bit patterns
    ordered as integers (x > 0 here)."""
    assert np.all(x > 0)
    nearest = x.astype(dtype)
    bits = nearest.view(np.uint16).astype(np.int32)
    above = nearest.astype(np.float32) < x
    below = nearest.astype(np.float32) > x
    other = (bits + above - below).astype(np.uint16).view(dtype)
    return np.minimum(nearest, other), np.maximum(nearest, other)


SR_RULES = ["adagrad", "proximal", "adagrad_decay"]  # DA's new param ignores the old: signs vary


@pytest.mark.parametrize("dtype", HALVES)
@pytest.mark.parametrize("rule", SR_RULES)
def test_a_stochastically_rounded_param_is_one_of_the_float32_results_neighbours(rule: str, dtype: Any) -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(1.0, 2.0, 4096).astype(dtype)
    g = rng.standard_normal(4096).astype(dtype)
    options = {"lr": 1e-3, "step": 5}
    states, wide_states = new_states(rule, p, 1.0), new_states(rule, p, 1.0, np.float32)
    wide = p.astype(np.float32)
    assert call(rule, False, p, g, states, stochastic_rounding=True, seed=7, **options)
    assert call(rule, False, wide, g.astype(np.float32), wide_states, **options)
    low, high = neighbours(wide, dtype)
    assert np.all((p == low) | (p == high))
    assert np.any(p != wide.astype(dtype))  # not round to nearest everywhere
    expected = stochastic_round(wide, dtype, np.arange(4096, dtype=np.uint64), seed=7, stream=0, step=5)
    assert_same_bits(p, expected)


@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("rule", ALL_RULES)
def test_sparse_stochastic_rounding_draws_the_contracts_indices(rule: str, duplicates: str) -> None:
    """Row r's element j draws index r * dim + j ("sum") or occurrence i's i * dim + j ("sequential")."""
    dim, ids = 5, np.array([3, 0])
    table = np.random.default_rng(2).uniform(1.0, 2.0, (4, dim)).astype(F16)
    values = np.random.default_rng(3).standard_normal((2, dim)).astype(F16)
    wide = table.astype(np.float32)
    states, wide_states = new_states(rule, table, 1.0), new_states(rule, table, 1.0, np.float32)
    options = {"lr": 0.01, "step": 2, "duplicates": duplicates}
    assert call(rule, True, table, (ids, values), states, stochastic_rounding=True, seed=11, **options)
    assert call(rule, True, wide, (ids, values.astype(np.float32)), wide_states, **options)
    for i, row in enumerate(ids):
        first = row * dim if duplicates == "sum" else i * dim
        index = np.arange(first, first + dim, dtype=np.uint64)
        expected = stochastic_round(wide[row], F16, index, seed=11, stream=0, step=2)
        assert_same_bits(table[row], expected)


@pytest.mark.parametrize("rule", ALL_RULES)
def test_the_optimizers_param_i_draws_stream_i(rule: str) -> None:
    """Three equal params with equal grads in two groups: param i rounds with stream i."""
    params = [np.full(64, 1.5, F16) for _ in range(3)]
    groups = [{"params": params[:1]}, {"params": params[1:]}]
    opt = OPTIMIZERS[rule](groups, stochastic_rounding=True, seed=5, state_dtype="float32")
    g = np.full(64, 0.25, F16)
    assert opt.step([[g], [g, g]])
    wide = np.full(64, 1.5, F32)
    twin = OPTIMIZERS[rule]([wide])
    assert twin.step([g.astype(np.float32)])
    for i, p in enumerate(params):
        expected = stochastic_round(wide, F16, np.arange(64, dtype=np.uint64), seed=5, stream=i, step=1)
        assert_same_bits(p, expected)
    assert not np.array_equal(params[0], params[1])


# --------------------------------------------------------------------------------------------
# The optimizers' state moves between native and reference both ways.

PAIRS = [
    (adagrad.Adagrad, ref.Adagrad),
    (adagrad.ProximalAdagrad, ref.ProximalAdagrad),
    (adagrad.AdagradDA, ref.AdagradDA),
    (adagrad.AdagradDecay, ref.AdagradDecay),
    (adagrad.Ftrl, ref.Ftrl),
]


def model(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(5)}


def grads(seed: int) -> dict[str, np.ndarray]:
    return {k: v * 0.1 for k, v in model(seed + 100).items()}


@pytest.mark.parametrize(("native_cls", "reference_cls"), PAIRS, ids=lambda c: c.__name__)
def test_state_dicts_and_checkpoints_move_between_native_and_reference(
    native_cls: type, reference_cls: type, tmp_path: Path
) -> None:
    native_params, reference_params = model(0), model(0)
    native, reference = native_cls(native_params, lr=0.1), reference_cls(reference_params, lr=0.1)
    for k in range(2):
        native.step(grads(k))
        reference.step(grads(k))
    fresh = {k: v.copy() for k, v in native_params.items()}
    from_native = reference_cls(fresh, lr=0.5)
    from_native.load_state_dict(native.state_dict())
    native.save(tmp_path / "c.npz", params=True)
    from_file = reference_cls({k: np.zeros_like(v) for k, v in native_params.items()}, lr=0.5)
    from_file.load(tmp_path / "c.npz")
    back = native_cls({k: v.copy() for k, v in reference_params.items()}, lr=0.5)
    back.load_state_dict(reference.state_dict())
    for opt in (native, reference, from_native, from_file, back):
        assert opt.param_groups[0]["lr"] == 0.1
        opt.step(grads(7))
    for opt in (reference, from_native, from_file, back):
        for key in native.state:
            for name in native_cls.STATE_NAMES:
                assert_same_bits(opt.state[key][name], native.state[key][name])
            assert int(opt.state[key]["step"]) == 3
        group = opt.param_groups[0]
        for key, param in zip(group["param_names"], group["params"]):
            assert_same_bits(param, native_params[key])


# --------------------------------------------------------------------------------------------
# Checks before anything is written


BAD = [
    pytest.param("proximal", {"lr": -1.0}, ValueError, "lr must be a finite number >= 0", id="negative-lr"),
    pytest.param("dual_averaging", {"l1": float("nan")}, ValueError, "l1 must be a finite number >= 0", id="nan-l1"),
    pytest.param("adagrad_decay", {"accumulator_decay_rate": 1.0}, ValueError, "must be > 0 and < 1", id="rate-1"),
    pytest.param("adagrad_decay", {"accumulator_decay_step": 0}, ValueError, "must be an int >= 1", id="step-0"),
    pytest.param(
        "adagrad_decay", {"initial_accumulator_value": 0.0}, ValueError, "must be a finite number > 0", id="floor-0"
    ),
    pytest.param("proximal", {"maximize": 1}, TypeError, "maximize must be a bool", id="maximize-int"),
    pytest.param("proximal", {"grad_scale": 1e39}, ValueError, "grad_scale must be a finite number > 0", id="scale"),
    pytest.param("proximal", {"clip_value": 1.0, "max_grad_norm": 1.0}, ValueError, "at most one", id="two-clips"),
    pytest.param("proximal", {"norm_type": 1}, ValueError, "norm_type must be 2 or inf", id="norm-1"),
    pytest.param("dual_averaging", {"seed": -1}, ValueError, "seed must be an int from 0", id="seed"),
    pytest.param("dual_averaging", {"nonfinite": "ignore"}, ValueError, "nonfinite must be", id="nonfinite"),
    pytest.param("adagrad", {"step": 0}, ValueError, "step must be >= 1", id="step-0"),
    pytest.param("adagrad", {"duplicates": "max"}, ValueError, "duplicates must be", id="duplicates"),
]


@pytest.mark.parametrize(("rule", "options", "error", "message"), BAD)
def test_bad_options_raise_and_write_nothing(rule: str, options: dict[str, Any], error: type, message: str) -> None:
    p, _g, states = problem(rule, F32)
    before = [p.copy()] + [s.copy() for s in states]
    with pytest.raises(error, match=message):
        call(rule, True, p, sparse_grad(F32), states, **{**COMPOSITE_OPTIONS.get(rule, {}), **options})
    for a, b in zip([p, *states], before):
        assert_same_bits(a, b)


@pytest.mark.parametrize("nonfinite", ["skip", "raise"])
@pytest.mark.parametrize("rule", ALL_RULES)
def test_a_nonfinite_grad_is_skipped_or_raised_with_nothing_written(rule: str, nonfinite: str) -> None:
    p, g, states = problem(rule, F16)
    g[2, 3] = np.inf
    before = [p.copy()] + [s.copy() for s in states]
    if nonfinite == "skip":
        assert call(rule, False, p, g, states, nonfinite="skip") is False
    else:
        with pytest.raises(ref.NonFiniteGradError, match=r"^grad holds a non-finite value \(inf at index \(2, 3\)\)"):
            call(rule, False, p, g, states, nonfinite="raise")
    for a, b in zip([p, *states], before):
        assert_same_bits(a, b)
    assert issubclass(ref.NonFiniteGradError, ValueError)
