"""adagrad.torch.Adagrad where torch users lean on torch's behaviour: state tensors replaced by
hand, sparse grads of every layout torch's Adagrad takes, state_dicts that continue in
torch.optim.Adagrad, and torch.compile."""

from __future__ import annotations

import copy
import warnings
from typing import Any, Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import adagrad  # noqa: E402
import adagrad.torch  # noqa: E402
from conftest import assert_same_bits  # noqa: E402

# torch warns about sparse tensors unless its invariant checks are chosen explicitly; every index
# here is valid by construction.
torch.sparse.check_sparse_tensor_invariants.disable()


def pair(shape: tuple[int, ...], seed: int = 0) -> tuple[Any, Any]:
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(shape, generator=gen)
    return torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())


def same(a: Any, b: Any) -> None:
    assert_same_bits(a.detach().numpy(), b.detach().numpy())


# --- 1. state tensors replaced by hand ------------------------------------------------------------

REPLACEMENTS: dict[str, Callable[[Any, Any], None]] = {
    "sum-zeros": lambda opt, p: opt.state[p].__setitem__("sum", torch.zeros_like(p)),
    "sum-values": lambda opt, p: opt.state[p].__setitem__("sum", torch.full_like(p, 0.25)),
    "step": lambda opt, p: opt.state[p].__setitem__("step", torch.tensor(10.0)),
    "whole-entry": lambda opt, p: opt.state.__setitem__(p, {"step": torch.tensor(3.0), "sum": torch.ones_like(p)}),
}


@pytest.mark.parametrize("replace", REPLACEMENTS)
def test_a_replaced_state_tensor_is_used_as_torch_uses_it(replace: str) -> None:
    """Warm restarts of the accumulator (and steps set by hand) change the next step exactly as
    they change torch's fused one; state_dict() then holds the tensors in use."""
    ours, theirs = pair((7, 5))
    ours_opt = adagrad.torch.Adagrad([ours], lr=0.1, lr_decay=0.05)
    theirs_opt = torch.optim.Adagrad([theirs], lr=0.1, lr_decay=0.05, fused=True)
    gen = torch.Generator().manual_seed(1)
    for step in range(4):
        grad = torch.randn(7, 5, generator=gen)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        if step == 2:
            REPLACEMENTS[replace](ours_opt, ours)
            REPLACEMENTS[replace](theirs_opt, theirs)
        ours_opt.step()
        theirs_opt.step()
        same(ours, theirs)
        same(ours_opt.state[ours]["sum"], theirs_opt.state[theirs]["sum"])
        assert float(ours_opt.state[ours]["step"]) == float(theirs_opt.state[theirs]["step"])
    saved = ours_opt.state_dict()["state"][0]
    assert saved["sum"] is ours_opt.state[ours]["sum"]
    same(saved["sum"], theirs_opt.state[theirs]["sum"])


def test_a_replaced_rowwise_sum_is_used() -> None:
    """Row-wise state (ours alone): after a warm restart the next step is the one an optimizer
    starting from the same table with zero sums takes."""
    table, fresh_table = pair((30, 4))
    opt = adagrad.torch.Adagrad([table], lr=0.1, rowwise=True)
    idx = torch.tensor([[1, 5, 1, 29]])
    values = torch.randn(4, 4, generator=torch.Generator().manual_seed(2))
    table.grad = torch.sparse_coo_tensor(idx, values, (30, 4))
    opt.step()
    opt.state[table]["sum"] = torch.zeros(30)
    with torch.no_grad():
        fresh_table.copy_(table)
    fresh = adagrad.torch.Adagrad([fresh_table], lr=0.1, rowwise=True)
    for p in (table, fresh_table):
        p.grad = torch.sparse_coo_tensor(idx, values, (30, 4))
    opt.step()
    fresh.step()
    same(table, fresh_table)
    same(opt.state[table]["sum"], fresh.state[fresh_table]["sum"])


def test_a_replaced_sum_is_used_with_sparse_grads() -> None:
    ours, theirs = pair((20, 3))
    ours_opt, theirs_opt = adagrad.torch.Adagrad([ours], lr=0.1), torch.optim.Adagrad([theirs], lr=0.1)
    idx = torch.tensor([[2, 7, 19]])  # distinct: torch's sparse path and ours agree to a few ulp
    for step in range(3):
        values = torch.randn(3, 3, generator=torch.Generator().manual_seed(step))
        ours.grad = torch.sparse_coo_tensor(idx, values, (20, 3))
        theirs.grad = torch.sparse_coo_tensor(idx, values, (20, 3))
        if step == 1:
            ours_opt.state[ours]["sum"] = torch.full((20, 3), 2.0)
            theirs_opt.state[theirs]["sum"] = torch.full((20, 3), 2.0)
        ours_opt.step()
        theirs_opt.step()
    torch.testing.assert_close(ours_opt.state[ours]["sum"], theirs_opt.state[theirs]["sum"], rtol=1e-6, atol=0)
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-6, atol=1e-7)


