"""torch's own optimizer test database (``torch.testing._internal.common_optimizers``, shipped in
the torch wheel) run against adagrad.torch.Adagrad: every Adagrad optim input bit for bit against
``torch.optim.Adagrad(fused=True)``, every error input with torch's exception type and message,
and the sparse Rosenbrock case with its schedulers."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")  # torch's test utilities import it
common_optimizers = pytest.importorskip("torch.testing._internal.common_optimizers")

import adagrad.torch  # noqa: E402
from conftest import assert_same_bits  # noqa: E402

INFO = next(o for o in common_optimizers.optim_db if o.optim_cls is torch.optim.Adagrad)
INPUTS = INFO.optim_inputs_func(device="cpu")
ERRORS = INFO.optim_error_inputs_func(device="cpu", dtype=torch.float32)


class Model(torch.nn.Module):
    """A channels_last conv and a linear layer of sizes that leave vector tails (135, 5, 407, 11
    elements), and a 0-d param."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 5, 3)
        self.fc = torch.nn.Linear(37, 11)
        self.scale = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x: Any) -> Any:
        h = self.conv(x).flatten(1)[:, :37]
        return (self.fc(h) * self.scale).square().mean()


def models(dtype: Any) -> tuple[Model, Model]:
    torch.manual_seed(0)
    a = Model().to(dtype).to(memory_format=torch.channels_last)
    return a, copy.deepcopy(a)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("optim_input", INPUTS, ids=[i.desc for i in INPUTS])
def test_every_optim_input_is_torch_fused_bit_for_bit(optim_input: Any, dtype: Any) -> None:
    ours_model, theirs_model = models(dtype)
    kwargs = optim_input.kwargs
    ours = adagrad.torch.Adagrad(ours_model.parameters(), **copy.deepcopy(kwargs))
    theirs = torch.optim.Adagrad(theirs_model.parameters(), fused=True, **copy.deepcopy(kwargs))
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        x = torch.randn(4, 3, 8, 8, generator=gen, dtype=dtype)
        for model, opt in ((ours_model, ours), (theirs_model, theirs)):
            opt.zero_grad()
            model(x).backward()
            opt.step()
        for p, q in zip(ours_model.parameters(), theirs_model.parameters()):
            assert_same_bits(p.detach().numpy(), q.detach().numpy())
            assert_same_bits(ours.state[p]["sum"].numpy(), theirs.state[q]["sum"].numpy())


@pytest.mark.parametrize("optim_input", INPUTS, ids=[i.desc for i in INPUTS])
def test_every_optim_input_on_every_isa_and_thread_count(optim_input: Any, isa: str, threads: int) -> None:
    """Large enough to be split over the threads (the native step's threshold is 32,768 elements)."""
    torch.manual_seed(0)
    ours_p = torch.nn.Parameter(torch.randn(300, 257))
    theirs_p = torch.nn.Parameter(ours_p.detach().clone())
    ours = adagrad.torch.Adagrad([ours_p], **copy.deepcopy(optim_input.kwargs))
    theirs = torch.optim.Adagrad([theirs_p], fused=True, **copy.deepcopy(optim_input.kwargs))
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        grad = torch.randn(300, 257, generator=gen)
        ours_p.grad, theirs_p.grad = grad.clone(), grad.clone()
        ours.step()
        theirs.step()
    assert_same_bits(ours_p.detach().numpy(), theirs_p.detach().numpy())


def error_params(error_input: Any) -> Any:
    params = error_input.optimizer_error_input.params
    return [torch.nn.Parameter(torch.randn(2, 2))] if params is None else params


@pytest.mark.parametrize("error_input", ERRORS, ids=[e.optimizer_error_input.desc for e in ERRORS])
def test_every_error_input_raises_as_torch_does(error_input: Any) -> None:
    kwargs = error_input.optimizer_error_input.kwargs
    if error_input.error_type is UserWarning and "duplicate" in error_input.error_regex:
        # torch warns of a param given twice and updates it twice; ours refuse it (docs/torch.md)
        with pytest.raises(ValueError, match=r"^duplicate param: "):
            adagrad.torch.Adagrad(error_params(error_input), **kwargs)
        return
    if error_input.error_type is UserWarning:
        with pytest.warns(UserWarning, match=error_input.error_regex):
            adagrad.torch.Adagrad(error_params(error_input), **kwargs)
        return
    with pytest.raises(error_input.error_type, match=error_input.error_regex):
        adagrad.torch.Adagrad(error_params(error_input), **kwargs)
    # and torch itself says the same, so the database still describes torch 2.13
    with pytest.raises(error_input.error_type, match=error_input.error_regex), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.optim.Adagrad(error_params(error_input), **kwargs)


def rosenbrock_grad(xy: Any) -> Any:
    x, y = xy
    return torch.stack([-400 * x * (y - x**2) - 2 * (1 - x), 200 * (y - x**2)])


def test_sparse_rosenbrock_with_the_databases_schedulers_follows_torch() -> None:
    """The database's sparse case: a 1-D param whose grads are sparse (one coordinate a step),
    with its options and lr schedulers, against torch's sparse Adagrad (not correctly rounded:
    the sparse tests' tolerance)."""
    torch.sparse.check_sparse_tensor_invariants.disable()  # explicit, as torch asks; indices are valid
    kwargs, scheduler_makers = INFO.metadata_for_sparse
    ours_p = torch.nn.Parameter(torch.tensor([1.5, 1.5], dtype=torch.float64))
    theirs_p = torch.nn.Parameter(ours_p.detach().clone())
    ours, theirs = adagrad.torch.Adagrad([ours_p], **kwargs), torch.optim.Adagrad([theirs_p], **kwargs)
    schedulers = [[make(opt) for make in scheduler_makers] for opt in (ours, theirs)]
    for i in range(300):
        for p, opt, scheds in ((ours_p, ours, schedulers[0]), (theirs_p, theirs, schedulers[1])):
            full = rosenbrock_grad(p.detach())
            p.grad = torch.sparse_coo_tensor(torch.tensor([[i % 2]]), full[i % 2 : i % 2 + 1], (2,))
            opt.step()
            for s in scheds:
                if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    x, y = p.detach()
                    s.step(float((1 - x) ** 2 + 100 * (y - x**2) ** 2))
                else:
                    s.step()
    torch.testing.assert_close(ours_p.detach(), theirs_p.detach(), rtol=1e-9, atol=1e-12)
    assert int(ours.state[ours_p]["step"]) == 300
