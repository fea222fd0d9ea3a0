"""adagrad.torch.ProximalAdagrad, adagrad.torch.AdagradDA and adagrad.torch.Ftrl, the torch drop-ins of
the composite rules, against the NumPy optimizers (adagrad.ProximalAdagrad / AdagradDA / Ftrl) over the
same values:
dense and sparse (nn.Embedding) grads bit for bit, state_dict round trips, bad options, exact
zeros, and the plain-torch fallback for other dtypes."""

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

RULES = [
    pytest.param(adagrad.torch.ProximalAdagrad, adagrad.ProximalAdagrad, ("sum",), id="proximal"),
    pytest.param(adagrad.torch.AdagradDA, adagrad.AdagradDA, ("grad_sum", "sum"), id="da"),
    pytest.param(adagrad.torch.Ftrl, adagrad.Ftrl, ("n", "z"), id="ftrl"),
]
OPTIONS = [
    pytest.param({"lr": 0.1}, id="plain"),
    pytest.param({"lr": 0.05, "l1": 0.01, "l2": 0.02}, id="l1-l2"),
    pytest.param({"lr": 0.2, "l1": 0.002, "duplicates": "sequential"}, id="l1-sequential"),
]
# The step options every rule takes, as adagrad.torch.Adagrad does.
CLIP_OPTIONS = [
    pytest.param({"lr": 0.1, "l1": 0.01, "max_grad_norm": 0.5, "nonfinite": "skip"}, id="clip-norm-skip"),
    pytest.param({"lr": 0.1, "clip_norm_per_tensor": 0.3, "norm_type": "inf"}, id="clip-per-tensor-inf"),
    pytest.param({"lr": 0.1, "clip_value": 0.05, "nonfinite": "raise"}, id="clip-value-raise"),
]
DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]
STEPS = 20
INITIAL = {adagrad.torch.ProximalAdagrad: "initial_accumulator_value", adagrad.torch.Ftrl: "initial_accumulator_value"}
INITIAL_DA = "initial_gradient_squared_accumulator_value"


pytestmark = pytest.mark.usefixtures("unchecked_sparse_tensors")


class Model(torch.nn.Module):
    """A small nn.Linear, a 0-d param and an nn.Embedding(sparse=True) table."""

    def __init__(self, dtype: torch.dtype, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.linear = torch.nn.Linear(5, 3).to(dtype)
        self.scale = torch.nn.Parameter(torch.tensor(0.7, dtype=dtype))
        self.emb = torch.nn.Embedding(12, 4, sparse=True).to(dtype)

    def dense_params(self) -> list[torch.Tensor]:
        return [self.linear.weight, self.linear.bias, self.scale]

    def loss(self, k: int) -> torch.Tensor:
        """Step k's loss: fixed data per step; the table is left out (grad None) every 5th step, and
        its rows repeat (a sparse grad with duplicates)."""
        gen = torch.Generator().manual_seed(1000 + k)
        dtype = self.scale.dtype
        x = torch.randn(6, 5, generator=gen, dtype=dtype)
        out = (self.scale * self.linear(x)).tanh().pow(2).sum()
        if k % 5 != 4:
            rows = torch.randint(0, 12, (7,), generator=gen)
            rows[1] = rows[0]
            out = out + (self.emb(rows) * torch.randn(7, 4, generator=gen, dtype=dtype)).sum() ** 2 / 10
        return out


def groups_of(model: Model, options: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"params": model.dense_params()}, {"params": [model.emb.weight], "lr": options["lr"] * 2}]


def numpy_grads(model: Model) -> list[list[Any]]:
    """The model's grads (set by backward) as the NumPy optimizer takes them, per group: copies."""
    dense = [p.grad.numpy().copy() if p.grad is not None else None for p in model.dense_params()]
    g = model.emb.weight.grad
    sparse = None if g is None else adagrad.SparseGrad(g._indices()[0].numpy().copy(), g._values().numpy().copy())
    return [dense, [sparse]]


def run_torch(opt: Any, model: Model, steps: range) -> None:
    for k in steps:
        opt.zero_grad()
        model.loss(k).backward()
        opt.step()


