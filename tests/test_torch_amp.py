"""torch.amp.GradScaler with adagrad.torch.Adagrad as with torch's fused Adagrad: the optimizer
takes the scale and the inf check itself (``_step_supports_amp_scaling``), divides inside the
update and writes the unscaled grads back; bit for bit torch fused in float32, float16 and
bfloat16, with and without ``scaler.unscale_`` first, through steps GradScaler skips."""

from __future__ import annotations

import copy
from typing import Any

import pytest

torch = pytest.importorskip("torch")

import adagrad.torch  # noqa: E402

DTYPES = [
    pytest.param(torch.float32, id="float32"),
    pytest.param(torch.float16, id="float16"),
    pytest.param(torch.bfloat16, id="bfloat16"),
]


def same_bits(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    x, y = a.detach().reshape(-1), b.detach().reshape(-1)
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}[x.element_size()]
    differ = (x.view(ints) != y.view(ints)) & ~(x.isnan() & y.isnan())
    assert not differ.any(), f"{int(differ.sum())} of {x.numel()} differ"


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(13, 37)
        self.fc2 = torch.nn.Linear(37, 3)

    def forward(self, x: Any) -> Any:
        return self.fc2(torch.tanh(self.fc1(x))).square().mean()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("unscale_first", [False, True], ids=["fused-unscale", "unscale_-first"])
@pytest.mark.parametrize("options", [{"lr": 0.05}, {"lr": 0.05, "weight_decay": 0.01, "maximize": True}])
def test_grad_scaler_steps_are_torch_fused_bit_for_bit(
    dtype: Any, unscale_first: bool, options: dict[str, Any]
) -> None:
    if unscale_first and dtype == torch.float16:
        pytest.skip("GradScaler.unscale_ refuses float16 grads, whatever the optimizer (torch's rule)")
    torch.manual_seed(0)
    ours_model = Net().to(dtype)
    theirs_model = copy.deepcopy(ours_model)
    ours = adagrad.torch.Adagrad(ours_model.parameters(), **options)
    theirs = torch.optim.Adagrad(theirs_model.parameters(), fused=True, **options)
    scalers = [torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=2) for _ in range(2)]
    gen = torch.Generator().manual_seed(1)
    for step in range(8):
        x = torch.randn(16, 13, generator=gen).to(dtype)
        if step == 3:
            x[0, 0] = float("inf")  # an inf loss: GradScaler skips this step and halves its scale
        for model, opt, scaler in ((ours_model, ours, scalers[0]), (theirs_model, theirs, scalers[1])):
            opt.zero_grad()
            scaler.scale(model(x)).backward()
            if unscale_first:
                scaler.unscale_(opt)
            scaler.step(opt)
            scaler.update()
        assert scalers[0].get_scale() == scalers[1].get_scale()
        for p, q in zip(ours_model.parameters(), theirs_model.parameters()):
            same_bits(p, q)
            same_bits(p.grad, q.grad)  # unscaled, written back
            same_bits(ours.state[p]["sum"], theirs.state[q]["sum"])
            assert ours.state[p]["step"].item() == theirs.state[q]["step"].item()
    assert ours.state[next(ours_model.parameters())]["step"].item() == 7  # one step skipped
    assert scalers[0].get_scale() < 2.0**12 * 2**3  # the skip halved the scale once


@pytest.mark.parametrize("maximize", [False, True], ids=["descend", "maximize"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_sparse_grads_under_grad_scaler_are_the_unscaled_step(dtype: Any, maximize: bool) -> None:
    """A native sparse step under GradScaler (a power-of-two scale: exact) equals the same step
    given the unscaled grads, and leaves the unscaled grads in p.grad; 16-bit tables with maximize
    too (once torch's own sparse path, now a switch of the native kernel)."""
    checks = torch.sparse.check_sparse_tensor_invariants
    was_enabled = checks.is_enabled()
    checks.disable()
    try:
        torch.manual_seed(6)
        emb = torch.nn.Embedding(30, 8, sparse=True).to(dtype)
        twin = copy.deepcopy(emb)
        ours = adagrad.torch.Adagrad(emb.parameters(), lr=0.1, maximize=maximize)
        plain = adagrad.torch.Adagrad(twin.parameters(), lr=0.1, maximize=maximize)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**5)
        for step in range(3):
            ids = torch.tensor([2, 7, 7, 29, step])
            ours.zero_grad()
            scaler.scale(emb(ids).float().square().sum()).backward()
            scaler.step(ours)
            scaler.update()
            plain.zero_grad()
            twin(ids).float().square().sum().backward()
            if dtype == torch.float16:  # GradScaler coalesces float16 sparse grads (its inf check does)
                twin.weight.grad = twin.weight.grad.coalesce()
            plain.step()
            assert torch.equal(emb.weight.grad._values(), twin.weight.grad._values())
        assert torch.equal(emb.weight.detach(), twin.weight.detach())
    finally:
        if was_enabled:
            checks.enable()


def test_autocast_bfloat16_training_is_torch_fused_bit_for_bit() -> None:
    """torch.autocast("cpu", bfloat16): float32 params, bfloat16 compute; the loss falls and the
    params stay torch fused's bits at every step."""
    torch.manual_seed(7)
    model = Net()
    twin = copy.deepcopy(model)
    ours = adagrad.torch.Adagrad(model.parameters(), lr=0.05)
    theirs = torch.optim.Adagrad(twin.parameters(), lr=0.05, fused=True)
    x = torch.randn(64, 13)
    losses = []
    for _ in range(30):
        for m, opt in ((model, ours), (twin, theirs)):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = m(x)
            loss.backward()
            opt.step()
        losses.append(float(loss.detach()))
        for p, q in zip(model.parameters(), twin.parameters()):
            same_bits(p, q)
    assert losses[-1] < 0.5 * losses[0]
