"""adagrad.torch.Adagrad, the drop-in torch.optim.Optimizer, against torch.optim.Adagrad itself."""

from __future__ import annotations

import copy
import io
import subprocess
import sys
from typing import Any, Callable

import numpy as np
import pytest

import adagrad
from conftest import assert_same_bits

torch = pytest.importorskip("torch")
import adagrad.torch  # noqa: E402  (needs torch)

CONFIGS = [
    pytest.param({}, id="default"),
    pytest.param({"lr": 0.1, "weight_decay": 0.1}, id="wd"),
    pytest.param({"lr": 0.1, "weight_decay": 0.1, "maximize": True}, id="wd-maximize"),
    pytest.param({"lr": 0.1, "lr_decay": 0.5, "weight_decay": 0.1}, id="decay-wd"),
    pytest.param({"lr": 0.05, "initial_accumulator_value": 0.1, "eps": 1e-3}, id="init-eps"),
]
DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]
STEPS = 12


pytestmark = pytest.mark.usefixtures("unchecked_sparse_tensors")


def conv_net(dtype: Any) -> Any:
    """Conv (channels_last, so not C-contiguous), linear, biases and a 0-d scale."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(144, 5))
    net = net.to(dtype=dtype, memory_format=torch.channels_last)
    net.register_parameter("scale", torch.nn.Parameter(torch.tensor(1.5, dtype=dtype)))
    return net


def conv_loss(net: Any, step: int, dtype: Any) -> Any:
    g = torch.Generator().manual_seed(step)
    x = torch.randn(6, 3, 8, 8, generator=g, dtype=dtype).to(memory_format=torch.channels_last)
    return (net(x) * net.scale).square().mean()


def train(net: Any, opt: Any, steps: range, dtype: Any, scheduler: Any = None) -> None:
    for step in steps:
        opt.zero_grad()
        loss = conv_loss(net, step, dtype)
        loss.backward()
        opt.step()
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(loss.item())
        elif scheduler is not None:
            scheduler.step()


def assert_same_training(ours: Any, theirs: Any, ours_opt: Any, theirs_opt: Any) -> None:
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        assert_same_bits(a.detach().numpy(), b.detach().numpy())
        sa, sb = ours_opt.state[a], theirs_opt.state[b]
        assert_same_bits(sa["sum"].numpy(), sb["sum"].numpy())
        assert float(sa["step"]) == float(sb["step"]), name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", CONFIGS)
def test_bitwise_equal_to_torch_fused(config: dict[str, Any], dtype: Any) -> None:
    check_against_torch_fused(config, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitwise_equal_to_torch_fused_on_every_isa(dtype: Any, isa: str, threads: int) -> None:
    check_against_torch_fused({"lr": 0.1, "lr_decay": 0.5, "weight_decay": 0.1}, dtype)


def check_against_torch_fused(config: dict[str, Any], dtype: Any) -> None:
    ours, theirs = conv_net(dtype), conv_net(dtype)
    ours_opt = adagrad.torch.Adagrad(ours.parameters(), **config)
    theirs_opt = torch.optim.Adagrad(theirs.parameters(), fused=True, **config)
    for step in range(STEPS):
        train(ours, ours_opt, range(step, step + 1), dtype)
        train(theirs, theirs_opt, range(step, step + 1), dtype)
        assert_same_training(ours, theirs, ours_opt, theirs_opt)


SCHEDULERS: list[Any] = [
    pytest.param(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5), id="StepLR"),
    pytest.param(
        lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0, threshold=0.5),
        id="ReduceLROnPlateau",
    ),
    pytest.param(
        lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=STEPS, cycle_momentum=False),
        id="OneCycleLR",
    ),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make_scheduler", SCHEDULERS)
def test_schedulers_bitwise(make_scheduler: Callable[[Any], Any], dtype: Any) -> None:
    ours, theirs = conv_net(dtype), conv_net(dtype)
    ours_opt = adagrad.torch.Adagrad(ours.parameters(), lr=0.1)
    theirs_opt = torch.optim.Adagrad(theirs.parameters(), lr=0.1, fused=True)
    ours_sched, theirs_sched = make_scheduler(ours_opt), make_scheduler(theirs_opt)
    train(ours, ours_opt, range(STEPS), dtype, ours_sched)
    train(theirs, theirs_opt, range(STEPS), dtype, theirs_sched)
    assert ours_opt.param_groups[0]["lr"] == theirs_opt.param_groups[0]["lr"] != 0.1  # the schedule moved lr
    assert_same_training(ours, theirs, ours_opt, theirs_opt)


def saved_and_loaded(state_dict: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    return dict(torch.load(buffer))


# (first optimizer, second optimizer): train with the first, hand its state_dict to the second.
HANDOVERS = [
    pytest.param("torch", "ours", id="torch-to-ours"),
    pytest.param("ours", "torch", id="ours-to-torch"),
    pytest.param("ours", "ours", id="ours-to-ours"),
]


def make_opt(kind: str, params: Any, **options: Any) -> Any:
    if kind == "torch":
        return torch.optim.Adagrad(params, fused=True, **options)
    return adagrad.torch.Adagrad(params, **options)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("first", "second"), HANDOVERS)
def test_state_dict_handover_continues_bitwise(first: str, second: str, dtype: Any) -> None:
    options = {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 0.01, "initial_accumulator_value": 0.01}
    uninterrupted = conv_net(dtype)
    uninterrupted_opt = make_opt(first, uninterrupted.parameters(), **options)
    train(uninterrupted, uninterrupted_opt, range(STEPS), dtype)

    net = conv_net(dtype)
    opt = make_opt(first, net.parameters(), **options)
    train(net, opt, range(STEPS // 2), dtype)
    resumed = copy.deepcopy(net)
    resumed_opt = make_opt(second, resumed.parameters(), lr=7.0)  # the state_dict brings the options
    resumed_opt.load_state_dict(saved_and_loaded(opt.state_dict()))
    train(resumed, resumed_opt, range(STEPS // 2, STEPS), dtype)
    assert_same_training(resumed, uninterrupted, resumed_opt, uninterrupted_opt)


class SparseModel(torch.nn.Module):
    """An embedding, an embedding bag (both with sparse grads) and a dense head."""

    def __init__(self, dtype: Any) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.emb = torch.nn.Embedding(50, 8, sparse=True, dtype=dtype)
        self.bag = torch.nn.EmbeddingBag(40, 8, mode="sum", sparse=True, dtype=dtype)
        self.head = torch.nn.Linear(8, 1, dtype=dtype)

    def dense_params(self) -> list[Any]:
        return list(self.head.parameters())

    def sparse_params(self) -> list[Any]:
        return [self.emb.weight, self.bag.weight]


def assert_within_update_rounding(actual: np.ndarray, expected: np.ndarray, lr: float) -> None:
    """A few ulp of the operands: the param and its update (at most about lr here). A weight that
    the updates have brought near zero keeps the absolute error of the larger operands, so a
    relative bound on the result alone would be wrong."""
    eps = np.finfo(expected.dtype).eps
    bound = 16 * eps * (np.abs(expected) + lr)
    excess = np.abs(actual - expected) - bound
    assert (excess <= 0).all(), f"worst excess {excess.max()} at {np.unravel_index(excess.argmax(), excess.shape)}"


def sparse_loss(model: SparseModel, step: int) -> Any:
    g = torch.Generator().manual_seed(100 + step)
    # Zipf-like ids: small ids repeat, so the sparse grads carry duplicate rows.
    ids = (torch.rand(16, generator=g) ** 3 * 50).long()
    bag_ids = (torch.rand(24, generator=g) ** 3 * 40).long()
    offsets = torch.arange(0, 24, 3)
    h = model.emb(ids).view(8, 2, 8).sum(1) + model.bag(bag_ids, offsets)
    return torch.nn.functional.softplus(model.head(h)).mean()


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_embeddings_match_torch(dtype: Any, threads: int) -> None:
    """Both optimizers get the same grads each step (from our model's backward): the dense params
    match torch's fused path bit for bit; the sparse rows match torch's sparse path to within its
    rounding of coalesce(), which adds repeated rows in its own order."""
    ours, theirs = SparseModel(dtype), SparseModel(dtype)
    ours_opt = adagrad.torch.Adagrad(ours.parameters(), lr=0.1, lr_decay=0.01)
    theirs_dense = torch.optim.Adagrad(theirs.dense_params(), lr=0.1, lr_decay=0.01, fused=True)
    theirs_sparse = torch.optim.Adagrad(theirs.sparse_params(), lr=0.1, lr_decay=0.01)
    rtol = 1e-5 if dtype == torch.float32 else 1e-13
    for step in range(STEPS):
        ours_opt.zero_grad()
        sparse_loss(ours, step).backward()
        for a, b in zip(ours.parameters(), theirs.parameters()):
            b.grad = a.grad.clone()
        for opt in (ours_opt, theirs_dense, theirs_sparse):
            opt.step()
        for a, b in zip(ours.dense_params(), theirs.dense_params()):
            assert_same_bits(a.detach().numpy(), b.detach().numpy())
        for a, b in zip(ours.sparse_params(), theirs.sparse_params()):
            assert_within_update_rounding(a.detach().numpy(), b.detach().numpy(), lr=0.1)
            np.testing.assert_allclose(
                ours_opt.state[a]["sum"].numpy(), theirs_sparse.state[b]["sum"].numpy(), rtol=rtol, atol=0
            )
    touched = (ours_opt.state[ours.emb.weight]["sum"] != 0).sum().item()
    assert 0 < touched < 50 * 8  # some rows never seen: they must stay untouched
    assert ours_opt.state[ours.emb.weight]["step"].item() == STEPS


@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("rowwise", [False, True], ids=["elementwise", "rowwise"])
def test_sparse_grads_equal_the_reference(rowwise: bool, duplicates: str) -> None:
    """Each sparse step is adagrad.reference.sparse_update on torch's (indices, values), bitwise."""
    model = SparseModel(torch.float32)
    opt = adagrad.torch.Adagrad(
        [
            {"params": model.sparse_params(), "rowwise": rowwise, "duplicates": duplicates},
            {"params": model.head.parameters()},
        ],
        lr=0.1,
    )
    tables = [p.detach().numpy().copy() for p in model.sparse_params()]
    states = [opt.state[p]["sum"].numpy().copy() for p in model.sparse_params()]
    for step in range(1, STEPS + 1):
        opt.zero_grad()
        sparse_loss(model, step).backward()
        grads = [p.grad for p in model.sparse_params()]
        opt.step()
        for table, state, grad, p in zip(tables, states, grads, model.sparse_params()):
            indices, values = grad._indices()[0].numpy(), grad._values().numpy()
            adagrad.reference.sparse_update(table, indices, values, state, step=step, lr=0.1, duplicates=duplicates)
            assert_same_bits(p.detach().numpy(), table)
            assert_same_bits(opt.state[p]["sum"].numpy(), state)
    assert opt.state[model.emb.weight]["sum"].shape == ((50,) if rowwise else (50, 8))


def test_complex_params_fall_back_to_torch_and_16bit_ones_are_native() -> None:
    """complex params take torch's single-tensor path; float16, bfloat16 and float32 stay native
    (torch fused's bits: tests/test_torch_half.py holds the 16-bit ones in full)."""
    torch.manual_seed(3)
    params = [torch.randn(5, dtype=d) for d in (torch.complex64, torch.float16, torch.bfloat16, torch.float32)]
    ours = [torch.nn.Parameter(p.clone()) for p in params]
    theirs_complex = torch.nn.Parameter(params[0].clone())
    theirs_fused = [torch.nn.Parameter(p.clone()) for p in params[1:]]
    ours_opt = adagrad.torch.Adagrad(ours, lr=0.1, weight_decay=0.1)
    complex_opt = torch.optim.Adagrad([theirs_complex], lr=0.1, weight_decay=0.1, foreach=False)
    fused_opt = torch.optim.Adagrad(theirs_fused, lr=0.1, weight_decay=0.1, fused=True)
    for step in range(STEPS):
        g = torch.Generator().manual_seed(step)
        grads = [torch.randn(5, generator=g, dtype=p.dtype if p.is_complex() else None).to(p.dtype) for p in params]
        for p, grad in zip([*ours, theirs_complex, *theirs_fused], [*grads, *grads]):
            p.grad = grad.clone()
        ours_opt.step()
        complex_opt.step()
        fused_opt.step()
    assert [p for plan in ours_opt._plans for p in plan.fallback] == [ours[0]]
    for a, b in zip(ours, [theirs_complex, *theirs_fused]):
        assert torch.equal(a.detach(), b.detach()), a.dtype


def test_strided_grad_is_read_by_its_strides() -> None:
    """A user-set grad with a transposed layout means the same values as its contiguous copy.
    (torch 2.13's fused CPU kernel reads such a grad in storage order, a wrong result; so the
    comparison with torch uses the contiguous copy.)"""
    grad = torch.randn(6, 4, generator=torch.Generator().manual_seed(5)).t()
    assert not grad.is_contiguous()
    start = torch.randn(4, 6, generator=torch.Generator().manual_seed(6))
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    ours_opt = adagrad.torch.Adagrad([ours], lr=0.1)
    theirs_opt = torch.optim.Adagrad([theirs], lr=0.1, fused=True)
    ours.grad, theirs.grad = grad, grad.contiguous()
    ours_opt.step()
    theirs_opt.step()
    assert torch.equal(ours.detach(), theirs.detach())
    assert torch.equal(ours.grad, grad)  # the user's grad is left as it was


def test_replaced_param_memory_is_followed() -> None:
    """After ``p.data = ...`` (new memory), steps update the new tensor, as torch's optimizers do."""
    ours, theirs = torch.nn.Parameter(torch.ones(4, 6)), torch.nn.Parameter(torch.ones(4, 6))
    ours_opt = adagrad.torch.Adagrad([ours], lr=0.1)
    theirs_opt = torch.optim.Adagrad([theirs], lr=0.1, fused=True)
    for p, opt in ((ours, ours_opt), (theirs, theirs_opt)):
        p.grad = torch.arange(24.0).view(4, 6)
        opt.step()
        old = p.data
        p.data = p.data.clone()
        opt.step()
        assert not torch.equal(p.detach(), old)
    assert torch.equal(ours.detach(), theirs.detach())


def test_step_hooks_closure_and_zero_grad() -> None:
    w = torch.nn.Parameter(torch.ones(3))
    opt = adagrad.torch.Adagrad([w], lr=0.5)
    calls: list[str] = []
    opt.register_step_pre_hook(lambda *_: calls.append("pre"))
    opt.register_step_post_hook(lambda *_: calls.append("post"))

    def closure() -> Any:
        opt.zero_grad()
        loss = (w * torch.tensor([1.0, 2.0, 3.0])).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 6.0
    assert calls == ["pre", "post"]
    assert torch.equal(w.detach(), torch.full((3,), 0.5))  # each element moves by lr on step 1
    opt.zero_grad()
    assert w.grad is None


def test_in_place_update_is_seen_by_autograd() -> None:
    """Like any in-place torch op, the step bumps the param's version, so stale graphs are refused."""
    w = torch.nn.Parameter(torch.ones(3))
    opt = adagrad.torch.Adagrad([w])
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_tensor_lr_reads_its_value_each_step() -> None:
    lr = torch.tensor(0.25)
    ours, theirs = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(4))
    ours_opt = adagrad.torch.Adagrad([ours], lr=lr)
    theirs_opt = torch.optim.Adagrad([theirs], lr=0.25, fused=True)
    for value in (0.25, 0.125):
        lr.fill_(value)
        theirs_opt.param_groups[0]["lr"] = value
        for p, opt in ((ours, ours_opt), (theirs, theirs_opt)):
            p.grad = torch.arange(4.0)
            opt.step()
    assert torch.equal(ours.detach(), theirs.detach())