BAD_REPLACEMENTS = [
    pytest.param(lambda p: torch.zeros(p.shape[0] + 1, p.shape[1]), "shape", id="shape"),
    pytest.param(lambda p: torch.zeros_like(p, dtype=torch.float64), "float32 tensor", id="dtype"),
    pytest.param(lambda p: p.detach().numpy().copy(), "must be a tensor", id="not-a-tensor"),
]


@pytest.mark.parametrize("make, match", BAD_REPLACEMENTS)
def test_a_replacement_that_does_not_fit_raises_naming_the_param_and_writes_nothing(make: Any, match: str) -> None:
    fc = torch.nn.Linear(3, 4)
    opt = adagrad.torch.Adagrad(fc.named_parameters(), lr=0.1)
    for p in fc.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    before = copy.deepcopy(opt.state_dict()), [p.detach().clone() for p in fc.parameters()]
    opt.state[fc.weight]["sum"] = make(fc.weight)
    with pytest.raises(ValueError, match=f"state sum of 'weight' .*{match}"):
        opt.step()
    for p, b in zip(fc.parameters(), before[1]):
        same(p, b)
    assert torch.equal(opt.state[fc.bias]["sum"], before[0]["state"][1]["sum"])


# --- 2. sparse grads of every layout ---------------------------------------------------------------


def coo(indices: list[list[int]], values: Any, shape: tuple[int, ...]) -> Any:
    return torch.sparse_coo_tensor(torch.tensor(indices), values, shape)


LAYOUTS: dict[str, tuple[tuple[int, ...], Callable[[Any], Any]]] = {
    # 1-D param, as torch's own test_rosenbrock_sparse: sparse_dim 1, dense_dim 0
    "1d": ((6,), lambda g: coo([[0, 4, 0, 5]], torch.randn(4, generator=g), (6,))),
    # dense.to_sparse() of a 2-D param: sparse_dim 2
    "to-sparse": (
        (5, 4),
        lambda g: (torch.randn(5, 4, generator=g) * (torch.rand(5, 4, generator=g) < 0.4)).to_sparse(),
    ),
    # element-sparse 2-D, uncoalesced, repeats
    "elements-repeated": ((5, 4), lambda g: coo([[1, 3, 1, 1], [2, 0, 2, 3]], torch.randn(4, generator=g), (5, 4))),
    # 3-D param, one sparse dim, two dense dims
    "3d-dense-dims-2": ((6, 2, 3), lambda g: coo([[5, 0, 5]], torch.randn(3, 2, 3, generator=g), (6, 2, 3))),
    # 3-D param, two sparse dims, one dense dim, repeats
    "3d-sparse-dims-2": ((4, 3, 2), lambda g: coo([[3, 0, 3], [1, 2, 1]], torch.randn(3, 2, generator=g), (4, 3, 2))),
    # nn.Embedding's: one sparse dim, one dense dim, uncoalesced
    "embedding": ((8, 3), lambda g: coo([[7, 2, 7, 7]], torch.randn(4, 3, generator=g), (8, 3))),
}


def dense_equivalent_rows(param_shape: tuple[int, ...], grad: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """The reference's view of a sparse grad: flat row of the sparse dims, a row of the dense dims."""
    sparse_dims = grad.sparse_dim()
    idx = grad._indices().numpy()
    rows = np.ravel_multi_index(tuple(idx), param_shape[:sparse_dims])
    length = int(np.prod(param_shape[sparse_dims:], dtype=np.int64))
    table = (int(np.prod(param_shape[:sparse_dims])), length)
    return rows, grad._values().numpy().reshape(-1, length), table


@pytest.mark.parametrize("duplicates", ["sum", "sequential"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_sparse_layout_matches_the_reference(layout: str, duplicates: str, isa: str) -> None:
    """The native update of the param viewed as rows equals the reference bit for bit."""
    shape, make = LAYOUTS[layout]
    p = torch.nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(0)))
    table = p.detach().numpy().reshape(-1).copy()
    opt = adagrad.torch.Adagrad([p], lr=0.1, duplicates=duplicates)
    state = np.zeros_like(table)
    gen = torch.Generator().manual_seed(3)
    for step in (1, 2):
        grad = make(gen)
        rows, values, view = dense_equivalent_rows(shape, grad)
        p.grad = grad
        opt.step()
        adagrad.reference.sparse_update(
            table.reshape(view), rows, values, state.reshape(view), step=step, lr=0.1, duplicates=duplicates
        )
    assert_same_bits(p.detach().numpy().reshape(-1), table)
    assert_same_bits(opt.state[p]["sum"].numpy().reshape(-1), state)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_sparse_layout_is_close_to_torch(layout: str) -> None:
    """torch's sparse path (not correctly rounded, repeats added in its own order): the sparse
    tests' tolerance, 1e-5 relative."""
    shape, make = LAYOUTS[layout]
    ours, theirs = pair(shape)
    ours_opt, theirs_opt = adagrad.torch.Adagrad([ours], lr=0.1), torch.optim.Adagrad([theirs], lr=0.1)
    gen = torch.Generator().manual_seed(4)
    for _ in range(3):
        grad = make(gen)
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        ours_opt.step()
        theirs_opt.step()
    torch.testing.assert_close(ours_opt.state[ours]["sum"], theirs_opt.state[theirs]["sum"], rtol=1e-5, atol=0)
    torch.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-5, atol=1e-7)


