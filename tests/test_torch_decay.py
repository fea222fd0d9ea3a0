"""adagrad.torch.AdagradDecay, the torch drop-in of DeepRec's AdagradDecay, against the NumPy
optimizer (adagrad.AdagradDecay) over the same values: dense and sparse (nn.Embedding) grads bit
for bit with decays due every 3 steps, the per-row catch-up, state_dict round trips (the counts
stay int64), bad options, and the plain-torch fallback for other dtypes."""

from __future__ import annotations

import copy
import io
from typing import Any

import numpy as np
import pytest

import adagrad
from conftest import assert_same_bits

torch = pytest.importorskip("torch")
import adagrad.torch  # noqa: E402  (needs torch)
from test_torch_composite import (  # noqa: E402  (the composite rules' model and helpers)
    Model,
    fallback_run,
    groups_of,
    numpy_grads,
    params_of,
    run_torch,
)

pytestmark = pytest.mark.usefixtures("unchecked_sparse_tensors")

Decay = adagrad.torch.AdagradDecay
STATE_NAMES = ("sum", "decay_count")
OPTIONS = [
    pytest.param({"lr": 0.1, "accumulator_decay_step": 3}, id="plain"),
    pytest.param(
        {"lr": 0.05, "accumulator_decay_step": 3, "accumulator_decay_rate": 0.5, "initial_accumulator_value": 0.3},
        id="rate-floor",
    ),
    pytest.param({"lr": 0.2, "accumulator_decay_step": 3, "duplicates": "sequential"}, id="sequential"),
    pytest.param({"lr": 0.1, "accumulator_decay_step": 1, "accumulator_decay_rate": 0.7}, id="every-step"),
]
DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]
STEPS = 20


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", OPTIONS)
def test_equals_the_numpy_optimizer_bit_for_bit(options: dict[str, Any], dtype: torch.dtype) -> None:
    model = Model(dtype)
    twin = Model(dtype)  # the same values; its grads feed the NumPy optimizer
    arrays = params_of(twin)
    opt = Decay(groups_of(model, options), **options)
    numpy_opt = adagrad.AdagradDecay(
        [{"params": arrays[:3]}, {"params": arrays[3:], "lr": options["lr"] * 2}], **options
    )
    twin_params = [*twin.dense_params(), twin.emb.weight]
    for k in range(STEPS):
        opt.zero_grad()
        model.loss(k).backward()
        opt.step()
        twin.zero_grad(set_to_none=True)
        twin.loss(k).backward()
        assert numpy_opt.step(numpy_grads(twin))
        with torch.no_grad():
            for p, a in zip(twin_params, arrays):
                p.copy_(torch.from_numpy(a))
    for p, a, key in zip([*model.dense_params(), model.emb.weight], arrays, range(4)):
        assert_same_bits(p.detach().numpy(), a)
        state = opt.state[p]
        assert list(state) == ["step", *STATE_NAMES]
        assert int(state["step"]) == int(numpy_opt.state[key]["step"])
        assert_same_bits(state["sum"].numpy(), numpy_opt.state[key]["sum"])
        assert state["decay_count"].dtype == torch.int64
        np.testing.assert_array_equal(state["decay_count"].numpy(), numpy_opt.state[key]["decay_count"])
    emb = opt.state[model.emb.weight]
    assert int(emb["step"]) == STEPS - STEPS // 5  # None grads do not count
    assert tuple(emb["decay_count"].shape) == (12,)  # one count per row of the table
    assert [tuple(opt.state[p]["decay_count"].shape) for p in model.dense_params()] == [(3,), (1,), (1,)]
    assert int(emb["decay_count"].max()) == int(emb["step"]) // options["accumulator_decay_step"] > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
