"""adagrad.torch.step_in_backward and step_after_allreduce against optimizer.step() after backward,
bit for bit: every rule's drop-in, dense and sparse grads, 16-bit params with stochastic rounding
(whose streams number the params), two param groups, an LR scheduler, checkpoints both ways; and
what they refuse. DistributedDataParallel runs here in a world of one gloo process (its 2-process
runs are in tests/test_torch_distributed.py)."""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable

import pytest

torch = pytest.importorskip("torch")
import adagrad.rules  # noqa: E402
import adagrad.torch  # noqa: E402  (needs torch)

dist = torch.distributed

# Each drop-in with options beside lr that reach its update.
CLASSES = [
    pytest.param(
        adagrad.torch.Adagrad, {"lr_decay": 0.01, "weight_decay": 0.01, "initial_accumulator_value": 0.1}, id="adagrad"
    ),
    pytest.param(adagrad.torch.ProximalAdagrad, {"l1": 0.01, "l2": 0.02}, id="proximal"),
    pytest.param(adagrad.torch.AdagradDA, {"l1": 0.01, "l2": 0.02}, id="da"),
    pytest.param(adagrad.torch.AdagradDecay, {"accumulator_decay_step": 2, "accumulator_decay_rate": 0.5}, id="decay"),
    pytest.param(adagrad.torch.Ftrl, {"l1": 0.01, "l2": 0.02, "l2_shrinkage": 0.01, "beta": 0.1}, id="ftrl"),
]  # fmt: skip
# Param dtype, and the group options that go with it: stochastic rounding draws from each param's
# own stream, numbered by its place among all params, so a wrong number changes the bits.
DTYPES = [
    pytest.param(torch.float32, {}, id="f32"),
    pytest.param(torch.float64, {}, id="f64"),
    pytest.param(torch.bfloat16, {"stochastic_rounding": True, "seed": 7}, id="bf16-sr"),
]
STEPS = 3


pytestmark = pytest.mark.usefixtures("unchecked_sparse_tensors")


def test_every_rule_has_a_case() -> None:
    assert {p.values[0].RULE.name for p in CLASSES} == set(adagrad.rules.RULES)


