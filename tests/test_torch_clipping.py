"""adagrad.torch.Adagrad(max_grad_norm=...) against torch's pair clip_grad_norm_ + fused Adagrad.

Our norm is summed in float64 in a fixed order, torch's in its own: one step from the same state
gives torch's bits whenever the two norms round to the same float32 (the coefficient is computed
with torch's arithmetic), and otherwise differs by that rounding alone. The inf-norm and
clip_value involve no summation: there the two agree bit for bit always.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import adagrad.torch  # noqa: E402

DTYPES = [torch.float32, torch.float64]


def conv_model(dtype: Any) -> Any:
    """Conv + linear, sizes that leave vector tails (and a bias of 3)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 5, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(5 * 6 * 6, 3)
    ).to(dtype)


def set_grads(model: Any, seed: int, scale: float) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype) * scale


def one_step_each(dtype: Any, seed: int, ours_options: dict[str, Any], clip: Any) -> tuple[Any, Any, float | None]:
    """One step from the same params and state: ours fused, torch's clip then fused step."""
    ours_model, torch_model = conv_model(dtype), conv_model(dtype)
    ours = adagrad.torch.Adagrad(ours_model.parameters(), lr=0.1, **ours_options)
    theirs = torch.optim.Adagrad(torch_model.parameters(), lr=0.1, fused=True)
    scale = [0.01, 1.0, 100.0][seed % 3]  # some steps clipped, some not
    for model in (ours_model, torch_model):
        set_grads(model, seed, scale)
    torch_norm = clip(torch_model.parameters())
    ours.step()
    theirs.step()
    return ours_model, torch_model, torch_norm if torch_norm is None else float(torch_norm), ours.last_grad_norm


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_max_grad_norm_equals_clip_grad_norm_then_fused(dtype: Any) -> None:
    bitwise = close = 0
    for seed in range(24):
        ours, theirs, torch_norm, our_norm = one_step_each(
            dtype, seed, {"max_grad_norm": 1.0}, lambda params: torch.nn.utils.clip_grad_norm_(params, 1.0)
        )
        assert our_norm == pytest.approx(torch_norm, rel=1e-6 if dtype == torch.float32 else 1e-13)
        same = all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))
        norms_agree = torch.tensor(our_norm, dtype=dtype).item() == torch_norm
        if norms_agree:
            assert same, f"seed {seed}: the norms agree in {dtype} but the steps differ"
            bitwise += 1
        else:
            for a, b in zip(ours.parameters(), theirs.parameters()):
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
            close += 1
    print(f"{dtype}: {bitwise} steps bitwise (norms agree), {close} within rounding")
    # Every case where the norms agree was checked bitwise above; some must, or nothing was.
    assert bitwise >= 4, f"only {bitwise} of 24 norms agreed to the last bit"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_inf_norm_and_clip_value_are_bitwise_torch(dtype: Any) -> None:
    for seed in range(6):
        ours, theirs, torch_norm, our_norm = one_step_each(
            dtype,
            seed,
            {"max_grad_norm": 0.5, "norm_type": "inf"},
            lambda params: torch.nn.utils.clip_grad_norm_(params, 0.5, norm_type=math.inf),
        )
        assert our_norm == torch_norm
        assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))
        ours, theirs, _, _ = one_step_each(
            dtype, seed, {"clip_value": 0.3}, lambda params: torch.nn.utils.clip_grad_value_(params, 0.3)
        )
        assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))