def test_a_lazy_row_catches_up_to_the_dense_run(duplicates: str, dtype: torch.dtype) -> None:
    """Rows a sparse grad leaves untouched for several decay periods take every decay they
    missed when next touched: the sparse run equals the dense run (zero grads for them) bit for bit."""
    options = {"lr": 0.3, "accumulator_decay_step": 2, "accumulator_decay_rate": 0.6, "duplicates": duplicates}
    sparse = torch.nn.Parameter(torch.linspace(-1, 1, 24, dtype=dtype).reshape(6, 4))
    dense = torch.nn.Parameter(sparse.detach().clone())
    opt_sparse, opt_dense = Decay([sparse], **options), Decay([dense], **options)
    # Row 4 waits 10 steps (5 decays), the others some; the last step touches every row.
    touched = [[0, 1], [1], [1, 1], [0, 5], [1], [2, 1, 2], [3, 0], [5], [1], [3], [4, 0, 1, 2, 3, 5]]
    for k, rows in enumerate(touched):
        if duplicates == "sequential":  # one update per occurrence: the dense run's only for distinct rows
            rows = sorted(set(rows))
        index = torch.tensor([rows])
        values = torch.linspace(0.5, -0.5, 4 * len(rows), dtype=dtype).reshape(len(rows), 4) * (k + 1)
        sparse.grad = torch.sparse_coo_tensor(index, values, (6, 4))
        dense.grad = sparse.grad.to_dense()
        opt_sparse.step()
        opt_dense.step()
    assert_same_bits(sparse.detach().numpy(), dense.detach().numpy())
    assert_same_bits(opt_sparse.state[sparse]["sum"].numpy(), opt_dense.state[dense]["sum"].numpy())
    assert opt_sparse.state[sparse]["decay_count"].tolist() == opt_dense.state[dense]["decay_count"].tolist() == [5] * 6