class Net(torch.nn.Module):
    """A sparse embedding table (its own param group, another lr) and two dense layers."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Embedding(12, 4, sparse=True, dtype=dtype)
        self.hidden = torch.nn.Linear(8, 6, dtype=dtype)
        self.out = torch.nn.Linear(6, 1, dtype=dtype)

    def forward(self, ids: Any) -> Any:
        return self.out(torch.tanh(self.hidden(self.table(ids).flatten(1)))).squeeze(1)


def loss(model: Net, step: int) -> Any:
    g = torch.Generator().manual_seed(step)
    ids, y = torch.randint(0, 12, (16, 2), generator=g), torch.randn(16, generator=g)
    return (model(ids).float() - y).square().mean()


def make(cls: type, options: dict[str, Any], dtype: torch.dtype, group_options: dict[str, Any]) -> tuple[Net, Any]:
    model = Net(dtype)
    dense = [*model.hidden.parameters(), *model.out.parameters()]
    groups = [{"params": [model.table.weight], "lr": 0.02}, {"params": dense}]
    return model, cls(groups, **{"lr": 0.05, "clip_value": 0.5, **options, **group_options})


def train(model: Net, opt: Any, steps: range, in_backward: bool) -> None:
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for step in steps:
        opt.zero_grad()
        loss(model, step).backward()
        if not in_backward:
            opt.step()
        scheduler.step()


def bits(t: Any) -> Any:
    return t.detach().view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def assert_same_training(model: Net, opt: Any, expected_model: Net, expected_opt: Any) -> None:
    for p, q in zip(model.parameters(), expected_model.parameters()):
        assert torch.equal(bits(p), bits(q))
        state, expected = opt.state[p], expected_opt.state[q]
        assert sorted(state) == sorted(expected)
        for name in expected:
            assert torch.equal(bits(state[name]), bits(expected[name])), name


@pytest.mark.parametrize(("dtype", "group_options"), DTYPES)
@pytest.mark.parametrize(("cls", "options"), CLASSES)
def test_step_in_backward_equals_step(cls: type, options: dict[str, Any], dtype: Any, group_options: Any) -> None:
    if dtype == torch.bfloat16:
        pytest.importorskip("ml_dtypes")
    model, opt = make(cls, options, dtype, group_options)
    expected_model, expected_opt = make(cls, options, dtype, group_options)
    hooks = adagrad.torch.step_in_backward(opt)
    train(model, opt, range(STEPS), in_backward=True)
    train(expected_model, expected_opt, range(STEPS), in_backward=False)
    assert_same_training(model, opt, expected_model, expected_opt)
    assert all(p.grad is None for p in model.parameters())  # each freed once its param stepped
    assert int(opt.state[model.out.bias]["step"]) == STEPS
    hooks.remove()
    train(model, opt, range(STEPS, STEPS + 1), in_backward=False)  # step() again, once the hooks are off
    train(expected_model, expected_opt, range(STEPS, STEPS + 1), in_backward=False)
    assert_same_training(model, opt, expected_model, expected_opt)


@pytest.mark.parametrize("direction", ["into-hooks", "out-of-hooks"])
def test_checkpoints_cross_between_step_and_step_in_backward(direction: str) -> None:
    """A state_dict saved by either loads into the other (replacing the states the hooks hold) and
    training continues with the bits of step() all along."""
    cls, options = adagrad.torch.Ftrl, {"l1": 0.01}
    expected_model, expected_opt = make(cls, options, torch.float32, {})
    train(expected_model, expected_opt, range(4), in_backward=False)
    first, second = make(cls, options, torch.float32, {}), make(cls, options, torch.float32, {})
    hooks = adagrad.torch.step_in_backward(second[1] if direction == "into-hooks" else first[1])
    train(*first, range(2), in_backward=direction == "out-of-hooks")
    second[0].load_state_dict(first[0].state_dict())
    second[1].load_state_dict(first[1].state_dict())
    train(*second, range(2, 4), in_backward=direction == "into-hooks")
    assert_same_training(*second, expected_model, expected_opt)
    hooks.remove()


def plain_step(model: Net, opt: Any) -> None:
    loss(model, 0).backward()
    opt.step()


def scaler_step(model: Net, opt: Any) -> None:
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(loss(model, 0)).backward()
    scaler.step(opt)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        pytest.param(plain_step, r"optimizer\.step\(\) on an optimizer that steps in backward", id="step"),
        pytest.param(scaler_step, r"GradScaler cannot be used with step_in_backward", id="grad-scaler"),
    ],
)
def test_step_after_step_in_backward_is_refused(call: Callable[[Net, Any], None], match: str) -> None:
    model, opt = make(adagrad.torch.Adagrad, {}, torch.float32, {})
    adagrad.torch.step_in_backward(opt)
    with pytest.raises(RuntimeError, match=match):
        call(model, opt)
    opt.zero_grad()  # harmless: the grads are None already


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        pytest.param(
            {"clip_value": None, "max_grad_norm": 1.0},
            ValueError,
            "cannot clip the norm of all grads",
            id="max-grad-norm",
        ),
        pytest.param({"nonfinite": "skip"}, ValueError, "cannot honour nonfinite='skip'", id="skip"),
        pytest.param({"nonfinite": "raise"}, ValueError, "cannot honour nonfinite='raise'", id="raise"),
    ],
)
def test_options_that_read_all_grads_are_refused(options: dict[str, Any], error: type, match: str) -> None:
    """At the call, and at the first backward once set as attributes (nothing written)."""
    model, opt = make(adagrad.torch.Adagrad, options, torch.float32, {})
    with pytest.raises(error, match=match):
        adagrad.torch.step_in_backward(opt)
    model, opt = make(adagrad.torch.Adagrad, {}, torch.float32, {})
    adagrad.torch.step_in_backward(opt)
    before = [p.detach().clone() for p in model.parameters()]
    for name, value in options.items():
        setattr(opt, name, value)
    with pytest.raises(error, match=match):
        loss(model, 0).backward()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


def test_refused_optimizers() -> None:
    with pytest.raises(TypeError, match=r"takes an adagrad\.torch optimizer, got Adagrad"):
        adagrad.torch.step_in_backward(torch.optim.Adagrad([torch.nn.Parameter(torch.ones(2))]))
    complex_param = torch.nn.Parameter(torch.ones(2, dtype=torch.complex64))
    with pytest.raises(TypeError, match=r"a param of dtype torch\.complex64 on cpu is updated by torch ops"):
        adagrad.torch.step_in_backward(adagrad.torch.Adagrad([complex_param]))
    opt = adagrad.torch.Adagrad([torch.nn.Parameter(torch.ones(2))])
    hooks = adagrad.torch.step_in_backward(opt)
    with pytest.raises(RuntimeError, match="already steps in a hook; a second would step its params twice"):
        adagrad.torch.step_in_backward(opt)
    hooks.remove()
    adagrad.torch.step_in_backward(opt).remove()  # free again


# -- DistributedDataParallel, a world of one process ------------------------------------------------


@pytest.fixture(scope="module")
def world_of_one() -> Any:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available")
    if dist.is_initialized():
        pytest.skip("a process group is already initialized")
    with tempfile.TemporaryDirectory() as folder:
        dist.init_process_group("gloo", init_method=f"file://{os.path.join(folder, 'store')}", rank=0, world_size=1)
        try:
            yield
        finally:
            dist.destroy_process_group()


def ddp_training(cls: type, options: dict[str, Any], overlap: bool, accumulate: bool) -> tuple[Net, Any]:
    """Three steps of DDP (small buckets); ``accumulate``: the second step over two backward passes,
    the first under no_sync()."""
    model, opt = make(cls, options, torch.float64, {})
    ddp = torch.nn.parallel.DistributedDataParallel(model, bucket_cap_mb=1e-4)
    if overlap:
        adagrad.torch.step_after_allreduce(ddp, opt)
    for step in range(STEPS):
        opt.zero_grad()
        if accumulate and step == 1:
            with ddp.no_sync():
                loss(ddp, 10 + step).backward()
        loss(ddp, step).backward()
        if not overlap:
            opt.step()
    return model, opt


@pytest.mark.parametrize("accumulate", [False, True], ids=["", "no-sync"])
@pytest.mark.parametrize(("cls", "options"), CLASSES)
def test_step_after_allreduce_equals_step(
    world_of_one: None, cls: type, options: dict[str, Any], accumulate: bool
) -> None:
    model, opt = ddp_training(cls, options, overlap=True, accumulate=accumulate)
    expected_model, expected_opt = ddp_training(cls, options, overlap=False, accumulate=accumulate)
    assert_same_training(model, opt, expected_model, expected_opt)
    for p, q in zip(model.parameters(), expected_model.parameters()):
        assert torch.equal(p.grad.to_dense(), q.grad.to_dense())  # the averaged grads, left as DDP leaves them


def make_ddp(**ddp_options: Any) -> tuple[Any, Any]:
    model, opt = make(adagrad.torch.Adagrad, {}, torch.float32, {})
    return torch.nn.parallel.DistributedDataParallel(model, **ddp_options), opt


@pytest.mark.parametrize(
    ("ddp_options", "error", "match"),
    [
        pytest.param({"find_unused_parameters": True}, ValueError, r"find_unused_parameters=True", id="unused"),
        pytest.param({"static_graph": True}, ValueError, r"static_graph=True", id="static-graph"),
    ],
)
def test_ddp_options_refused(world_of_one: None, ddp_options: dict[str, Any], error: type, match: str) -> None:
    ddp, opt = make_ddp(**ddp_options)
    with pytest.raises(error, match=match):
        adagrad.torch.step_after_allreduce(ddp, opt)
    adagrad.torch.step_in_backward(opt).remove()  # the refusal left the optimizer unbound


def test_gradient_as_bucket_view_needs_a_power_of_two_world(world_of_one: None, monkeypatch: Any) -> None:
    ddp, opt = make_ddp(gradient_as_bucket_view=True)
    monkeypatch.setattr(adagrad.torch.overlap.dist, "get_world_size", lambda group=None: 3)
    with pytest.raises(ValueError, match=r"needs a world size that is a power of two \(this one is 3\)"):
        adagrad.torch.step_after_allreduce(ddp, opt)


def test_ddp_refusals(world_of_one: None) -> None:
    ddp, opt = make_ddp()
    with pytest.raises(TypeError, match="takes a DistributedDataParallel model, got Net"):
        adagrad.torch.step_after_allreduce(ddp.module, opt)
    with pytest.raises(TypeError, match=r"takes an adagrad\.torch optimizer, got SGD"):
        adagrad.torch.step_after_allreduce(ddp, torch.optim.SGD(ddp.parameters(), lr=0.1))
    stranger = adagrad.torch.Adagrad([*ddp.parameters(), torch.nn.Parameter(torch.ones(2))])
    with pytest.raises(ValueError, match=r"params\[5\] of the optimizer is not a param DDP all-reduces"):
        adagrad.torch.step_after_allreduce(ddp, stranger)
    adagrad.torch.step_after_allreduce(ddp, opt)
    with pytest.raises(RuntimeError, match="already steps in a hook"):
        adagrad.torch.step_after_allreduce(ddp, opt)
    loss(ddp, 0).backward()
    with pytest.raises(RuntimeError, match=r"optimizer\.step\(\) on an optimizer that steps in backward"):
        opt.step()
    opt.zero_grad()
    opt.max_grad_norm = 1.0  # reaches the hook, which fails the backward pass with its message
    with pytest.raises(ValueError, match="cannot clip the norm of all grads together"):
        loss(ddp, 1).backward()