def params_of(model: Model) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in [*model.dense_params(), model.emb.weight]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", OPTIONS + CLIP_OPTIONS)
@pytest.mark.parametrize(("torch_cls", "numpy_cls", "state_names"), RULES)
def test_equals_the_numpy_optimizer_bit_for_bit(
    torch_cls: Any, numpy_cls: Any, state_names: tuple[str, ...], options: dict[str, Any], dtype: torch.dtype
) -> None:
    model = Model(dtype)
    twin = Model(dtype)  # the same values; its grads feed the NumPy optimizer
    arrays = params_of(twin)
    opt = torch_cls(groups_of(model, options), **options)
    numpy_opt = numpy_cls(
        [{"params": arrays[:3]}, {"params": arrays[3:], "lr": options["lr"] * 2}],
        **{k: v for k, v in options.items()},
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
        assert list(state) == ["step", *state_names]
        assert int(state["step"]) == int(numpy_opt.state[key]["step"])
        for name in state_names:
            assert_same_bits(state[name].numpy(), numpy_opt.state[key][name])
    assert int(opt.state[model.emb.weight]["step"]) == STEPS - STEPS // 5  # None grads do not count


@pytest.mark.parametrize("how", ["deepcopy", "torch.save"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("torch_cls", "numpy_cls", "state_names"), RULES)
def test_state_dict_round_trip(
    torch_cls: Any, numpy_cls: Any, state_names: tuple[str, ...], dtype: torch.dtype, how: str
) -> None:
    options = {"lr": 0.05, "l1": 0.003, "l2": 0.01}
    model = Model(dtype)
    opt = torch_cls(groups_of(model, options), **options)
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
    fresh = torch_cls(groups_of(resumed, {"lr": 1.0}), lr=1.0)  # options come from the state_dict
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["l1"] == options["l1"] and fresh.param_groups[1]["lr"] == 2 * options["lr"]
    run_torch(fresh, resumed, range(7, 14))
    for a, b in zip(params_of(resumed), params_of(model)):
        assert_same_bits(a, b)
    for p, q in zip(resumed.parameters(), model.parameters()):
        assert int(fresh.state[p]["step"]) == int(opt.state[q]["step"])
        for name in state_names:
            assert_same_bits(fresh.state[p][name].numpy(), opt.state[q][name].numpy())


@pytest.mark.parametrize(("torch_cls", "numpy_cls", "state_names"), RULES)
def test_a_state_dict_of_the_other_rule_is_refused(torch_cls: Any, numpy_cls: Any, state_names: Any) -> None:
    model = Model(torch.float64)
    other = adagrad.torch.Adagrad if torch_cls is adagrad.torch.AdagradDA else adagrad.torch.AdagradDA
    donor = other(groups_of(model, {"lr": 0.1}), lr=0.1)
    run_torch(donor, model, range(2))
    opt = torch_cls(groups_of(model, {"lr": 0.1}), lr=0.1)
    before = params_of(model)
    with pytest.raises(ValueError, match="state_dict"):
        opt.load_state_dict(copy.deepcopy(donor.state_dict()))
    for a, b in zip(params_of(model), before):
        assert_same_bits(a, b)


BAD_OPTIONS = [
    pytest.param({"lr": -1.0}, ValueError, "Invalid learning rate: -1.0", id="negative-lr"),
    pytest.param({"lr": float("nan")}, ValueError, "Invalid learning rate: nan", id="nan-lr"),
    pytest.param({"lr": float("inf")}, ValueError, "lr", id="inf-lr"),
    pytest.param({"lr": torch.tensor([0.1, 0.2])}, ValueError, "Tensor lr must be 1-element", id="tensor-lr"),
    pytest.param({"lr": "0.1"}, TypeError, "lr", id="str-lr"),
    pytest.param({"l1": -0.5}, ValueError, "Invalid l1 value: -0.5", id="negative-l1"),
    pytest.param({"l1": float("inf")}, ValueError, "l1", id="inf-l1"),
    pytest.param({"l2": float("nan")}, ValueError, "Invalid l2 value: nan", id="nan-l2"),
    pytest.param({"l2": -1}, ValueError, "Invalid l2 value: -1", id="negative-l2"),
    pytest.param({"initial": 0.0}, ValueError, "Invalid initial_.* value: 0.0", id="zero-initial"),
    pytest.param({"initial": -0.1}, ValueError, "Invalid initial_.* value: -0.1", id="negative-initial"),
    pytest.param({"initial": float("inf")}, ValueError, "initial_.* must be a finite number >=? 0", id="inf-initial"),
    pytest.param({"duplicates": "max"}, ValueError, "duplicates must be 'sum' or 'sequential'", id="duplicates"),
]


def initial_name(torch_cls: Any) -> str:
    return INITIAL.get(torch_cls, INITIAL_DA)


@pytest.mark.parametrize(("bad", "error", "match"), BAD_OPTIONS)
@pytest.mark.parametrize(("torch_cls", "numpy_cls", "state_names"), RULES)
def test_bad_options_raise(
    torch_cls: Any, numpy_cls: Any, state_names: Any, bad: dict[str, Any], error: type, match: str
) -> None:
    options = {initial_name(torch_cls) if k == "initial" else k: v for k, v in bad.items()}
    w = torch.nn.Parameter(torch.zeros(3))
    if torch_cls is adagrad.torch.Ftrl and bad == {"initial": 0.0}:  # FTRL's n may start at 0, as TensorFlow's
        torch_cls([w], lr=0.1, **options)
        return
    with pytest.raises(error, match=match):
        torch_cls([w], **{"lr": 0.1, **options})
    opt = torch_cls([w], lr=0.1)
    with pytest.raises(error, match=f"param group 1: .*{match}" if "Invalid" not in match else "param group 1: "):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], **options})