@pytest.mark.parametrize("how", ["deepcopy", "torch.save"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_round_trip(dtype: torch.dtype, how: str) -> None:
    options = {"lr": 0.05, "accumulator_decay_step": 3, "accumulator_decay_rate": 0.8}
    model = Model(dtype)
    opt = Decay(groups_of(model, options), **options)
    run_torch(opt, model, range(7))
    if how == "deepcopy":
        saved = copy.deepcopy(opt.state_dict())
    else:
        buffer = io.BytesIO()
        torch.save(opt.state_dict(), buffer)
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
    weights = copy.deepcopy(model.state_dict())
    run_torch(opt, model, range(7, 14))

    resumed = Model(dtype, seed=5)
    resumed.load_state_dict(weights)
    fresh = Decay(groups_of(resumed, {"lr": 1.0}), lr=1.0)  # options come from the state_dict
    fresh.load_state_dict(saved)
    group = fresh.param_groups[0]
    assert group["accumulator_decay_step"] == 3 and group["accumulator_decay_rate"] == 0.8
    assert fresh.param_groups[1]["lr"] == 2 * options["lr"]
    assert all(fresh.state[p]["decay_count"].dtype == torch.int64 for p in resumed.parameters())
    run_torch(fresh, resumed, range(7, 14))
    for a, b in zip(params_of(resumed), params_of(model)):
        assert_same_bits(a, b)
    for p, q in zip(resumed.parameters(), model.parameters()):
        assert int(fresh.state[p]["step"]) == int(opt.state[q]["step"])
        assert_same_bits(fresh.state[p]["sum"].numpy(), opt.state[q]["sum"].numpy())
        assert fresh.state[p]["decay_count"].tolist() == opt.state[q]["decay_count"].tolist()


def test_loaded_counts_stay_exact_int64_for_a_float16_param() -> None:
    """torch's load_state_dict casts state tensors to the param's dtype; the counts are kept as
    saved (in float16, 5001 would round to 5000)."""
    w = torch.nn.Parameter(torch.ones(3, 2, dtype=torch.float16))
    opt = Decay([w], accumulator_decay_step=2)
    saved = copy.deepcopy(opt.state_dict())
    saved["state"][0]["decay_count"] = torch.tensor([5001, 7, 2049], dtype=torch.int64)
    saved["state"][0]["step"] = torch.tensor(10002.0)
    opt.load_state_dict(saved)
    counts = opt.state[w]["decay_count"]
    assert counts.dtype == torch.int64 and counts.tolist() == [5001, 7, 2049]
    assert counts is not saved["state"][0]["decay_count"]  # a copy: the dict is not written
    w.grad = torch.ones_like(w)
    opt.step()  # step 10003: 5001 decays due; rows 1 and 2 catch up
    assert opt.state[w]["decay_count"].tolist() == [5001, 5001, 5001]


BAD_STATES = [
    pytest.param(lambda e: e.update(decay_count=e["decay_count"].double()), "must be a torch.int64 tensor", id="float"),
    pytest.param(lambda e: e.update(decay_count=torch.zeros(2, dtype=torch.int64)), "has shape", id="shape"),
    pytest.param(lambda e: e.pop("decay_count"), "has no", id="missing"),
    pytest.param(lambda e: e.update(grad_sum=e["sum"]), "does not keep", id="another-rule"),
]


@pytest.mark.parametrize(("spoil", "match"), BAD_STATES)
def test_a_bad_state_dict_is_refused_before_anything_changes(spoil: Any, match: str) -> None:
    model = Model(torch.float64)
    opt = Decay(groups_of(model, {"lr": 0.1}), lr=0.1, accumulator_decay_step=2)
    run_torch(opt, model, range(3))
    saved = copy.deepcopy(opt.state_dict())
    spoil(saved["state"][3])  # the table's entry
    before = {k: v.clone() for k, v in opt.state[model.emb.weight].items()}
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(saved)
    for name, tensor in opt.state[model.emb.weight].items():
        assert torch.equal(tensor, before[name])


BAD_OPTIONS = [
    pytest.param({"lr": -1.0}, ValueError, "Invalid learning rate: -1.0", id="negative-lr"),
    pytest.param({"lr": float("nan")}, ValueError, "Invalid learning rate: nan", id="nan-lr"),
    pytest.param({"lr": float("inf")}, ValueError, "lr must be a finite number", id="inf-lr"),
    pytest.param({"lr": torch.tensor([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element", id="tensor-lr"),
    pytest.param({"lr": "0.1"}, TypeError, "lr must be a real number", id="str-lr"),
    pytest.param({"accumulator_decay_step": 0}, ValueError, "Invalid accumulator_decay_step value: 0", id="zero-step"),
    pytest.param({"accumulator_decay_step": -3}, ValueError, "Invalid accumulator_decay_step value: -3", id="neg-step"),
    pytest.param({"accumulator_decay_step": 3.0}, TypeError, "accumulator_decay_step must be an int", id="float-step"),
    pytest.param({"accumulator_decay_step": True}, TypeError, "accumulator_decay_step must be an int", id="bool-step"),
    pytest.param({"accumulator_decay_rate": 0.0}, ValueError, "Invalid accumulator_decay_rate value: 0.0", id="rate-0"),
    pytest.param({"accumulator_decay_rate": 1.0}, ValueError, "Invalid accumulator_decay_rate value: 1.0", id="rate-1"),
    pytest.param({"accumulator_decay_rate": 1.5}, ValueError, "Invalid accumulator_decay_rate value: 1.5", id="rate-2"),
    pytest.param(
        {"accumulator_decay_rate": float("nan")}, ValueError, "Invalid accumulator_decay_rate value: nan", id="rate-nan"
    ),
    pytest.param(
        {"initial_accumulator_value": 0.0}, ValueError, "Invalid initial_accumulator_value value: 0.0", id="0"
    ),
    pytest.param(
        {"initial_accumulator_value": -0.1}, ValueError, "Invalid initial_accumulator_value value: -0.1", id="neg"
    ),
    pytest.param(
        {"initial_accumulator_value": float("inf")}, ValueError, "must be a finite number > 0", id="inf-initial"
    ),
    pytest.param({"duplicates": "max"}, ValueError, "duplicates must be 'sum' or 'sequential'", id="duplicates"),
]


@pytest.mark.parametrize(("bad", "error", "match"), BAD_OPTIONS)
def test_bad_options_raise(bad: dict[str, Any], error: type, match: str) -> None:
    w = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(error, match=match):
        Decay([w], **{"lr": 0.1, **bad})
    opt = Decay([w], lr=0.1)
    # A group's options are checked by the NumPy optimizer's rules (its texts, after the group's name).
    with pytest.raises(error, match="param group 1: "):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], **bad})


def test_a_complex_param_is_refused_by_name() -> None:
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.complex64))
    w.grad = torch.ones(3, dtype=torch.complex64)
    with pytest.raises(TypeError, match=r"'w' has dtype torch.complex64"):
        Decay([("w", w)], lr=0.1).step()


def sparse_grad_of_a_vector(p: torch.Tensor) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.tensor([[1, 1]]), torch.ones(2, dtype=p.dtype), p.shape)


def sparse_grad_by_element(p: torch.Tensor) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, 0]]), torch.ones(2, dtype=p.dtype), p.shape)


UNTAKEN_SPARSE = [
    pytest.param((4,), sparse_grad_of_a_vector, id="1-D"),
    pytest.param((3, 2), sparse_grad_by_element, id="two-sparse-dims"),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16], ids=["native", "fallback"])
@pytest.mark.parametrize(("shape", "make_grad"), UNTAKEN_SPARSE)
def test_a_sparse_grad_not_by_rows_of_a_table_is_refused(shape: tuple[int, ...], make_grad: Any, dtype: Any) -> None:
    w = torch.nn.Parameter(torch.ones(shape, dtype=dtype))
    opt = Decay([("w", w)], lr=0.1)
    w.grad = make_grad(w)
    with pytest.raises(ValueError, match=r"'w': AdagradDecay takes sparse grads of a 2-D C-contiguous param by rows"):
        opt.step()
    assert torch.equal(w.detach(), torch.ones(shape, dtype=dtype))