def test_a_sparse_grad_of_a_channels_last_param_is_its_dense_equivalent() -> None:
    conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    dense_twin = copy.deepcopy(conv)
    grad = (torch.randn(conv.weight.shape) * (torch.rand(conv.weight.shape) < 0.3)).to_sparse()
    opt, dense_opt = adagrad.torch.Adagrad([conv.weight], lr=0.1), adagrad.torch.Adagrad([dense_twin.weight], lr=0.1)
    conv.weight.grad, dense_twin.weight.grad = grad, grad.to_dense().contiguous(memory_format=torch.channels_last)
    opt.step()
    dense_opt.step()
    same(conv.weight, dense_twin.weight)


# --- 3. state_dicts that continue in torch ---------------------------------------------------------


def test_a_state_dict_with_sparse_grads_continues_in_torch() -> None:
    """torch's fused kernel refuses sparse grads: a group that had them records fused=None (what
    torch records by default), and torch.optim.Adagrad steps on from it without edits."""
    emb = torch.nn.Embedding(50, 4, sparse=True)
    head = torch.nn.Linear(4, 1)
    opt = adagrad.torch.Adagrad([{"params": emb.parameters()}, {"params": head.parameters()}], lr=0.1)

    def loss() -> Any:
        return head(emb(torch.tensor([3, 9, 3, 49]))).sum()

    for _ in range(3):
        opt.zero_grad()
        loss().backward()
        opt.step()
    saved = opt.state_dict()
    assert [g["fused"] for g in saved["param_groups"]] == [None, True]
    theirs = torch.optim.Adagrad([{"params": emb.parameters()}, {"params": head.parameters()}], lr=0.1)
    theirs.load_state_dict(saved)
    before = emb.weight.detach().clone()
    theirs.zero_grad()
    loss().backward()
    theirs.step()
    assert not torch.equal(emb.weight.detach(), before)


def test_an_explicit_fused_true_is_recorded_as_given() -> None:
    emb = torch.nn.Embedding(10, 2, sparse=True)
    opt = adagrad.torch.Adagrad(emb.parameters(), lr=0.1, fused=True)
    emb(torch.tensor([1, 2])).sum().backward()
    opt.step()
    assert opt.state_dict()["param_groups"][0]["fused"] is True


# --- 7. torch.compile -------------------------------------------------------------------------------


def test_a_compiled_training_step_runs_without_warnings_from_adagrad() -> None:
    """The step is one native call, excluded from dynamo's tracing as torch's own fused step is:
    no "Dynamo does not know how to trace" warning, and the same result as eager."""
    torch._dynamo.reset()
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    eager_model = copy.deepcopy(model)
    opt = adagrad.torch.Adagrad(model.parameters(), lr=0.1)
    eager_opt = adagrad.torch.Adagrad(eager_model.parameters(), lr=0.1)
    x, y = torch.randn(16, 8, generator=torch.Generator().manual_seed(0)), torch.randn(16, 1)

    def train_step(m: Any, o: Any) -> Any:
        o.zero_grad()
        loss = torch.nn.functional.mse_loss(m(x), y)
        loss.backward()
        o.step()
        return loss.detach()

    compiled = torch.compile(train_step, backend="eager")  # dynamo's tracing only: no C++ compiler needed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            compiled(model, opt)
            train_step(eager_model, eager_opt)
    ours = [str(w.message) for w in caught if "adagrad" in str(w.message) or "Dynamo" in str(w.message)]
    assert ours == []
    for p, q in zip(model.parameters(), eager_model.parameters()):
        torch.testing.assert_close(p, q)
    assert opt.state[next(model.parameters())]["step"].item() == 3