@pytest.mark.parametrize(("torch_cls", "numpy_cls", "state_names"), RULES)
def test_a_complex_param_is_refused_by_name(torch_cls: Any, numpy_cls: Any, state_names: Any) -> None:
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.complex64))
    w.grad = torch.ones(3, dtype=torch.complex64)
    with pytest.raises(TypeError, match=r"'w' has dtype torch.complex64"):
        torch_cls([("w", w)], lr=0.1).step()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("torch_cls", "numpy_cls", "state_names"), RULES)
def test_l1_gives_exact_zeros(torch_cls: Any, numpy_cls: Any, state_names: Any, dtype: torch.dtype) -> None:
    options = {"lr": 0.5, "l1": 0.2}
    model = Model(dtype)
    opt = torch_cls(groups_of(model, options), **options)
    run_torch(opt, model, range(6))
    weights = params_of(model)
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert zeros > 0
    assert (weights[3] == 0).any()  # in the sparse table's rows too
    # Without l1 nothing lands on zero.
    plain = Model(dtype)
    run_torch(torch_cls(groups_of(plain, {"lr": 0.5}), lr=0.5), plain, range(6))
    assert sum(int((w == 0).sum()) for w in params_of(plain)) == 0


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


def fallback_run(torch_cls: Any, options: dict[str, Any], dtype: torch.dtype) -> tuple[list[np.ndarray], Any]:
    """The model in `dtype` (the fallback) and in float64 (native) from the same values; grads of
    the float64 model fed to both, so that the runs differ only by the update's rounding."""
    reference = Model(torch.float64)
    low = Model(torch.float64)
    low.to(dtype)
    ref_opt = torch_cls(groups_of(reference, options), **options)
    opt = torch_cls(groups_of(low, options), **options)
    for k in range(6):
        ref_opt.zero_grad()
        reference.loss(k).backward()
        for p, q in zip(low.parameters(), reference.parameters()):
            p.grad = None if q.grad is None else q.grad.to(dtype)
        ref_opt.step()
        opt.step()
    assert opt._plans is not None and all(plan.fallback for plan in opt._plans)
    return [p.detach().to(torch.float64).numpy() for p in low.parameters()], reference