def force_16bit_onto_the_fallback(monkeypatch: Any) -> None:
    """The native kernels take 16-bit CPU params: these tests hand them to the torch fallback, as a
    param on another device would be."""
    native_order = adagrad.torch.adapter.native_order
    monkeypatch.setattr(
        adagrad.torch.adapter,
        "native_order",
        lambda p: False if p.dtype in (torch.float16, torch.bfloat16) else native_order(p),
    )


FALLBACK_DTYPES = [
    pytest.param(torch.float16, 2e-2, id="f16"),
    pytest.param(torch.bfloat16, 1e-1, id="bf16"),
]


@pytest.mark.parametrize(("dtype", "tolerance"), FALLBACK_DTYPES)
@pytest.mark.parametrize("options", OPTIONS)
def test_the_torch_fallback_follows_the_formula(
    options: dict[str, Any], dtype: torch.dtype, tolerance: float, monkeypatch: Any
) -> None:
    """Params the kernel does not take (on other devices; here 16-bit params forced onto the
    fallback) are updated by the rule's formula in torch ops: close to the native float64 run, not
    the same bits."""
    force_16bit_onto_the_fallback(monkeypatch)
    low, reference = fallback_run(Decay, options, dtype)
    for a, p in zip(low, reference.parameters()):
        np.testing.assert_allclose(a, p.detach().numpy(), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("options", OPTIONS)
def test_the_torch_fallback_in_float64_is_the_native_maths(options: dict[str, Any], monkeypatch: Any) -> None:
    """The fallback's formula, forced onto float64 params, against the native kernel: equal to
    rounding (no fma, each op rounded on its own), the per-row catch-up and the counts exactly."""
    native = Model(torch.float64)
    native_opt = Decay(groups_of(native, options), **options)
    run_torch(native_opt, native, range(STEPS))
    monkeypatch.setattr(adagrad.torch.adapter, "native_order", lambda p: False)
    forced = Model(torch.float64)
    forced_opt = Decay(groups_of(forced, options), **options)
    run_torch(forced_opt, forced, range(STEPS))
    assert forced_opt._plans is not None and not any(plan.params for plan in forced_opt._plans)
    for p, q in zip(forced.parameters(), native.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-9, atol=1e-12)
        assert int(forced_opt.state[p]["step"]) == int(native_opt.state[q]["step"])
        np.testing.assert_allclose(forced_opt.state[p]["sum"].numpy(), native_opt.state[q]["sum"].numpy(), rtol=1e-9)
        assert forced_opt.state[p]["decay_count"].tolist() == native_opt.state[q]["decay_count"].tolist()


def test_a_tensor_lr_and_a_scheduler_are_read_at_every_step() -> None:
    a = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt_a = Decay([a], lr=torch.tensor(0.1, dtype=torch.float64), accumulator_decay_step=2)
    opt_b = Decay([b], lr=0.1, accumulator_decay_step=2)
    scheduler = torch.optim.lr_scheduler.StepLR(opt_b, step_size=1, gamma=0.5)
    lrs = []
    for _ in range(3):
        lrs.append(opt_b.param_groups[0]["lr"])
        opt_a.param_groups[0]["lr"].fill_(lrs[-1])
        a.grad = torch.full_like(a, 0.3)
        b.grad = torch.full_like(b, 0.3)
        opt_a.step()
        opt_b.step()
        scheduler.step()
    assert lrs == [0.1, 0.05, 0.025]
    assert_same_bits(a.detach().numpy(), b.detach().numpy())


def test_the_defaults_and_the_shared_adapter() -> None:
    w = torch.nn.Parameter(torch.zeros(2))
    group = Decay([w]).param_groups[0]
    assert {k: group[k] for k in ("lr", "accumulator_decay_step", "accumulator_decay_rate")} == {
        "lr": 1e-2,
        "accumulator_decay_step": 100000,
        "accumulator_decay_rate": 0.9,
    }
    assert group["initial_accumulator_value"] == 0.1 and group["duplicates"] == "sum"
    base = adagrad.torch.adapter.NativeOptimizer
    assert issubclass(Decay, base) and issubclass(Decay, torch.optim.Optimizer)
    for name in ("load_state_dict", "_build_plans", "_current_plans", "_as_rows", "_check_loaded_state"):
        assert getattr(Decay, name) is getattr(base, name)