def test_training_loop_with_clipping_tracks_torch() -> None:
    """30 real steps: the two runs stay within float32 rounding of each other."""
    ours_model, torch_model = conv_model(torch.float32), conv_model(torch.float32)
    ours = adagrad.torch.Adagrad(ours_model.parameters(), lr=0.05, max_grad_norm=0.5)
    theirs = torch.optim.Adagrad(torch_model.parameters(), lr=0.05, fused=True)
    torch.manual_seed(1)
    x, y = torch.randn(16, 3, 8, 8), torch.randn(16, 3)
    for _ in range(30):
        for model, opt in ((ours_model, ours), (torch_model, theirs)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
        torch_norm = torch.nn.utils.clip_grad_norm_(torch_model.parameters(), 0.5)
        ours.step()
        theirs.step()
        assert ours.last_grad_norm == pytest.approx(float(torch_norm), rel=1e-4)
    for a, b in zip(ours_model.parameters(), torch_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_clip_norm_per_tensor_is_keras_clipnorm() -> None:
    model = conv_model(torch.float64)
    expected = copy.deepcopy(model)
    opt = adagrad.torch.Adagrad(model.parameters(), lr=0.1, clip_norm_per_tensor=0.5)
    set_grads(model, 0, 1.0)
    grads = [p.grad.clone() for p in model.parameters()]
    opt.step()
    for p, g, before in zip(model.parameters(), grads, expected.parameters()):
        clipped = g * 0.5 / torch.clamp(torch.linalg.vector_norm(g), min=0.5)  # Keras's formula
        torch.testing.assert_close(p, before - 0.1 * clipped / (clipped.abs() + 1e-10), rtol=1e-12, atol=1e-12)
        assert torch.equal(p.grad, g)  # grads are never modified


def test_sparse_grads_take_part_with_their_values() -> None:
    emb = torch.nn.Embedding(50, 8, sparse=True, dtype=torch.float64)
    dense = torch.nn.Linear(8, 1, dtype=torch.float64)
    opt = adagrad.torch.Adagrad([*emb.parameters(), *dense.parameters()], max_grad_norm=1e-3)
    ids = torch.tensor([3, 9, 27])  # unique rows: the norm of the dense-equivalent gradient
    dense(emb(ids)).sum().backward()
    expected = math.sqrt(
        sum(
            float((p.grad.to_dense() if p.grad.is_sparse else p.grad).square().sum())
            for p in [emb.weight, *dense.parameters()]
        )
    )
    opt.step()
    assert opt.last_grad_norm == pytest.approx(expected, rel=1e-14)


def test_no_clip_is_no_change() -> None:
    ours_model, torch_model = conv_model(torch.float32), conv_model(torch.float32)
    ours = adagrad.torch.Adagrad(ours_model.parameters(), lr=0.1)
    theirs = torch.optim.Adagrad(torch_model.parameters(), lr=0.1, fused=True)
    for seed in range(3):
        for model in (ours_model, torch_model):
            set_grads(model, seed, 1.0)
        ours.step()
        theirs.step()
    assert ours.last_grad_norm is None
    assert all(torch.equal(a, b) for a, b in zip(ours_model.parameters(), torch_model.parameters()))


def test_a_param_torch_steps_itself_cannot_be_clipped() -> None:
    w = torch.nn.Parameter(torch.zeros(4, dtype=torch.complex64))
    opt = adagrad.torch.Adagrad([w], max_grad_norm=1.0)
    w.grad = torch.ones(4, dtype=torch.complex64)
    with pytest.raises(ValueError, match=r"a clip option is set, and a param of dtype torch\.complex64"):
        opt.step()
    assert (w == 0).all()


@pytest.mark.parametrize("clip", [{"max_grad_norm": 1.0}, {"clip_value": 0.5}], ids=["norm", "value"])
def test_16bit_params_take_the_clip(clip: dict[str, float]) -> None:
    """A bfloat16 param clipped in the native step: adagrad.Adagrad with the same clip over the same
    values is the oracle, bit for bit (the norm of the widened grads)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    w = torch.nn.Parameter(torch.zeros(4, dtype=torch.bfloat16))
    twin = np.zeros(4, ml_dtypes.bfloat16)
    ours = adagrad.torch.Adagrad([w], **clip)
    numpy_opt = adagrad.Adagrad([twin], **clip)
    for _ in range(3):
        w.grad = torch.tensor([3.0, -3.0, 0.25, 1.0], dtype=torch.bfloat16)
        ours.step()
        numpy_opt.step([w.grad.view(torch.int16).numpy().view(ml_dtypes.bfloat16)])
    np.testing.assert_array_equal(w.detach().view(torch.int16).numpy(), twin.view(np.int16))
    assert ours.last_grad_norm == numpy_opt.last_grad_norm


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_grad_norm": -1.0}, "max_grad_norm must be a finite number > 0"),
        ({"max_grad_norm": 1.0, "norm_type": 1.0}, "norm_type must be 2 or inf"),
        ({"clip_value": 1.0, "clip_norm_per_tensor": 1.0}, "at most one of"),
    ],
)
def test_bad_clip_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        adagrad.torch.Adagrad([torch.nn.Parameter(torch.zeros(2))], **options)


def test_pickled_optimizer_keeps_clipping() -> None:
    import pickle

    w = torch.nn.Parameter(torch.zeros(3))
    opt = pickle.loads(pickle.dumps(adagrad.torch.Adagrad([w], max_grad_norm=2.0)))
    assert opt.max_grad_norm == 2.0 and opt.last_grad_norm is None
    np.testing.assert_equal(opt.norm_type, 2.0)