@pytest.mark.parametrize(("dtype", "tolerance"), FALLBACK_DTYPES)
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize(("torch_cls", "numpy_cls", "state_names"), RULES)
def test_the_torch_fallback_follows_the_formula(
    torch_cls: Any,
    numpy_cls: Any,
    state_names: Any,
    options: dict[str, Any],
    dtype: torch.dtype,
    tolerance: float,
    monkeypatch: Any,
) -> None:
    """Params the kernel does not take (on other devices; here 16-bit params forced onto the
    fallback) are updated by the rule's formula in torch ops: close to the native float64 run, not
    the same bits."""
    force_16bit_onto_the_fallback(monkeypatch)
    low, reference = fallback_run(torch_cls, options, dtype)
    for a, p in zip(low, reference.parameters()):
        np.testing.assert_allclose(a, p.detach().numpy(), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize(("torch_cls", "numpy_cls", "state_names"), RULES)
def test_the_torch_fallback_in_float64_is_the_native_maths(
    torch_cls: Any, numpy_cls: Any, state_names: Any, options: dict[str, Any], monkeypatch: Any
) -> None:
    """The fallback's formula, forced onto float64 params, against the native kernel: equal to
    rounding (no fma, each op rounded on its own), state included."""
    native = Model(torch.float64)
    native_opt = torch_cls(groups_of(native, options), **options)
    run_torch(native_opt, native, range(STEPS))
    monkeypatch.setattr(adagrad.torch.adapter, "native_order", lambda p: False)
    forced = Model(torch.float64)
    forced_opt = torch_cls(groups_of(forced, options), **options)
    run_torch(forced_opt, forced, range(STEPS))
    assert forced_opt._plans is not None and not any(plan.params for plan in forced_opt._plans)
    for p, q in zip(forced.parameters(), native.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-9, atol=1e-12)
        assert int(forced_opt.state[p]["step"]) == int(native_opt.state[q]["step"])
        for name in state_names:
            np.testing.assert_allclose(forced_opt.state[p][name].numpy(), native_opt.state[q][name].numpy(), rtol=1e-9)


@pytest.mark.parametrize(("torch_cls", "numpy_cls", "state_names"), RULES)
def test_a_tensor_lr_and_a_scheduler_are_read_at_every_step(torch_cls: Any, numpy_cls: Any, state_names: Any) -> None:
    a = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    b = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt_a = torch_cls([a], lr=torch.tensor(0.1, dtype=torch.float64))
    opt_b = torch_cls([b], lr=0.1)
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


def test_the_drop_ins_share_one_adapter() -> None:
    base = adagrad.torch.adapter.NativeOptimizer
    for cls in (adagrad.torch.Adagrad, adagrad.torch.ProximalAdagrad, adagrad.torch.AdagradDA):
        assert issubclass(cls, base) and issubclass(cls, torch.optim.Optimizer)
        for name in ("load_state_dict", "_build_plans", "_current_plans", "_as_rows", "_check_loaded_state"):
            assert getattr(cls, name) is getattr(base, name)
        assert "step" not in vars(cls) or vars(cls)["step"].__qualname__ == "NativeOptimizer.step"  # torch wraps it


COMPOSITES = [
    pytest.param(adagrad.torch.ProximalAdagrad, adagrad.ProximalAdagrad, id="proximal"),
    pytest.param(adagrad.torch.AdagradDA, adagrad.AdagradDA, id="da"),
    pytest.param(adagrad.torch.AdagradDecay, adagrad.AdagradDecay, id="decay"),
    pytest.param(adagrad.torch.Ftrl, adagrad.Ftrl, id="ftrl"),
]
STEP_OPTION_SETS = [
    {"nonfinite": "skip"},
    {"nonfinite": "raise", "max_grad_norm": 2.0, "norm_type": "inf"},
    {"clip_norm_per_tensor": 3.0},
    {"clip_value": 4.0},
]


@pytest.mark.parametrize(("torch_cls", "numpy_cls"), COMPOSITES)
def test_the_step_options_are_taken_and_grad_scale_comes_from_grad_scaler(torch_cls: Any, numpy_cls: Any) -> None:
    """As adagrad.torch.Adagrad: every step option in the constructor and as an attribute;
    grad_scale is GradScaler's (refused in the constructor), and a GradScaler step equals the NumPy
    optimizer's step with grad_scale set to the scale."""
    w = torch.nn.Parameter(torch.ones(5))
    for options in STEP_OPTION_SETS:
        opt = torch_cls([w], lr=0.1, **options)
        assert {name: getattr(opt, name) for name in options} == options
    opt.clip_value = None
    assert opt.clip_value is None
    with pytest.raises(TypeError, match="unexpected keyword argument 'grad_scale'"):
        torch_cls([w], grad_scale=2.0)
    with pytest.raises(ValueError, match="nonfinite"):
        torch_cls([w], nonfinite="ignore")

    gen = torch.Generator().manual_seed(3)
    model = torch.nn.Linear(6, 2).double()
    params = [p.detach().numpy().copy() for p in model.parameters()]
    opt = torch_cls(model.parameters(), lr=0.1, max_grad_norm=0.5)
    numpy_opt = numpy_cls(params, lr=0.1, max_grad_norm=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1000)
    for _ in range(3):
        x = torch.randn(4, 6, generator=gen, dtype=torch.float64)
        opt.zero_grad()
        scaler.scale(model(x).square().sum()).backward()
        scaled = [p.grad.numpy().copy() for p in model.parameters()]
        numpy_opt.grad_scale = scaler.get_scale()
        scaler.step(opt)
        scaler.update()
        assert numpy_opt.step(scaled)
    for p, a in zip(model.parameters(), params):
        assert_same_bits(p.detach().numpy(), a)