def test_grad_scaler_skips_steps_with_inf() -> None:
    """torch.amp.GradScaler on CPU: unscaling by a power of two is exact, an inf skips the step."""
    ours, plain = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3))
    ours_opt, plain_opt = adagrad.torch.Adagrad([ours], lr=0.1), adagrad.torch.Adagrad([plain], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for scale in (1.0, float("inf"), 3.0):
        ours_opt.zero_grad()
        scaler.scale((ours * torch.tensor([1.0, -2.0, scale])).sum()).backward()
        scaler.step(ours_opt)
        scaler.update()
        if scale != float("inf"):
            plain.grad = torch.tensor([1.0, -2.0, scale])
            plain_opt.step()
    assert torch.equal(ours.detach(), plain.detach())
    assert ours_opt.state[ours]["step"].item() == 2


def bad_options() -> list[Any]:
    return [
        pytest.param({"differentiable": True}, ValueError, "differentiable", id="differentiable"),
        # torch's own checks, with torch's types and texts
        pytest.param(
            {"fused": True, "foreach": True}, RuntimeError, "`fused` and `foreach` cannot be `True`", id="fused-foreach"
        ),
        pytest.param(
            {"fused": True, "differentiable": True}, RuntimeError, "`fused` does not support", id="fused-differentiable"
        ),
        pytest.param({"lr": -1.0}, ValueError, "Invalid learning rate: -1.0", id="negative-lr"),
        pytest.param({"lr": torch.ones(2)}, ValueError, "Tensor lr must be 1-element", id="lr-tensor-2"),
        pytest.param({"lr_decay": -0.5}, ValueError, "Invalid lr_decay value: -0.5", id="negative-lr-decay"),
        pytest.param({"weight_decay": -1}, ValueError, "Invalid weight_decay value: -1", id="negative-wd"),
        pytest.param(
            {"initial_accumulator_value": -1.0},
            ValueError,
            "Invalid initial_accumulator_value value: -1.0",
            id="negative-initial",
        ),
        pytest.param({"eps": float("nan")}, ValueError, "Invalid epsilon value: nan", id="nan-eps"),
        # ours, for what torch does not check
        pytest.param({"lr": float("inf")}, ValueError, "lr must be a finite number", id="inf-lr"),
        pytest.param({"duplicates": "first"}, ValueError, "duplicates", id="duplicates"),
        pytest.param({"rowwise": True}, ValueError, r"2-D params.*params\[0\] has shape", id="rowwise-1d"),
    ]


@pytest.mark.parametrize(("options", "error", "match"), bad_options())
def test_bad_options_raise(options: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        adagrad.torch.Adagrad([torch.nn.Parameter(torch.ones(3))], **options)


def _duplicate_cases() -> list[Any]:
    p, q = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    return [
        pytest.param(lambda: [p, p], r"params\[0\] and params\[1\] are the same tensor", id="twice"),
        pytest.param(lambda: [q, p, q], r"params\[0\] and params\[2\] are the same tensor", id="again-later"),
        pytest.param(lambda: [("a", p), ("b", p)], "'a' and 'b' are the same tensor", id="named"),
        pytest.param(
            lambda: [{"params": [q]}, {"params": [p, p]}],
            r"params\[1\] and params\[2\] are the same tensor",
            id="second-group",
        ),
    ]


@pytest.mark.parametrize("optimizer", [adagrad.torch.Adagrad, adagrad.torch.ProximalAdagrad, adagrad.torch.Ftrl])
@pytest.mark.parametrize(("make_params", "match"), _duplicate_cases())
def test_a_duplicate_param_is_refused_by_that_name(optimizer: Any, make_params: Any, match: str) -> None:
    """torch.optim warns of a "duplicate" param and updates it twice; ours refuse it, before torch's warning."""
    with pytest.raises(ValueError, match="^duplicate param: " + match):
        optimizer(make_params(), lr=0.1)


def test_add_param_group_refuses_a_duplicate_and_keeps_the_groups() -> None:
    p, q = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = adagrad.torch.Adagrad([p], lr=0.1)
    with pytest.raises(ValueError, match=r"^duplicate param: params\[1\] and params\[2\]"):
        opt.add_param_group({"params": iter([q, q])})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize(
    ("options", "match"),
    [({"lr": -1.0}, "lr"), ({"eps": -1e-10}, "eps"), ({"initial_accumulator_value": -1.0}, "initial_accumulator")],
    ids=["lr", "eps", "initial-accumulator"],
)
def test_add_param_group_with_a_bad_option_keeps_the_groups(options: dict[str, Any], match: str) -> None:
    p, q = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    opt = adagrad.torch.Adagrad([p], lr=0.1)
    with pytest.raises(ValueError, match=match):
        opt.add_param_group({"params": [q], **options})
    assert len(opt.param_groups) == 1
    p.grad, q.grad = torch.ones(3), torch.ones(2)
    opt.step()  # the refused group is not stepped: q keeps its value and gets no state
    assert torch.equal(q.detach(), torch.ones(2)) and q not in opt.state
    assert not torch.equal(p.detach(), torch.ones(3))


# torch itself refuses a dense grad of another shape, dtype or device; these it lets through.
BAD_GRADS = [
    pytest.param(
        {"rowwise": True},
        lambda: torch.sparse_coo_tensor(torch.tensor([[0, 1], [1, 2]]), torch.ones(2), (3, 4)),
        ValueError,
        "rowwise=True, which takes row-sparse grads",
        id="rowwise-sparse-elements",
    ),
    pytest.param(
        {},
        lambda: torch.sparse_coo_tensor(torch.tensor([[0, 3]]), torch.ones(2, 4), (3, 4), check_invariants=False),
        ValueError,
        "out of range",
        id="sparse-row-out-of-range",
    ),
    pytest.param({"rowwise": True}, lambda: torch.ones(3, 4), ValueError, "row-wise", id="rowwise-dense-grad"),
]


@pytest.mark.parametrize(("options", "make_grad", "error", "match"), BAD_GRADS)
def test_bad_grad_raises_and_changes_nothing(
    options: dict[str, Any], make_grad: Callable[[], Any], error: type, match: str
) -> None:
    good, bad = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(3, 4))
    opt = adagrad.torch.Adagrad([{"params": [good]}, {"params": [bad], **options}])
    good.grad, bad.grad = torch.ones(2), make_grad()
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(error, match=match):
        opt.step()
    assert torch.equal(good.detach(), torch.ones(2)) and torch.equal(bad.detach(), torch.ones(3, 4))
    after = opt.state_dict()
    for key in before["state"]:
        assert torch.equal(after["state"][key]["sum"], before["state"][key]["sum"])
        assert after["state"][key]["step"].item() == before["state"][key]["step"].item() == 0


def test_load_state_dict_refuses_a_mismatch_and_keeps_its_state() -> None:
    w = torch.nn.Parameter(torch.ones(3))
    opt = adagrad.torch.Adagrad([w])
    w.grad = torch.ones(3)
    opt.step()
    other = adagrad.torch.Adagrad([torch.nn.Parameter(torch.ones(4))])
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(other.state_dict())
    assert opt.state[w]["step"].item() == 1 and opt.state[w]["sum"].tolist() == [1.0, 1.0, 1.0]
    w.grad = torch.ones(3)
    opt.step()
    assert opt.state[w]["step"].item() == 2


@pytest.mark.parametrize("missing", ["eps", "rowwise", "lr_decay"])
def test_a_group_saved_without_an_option_loads_with_the_default(missing: str) -> None:
    """torch's load_state_dict replaces each group by the saved one; options it lacks (an older or
    a hand-made state_dict) take this optimizer's defaults instead of breaking later steps."""
    w = torch.nn.Parameter(torch.ones(3))
    opt = adagrad.torch.Adagrad([w], lr=0.1, eps=1e-3, lr_decay=0.5)
    w.grad = torch.ones(3)
    opt.step()
    saved = opt.state_dict()
    del saved["param_groups"][0][missing]
    fresh = torch.nn.Parameter(torch.ones(3))
    other = adagrad.torch.Adagrad([fresh], lr=0.1, eps=1e-3, lr_decay=0.5)
    other.load_state_dict(saved)
    assert other.param_groups[0][missing] == other.defaults[missing]
    fresh.grad = torch.ones(3)
    other.step()
    assert other.state[fresh]["step"].item() == 2


def test_importing_adagrad_never_needs_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import adagrad, numpy as np\n"
        "w = np.zeros(2, np.float32); adagrad.Adagrad([w]).step([np.ones(2, np.float32)])\n"
        "try:\n    import adagrad.torch\nexcept ImportError:\n    print('no torch: ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "no torch: ok"
