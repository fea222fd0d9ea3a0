"""float16 and bfloat16 params in adagrad.torch.Adagrad: native, zero-copy, and bit for bit
``torch.optim.Adagrad(fused=True)`` (its vector body's 16-bit constants and its scalar tail's
float32 ones included) over every optim input of torch's own OptimizerInfo database; float32
master state; 16-bit sparse grads on torch's own path."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("ml_dtypes")
pytest.importorskip("expecttest")
common_optimizers = pytest.importorskip("torch.testing._internal.common_optimizers")

import adagrad  # noqa: E402
import adagrad.torch  # noqa: E402
from adagrad.torch import torch_vector_width  # noqa: E402
from adagrad.torch.grads import numpy_view  # noqa: E402
from test_torch_optim_db import INPUTS, models  # noqa: E402

pytestmark = pytest.mark.usefixtures("unchecked_sparse_tensors")

DTYPES = [pytest.param(torch.float16, id="float16"), pytest.param(torch.bfloat16, id="bfloat16")]


def same_bits(a: torch.Tensor, b: torch.Tensor) -> None:
    """Bitwise equality of two 16-bit tensors (NaNs of any payload equal)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    x, y = a.detach().reshape(-1), b.detach().reshape(-1)
    differ = (x.view(torch.int16) != y.view(torch.int16)) & ~(x.isnan() & y.isnan())
    if differ.any():
        where = differ.nonzero().flatten()[:5]
        raise AssertionError(
            f"{int(differ.sum())} of {x.numel()} differ, first at {where.tolist()}: {x[where]} vs {y[where]}"
        )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optim_input", INPUTS, ids=[i.desc for i in INPUTS])