def test_the_step_is_in_the_graph_under_torch_compile() -> None:
    """torch._dynamo is imported at the first compiled step, not with adagrad.torch (tests/test_torch_import.py);
    the step is an operator in the graph (tests/test_torch_compile.py): the ops before and after it are one graph."""
    model = torch.nn.Linear(4, 1)
    opt = adagrad.torch.Adagrad(model.parameters(), lr=0.1)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    model(x).sum().backward()
    weight = model.weight.detach().clone()

    def around_a_step(o: Any) -> Any:
        y = x * 2
        o.step()
        return y + 1

    torch._dynamo.reset()
    explained = torch._dynamo.explain(around_a_step)(opt)
    assert (explained.graph_count, explained.graph_break_count) == (1, 0)
    assert not torch.equal(model.weight.detach(), weight)  # the step ran
    torch._dynamo.reset()


# --- 6. torch's OpenMP team --------------------------------------------------------------------------


@pytest.fixture
def team_restored() -> Any:
    before = adagrad.cpu_info()["thread_team"] == "openmp"
    threads = torch.get_num_threads()
    yield
    adagrad.torch.share_torch_threads(before)
    torch.set_num_threads(threads)


def _team_step(rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, str]:
    """One adagrad.torch step of a dense param and an embedding table's sparse grad; the params
    after it and where the step ran its tasks."""
    dense = torch.nn.Parameter(torch.from_numpy(rng.standard_normal(300_001).astype(np.float32)))
    table = torch.nn.Parameter(torch.from_numpy(rng.standard_normal((5000, 64)).astype(np.float32)))
    idx = torch.from_numpy((rng.zipf(1.2, 4000) - 1) % 5000)
    dense.grad = torch.from_numpy(rng.standard_normal(300_001).astype(np.float32))
    table.grad = torch.sparse_coo_tensor(
        idx[None], torch.from_numpy(rng.standard_normal((4000, 64)).astype(np.float32)), (5000, 64)
    )
    adagrad._core._reset_load_guard()  # the team this step takes, not one a stall before chose
    adagrad.torch.Adagrad([dense, table], lr=0.1).step()
    return dense.detach().clone(), table.detach().clone(), adagrad._core._last_thread_team()


@pytest.mark.parametrize("torch_threads", [1, 2])
def test_steps_on_torchs_openmp_team_give_the_same_bits(team_restored: Any, torch_threads: int) -> None:
    """Importing adagrad.torch puts its optimizers' parallel steps on torch's OpenMP team (torch's
    CPU build has one); dense and sparse steps there give the bits of adagrad's own pool."""
    if not adagrad.torch.share_torch_threads(True):
        pytest.skip("this torch build has no OpenMP team")
    assert adagrad.cpu_info()["thread_team"] == "openmp"
    torch.set_num_threads(torch_threads)
    on_team = _team_step(np.random.default_rng(0))
    adagrad.torch.share_torch_threads(False)
    on_own_pool = _team_step(np.random.default_rng(0))
    assert adagrad.cpu_info()["thread_team"] == "own"
    for got, want in zip(on_team[:2], on_own_pool[:2]):
        assert_same_bits(got.numpy(), want.numpy())
    parallel = adagrad.get_num_threads() > 1
    assert on_team[2] == ("openmp" if parallel and torch_threads > 1 else "inline")
    assert on_own_pool[2] == ("own" if parallel else "inline")


def test_numpy_steps_stay_on_the_own_pool_beside_adagrad_torch(team_restored: Any) -> None:
    """The NumPy API's steps never go to torch's team: its barrier waits for a descheduled thread
    (a loaded machine), the own pool's caller does not."""
    adagrad.torch.share_torch_threads(True)
    param, grad = np.ones(300_001, np.float32), np.full(300_001, 0.5, np.float32)
    adagrad._core._reset_load_guard()
    adagrad.update(param, grad, np.zeros_like(param), step=1, lr=0.1)
    assert adagrad._core._last_thread_team() == ("own" if adagrad.get_num_threads() > 1 else "inline")


def test_a_forked_child_steps_on_its_own_pool(team_restored: Any) -> None:
    """libgomp's team does not survive fork(): a child goes back to adagrad's own pool."""
    import multiprocessing

    if not adagrad.torch.share_torch_threads(True):
        pytest.skip("this torch build has no OpenMP team")
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        team, ok = pool.apply(_step_in_child)
    assert team == "own" and ok


def _step_in_child() -> tuple[str, bool]:
    param, grad = np.ones(100_000, np.float32), np.full(100_000, 0.5, np.float32)
    sums = np.zeros_like(param)
    adagrad.update(param, grad, sums, step=1, lr=0.1)
    return adagrad.cpu_info()["thread_team"], bool(np.allclose(param, 0.9))