def test_every_optim_input_is_torch_fused_bit_for_bit(optim_input: Any, dtype: Any) -> None:
    """A conv + linear model with a 0-d param, sizes that leave torch's vector tails (135, 5,
    407, 11 elements), trained 5 steps in the 16-bit dtype by both optimizers."""
    ours_model, theirs_model = models(dtype)
    kwargs = optim_input.kwargs
    ours = adagrad.torch.Adagrad(ours_model.parameters(), **copy.deepcopy(kwargs))
    theirs = torch.optim.Adagrad(theirs_model.parameters(), fused=True, **copy.deepcopy(kwargs))
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        x = torch.randn(4, 3, 8, 8, generator=gen).to(dtype)
        for model, opt in ((ours_model, ours), (theirs_model, theirs)):
            opt.zero_grad()
            model(x).backward()
            opt.step()
        for p, q in zip(ours_model.parameters(), theirs_model.parameters()):
            same_bits(p, q)
            same_bits(ours.state[p]["sum"], theirs.state[q]["sum"])
    assert not ours._plans[0].fallback  # every param took the native step


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optim_input", INPUTS, ids=[i.desc for i in INPUTS])
def test_every_optim_input_on_every_isa_and_thread_count(optim_input: Any, dtype: Any, isa: str, threads: int) -> None:
    """77,100 elements: split over the threads, with a tail of 77,100 % 16 = 12."""
    torch.manual_seed(0)
    ours_p = torch.nn.Parameter(torch.randn(300, 257).to(dtype))
    theirs_p = torch.nn.Parameter(ours_p.detach().clone())
    ours = adagrad.torch.Adagrad([ours_p], **copy.deepcopy(optim_input.kwargs))
    theirs = torch.optim.Adagrad([theirs_p], fused=True, **copy.deepcopy(optim_input.kwargs))
    gen = torch.Generator().manual_seed(2)
    for _ in range(3):
        grad = torch.randn(300, 257, generator=gen).to(dtype)
        ours_p.grad, theirs_p.grad = grad.clone(), grad.clone()
        ours.step()
        theirs.step()
    same_bits(ours_p, theirs_p)
    same_bits(ours.state[ours_p]["sum"], theirs.state[theirs_p]["sum"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("capability", ["avx2", "default"])
def test_torch_s_other_kernels_have_the_same_width(dtype: Any, capability: str) -> None:
    """torch forced to another ISA (ATEN_CPU_CAPABILITY): the same 16-element constants
    boundary, so the same bits as ours (one probe of 16k + 7 elements that tells the widths apart)."""
    if torch_vector_width() != 16:
        pytest.skip("x86 only")
    probe = f"""
import torch
torch.manual_seed(0)
p = torch.nn.Parameter(torch.randn(16 * 40 + 7).to(torch.{str(dtype).split(".")[1]}))
opt = torch.optim.Adagrad([p], lr=0.1, weight_decay=0.1, fused=True)
for _ in range(3):
    p.grad = torch.randn(p.shape).to(p.dtype)
    opt.step()
print(torch.backends.cpu.get_cpu_capability(), p.detach().view(torch.int16).tolist())
"""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    reported, bits = out.split(" ", 1)
    assert reported == capability.upper()
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(16 * 40 + 7).to(dtype))
    ours = adagrad.torch.Adagrad([w], lr=0.1, weight_decay=0.1)
    for _ in range(3):
        w.grad = torch.randn(w.shape).to(dtype)
        ours.step()
    assert w.detach().view(torch.int16).tolist() == eval(bits)


@pytest.mark.parametrize("dtype", DTYPES)
def test_float32_state_is_the_numpy_optimizer_bit_for_bit(dtype: Any) -> None:
    """state_dtype='float32': float32 sums (torch has no such option), the NumPy API's contract
    (constants rounded once, to float32), so adagrad.Adagrad over the same values is the oracle."""
    torch.manual_seed(4)
    w = torch.nn.Parameter(torch.randn(77, 13).to(dtype))
    twin = numpy_view(w.detach().clone())
    ours = adagrad.torch.Adagrad([w], lr=0.1, weight_decay=0.01, state_dtype="float32")
    numpy_opt = adagrad.Adagrad([twin], lr=0.1, weight_decay=0.01, state_dtype="float32")
    for _ in range(4):
        w.grad = torch.randn(77, 13).to(dtype)
        numpy_opt.step([numpy_view(w.grad).copy()])
        ours.step()
    assert ours.state[w]["sum"].dtype == torch.float32
    np.testing.assert_array_equal(numpy_view(w.detach()).view(np.uint16), twin.view(np.uint16))
    np.testing.assert_array_equal(ours.state[w]["sum"].numpy(), numpy_opt.state[0]["sum"])
    saved = ours.state_dict()
    again = adagrad.torch.Adagrad([torch.nn.Parameter(w.detach().clone())], lr=0.1, state_dtype="float32")
    again.load_state_dict(saved)
    assert torch.equal(next(iter(again.state.values()))["sum"], ours.state[w]["sum"])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rowwise", [False, True], ids=["elementwise", "rowwise"])
def test_sparse_grads_of_16bit_params_are_native(dtype: Any, rowwise: bool) -> None:
    """A 16-bit nn.Embedding(sparse=True) in the native sparse step: adagrad.Adagrad over the same
    rows (repeats summed in float32, in input order) is the oracle, bit for bit."""
    torch.manual_seed(5)
    emb = torch.nn.Embedding(20, 6, sparse=True).to(dtype)
    twin = numpy_view(emb.weight.detach().clone())
    ours = adagrad.torch.Adagrad(emb.parameters(), lr=0.1, rowwise=rowwise)
    numpy_opt = adagrad.Adagrad([twin], lr=0.1, rowwise=rowwise)
    for step in range(3):
        ours.zero_grad()
        emb(torch.tensor([1, 5, 5, 19, step])).float().square().sum().backward()
        g = emb.weight.grad
        numpy_opt.step([adagrad.SparseGrad(g._indices()[0].numpy(), numpy_view(g._values()).copy())])
        ours.step()
    np.testing.assert_array_equal(numpy_view(emb.weight.detach()).view(np.uint16), twin.view(np.uint16))
    assert not ours._plans[0].fallback


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_grads_with_maximize_are_native(dtype: Any) -> None:
    """maximize is a switch of the one sparse kernel for 16-bit tables too: the sparse params take
    the native step (adagrad.Adagrad over the same rows is the oracle, bit for bit), the dense ones
    stay torch fused's bits."""
    torch.manual_seed(5)
    emb = torch.nn.Embedding(20, 6, sparse=True).to(dtype)
    twin = numpy_view(emb.weight.detach().clone())
    dense = torch.nn.Parameter(torch.randn(40).to(dtype))
    dense_twin = torch.nn.Parameter(dense.detach().clone())
    ours = adagrad.torch.Adagrad([*emb.parameters(), dense], lr=0.1, maximize=True)
    numpy_opt = adagrad.Adagrad([twin], lr=0.1, maximize=True)
    theirs_dense = torch.optim.Adagrad([dense_twin], lr=0.1, fused=True, maximize=True)
    for step in range(3):
        ours.zero_grad()
        emb(torch.tensor([1, 5, 5, 19, step])).float().square().sum().backward()
        g = emb.weight.grad
        numpy_opt.step([adagrad.SparseGrad(g._indices()[0].numpy(), numpy_view(g._values()).copy())])
        grad = torch.randn(40).to(dtype)
        dense.grad, dense_twin.grad = grad.clone(), grad.clone()
        ours.step()
        theirs_dense.step()
    np.testing.assert_array_equal(numpy_view(emb.weight.detach()).view(np.uint16), twin.view(np.uint16))
    same_bits(dense, dense_twin)
    assert not ours._plans[0].fallback


def test_bfloat16_training_end_to_end_learns() -> None:
    """A small bfloat16 model trained to fit a target: the loss falls, and the params stay the
    fused optimizer's bits all along."""
    torch.manual_seed(6)
    model = torch.nn.Sequential(torch.nn.Linear(8, 33), torch.nn.Tanh(), torch.nn.Linear(33, 1)).to(torch.bfloat16)
    twin = copy.deepcopy(model)
    ours = adagrad.torch.Adagrad(model.parameters(), lr=0.05)
    theirs = torch.optim.Adagrad(twin.parameters(), lr=0.05, fused=True)
    x = torch.randn(256, 8).to(torch.bfloat16)
    y = (x.float()[:, :1] * 2 - x.float()[:, 1:2]).to(torch.bfloat16)
    losses = []
    for _ in range(60):
        for m, opt in ((model, ours), (twin, theirs)):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(m(x), y)
            loss.backward()
            opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.25 * losses[0]
    for p, q in zip(model.parameters(), twin.parameters()):
        same_bits(p, q)
