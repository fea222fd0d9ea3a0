"""``torch.compile`` through ``optimizer.step``: a training step (forward, backward, step) compiles
with ``fullgraph=True`` into one graph, holding the step as the ``adagrad::step`` operator, and its
updates are the eager step's bit for bit (params, every state, step counts), for every rule, with
an LR scheduler changing the float lr between steps, in one compile; ``zero_grad`` is traced too.
What a compiled step cannot do is refused at trace time, naming the way out.

torch.compile is slow (~1-2 s a compile here): one compile per rule, tiny models. The traced
backward (``trace_autograd_ops``) is kept apart from a traced ``zero_grad``: in torch 2.13 a graph
with both leaves dynamo a state that breaks a later compile of a backward graph break (``'model'
not in cell_and_freevars``, with torch's own optimizers too)."""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

torch = pytest.importorskip("torch")

from tests.conftest import assert_same_bits  # noqa: E402

import adagrad.torch  # noqa: E402

# torch's inductor itself uses its deprecated torch.jit.script_method (torch 2.13).
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")

# Each rule's drop-in with options that reach its whole formula.
RULES = [
    pytest.param(adagrad.torch.Adagrad, {"lr": 0.1, "weight_decay": 0.01, "lr_decay": 0.01}, id="adagrad"),
    pytest.param(adagrad.torch.ProximalAdagrad, {"lr": 0.1, "l1": 1e-3, "l2": 1e-3}, id="proximal"),
    pytest.param(adagrad.torch.AdagradDA, {"lr": 0.1, "l1": 1e-3, "l2": 1e-3}, id="dual-averaging"),
    pytest.param(
        adagrad.torch.AdagradDecay, {"lr": 0.1, "accumulator_decay_step": 2, "accumulator_decay_rate": 0.5}, id="decay"
    ),
    pytest.param(adagrad.torch.Ftrl, {"lr": 0.1, "l1": 1e-3, "l2_shrinkage": 1e-3}, id="ftrl"),
]
STEPS = 4


@pytest.fixture(autouse=True)
def fresh_compiler() -> Any:
    """Each test's compiles counted from zero, with the backward traced into the same graph."""
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        yield
    torch._dynamo.reset()


def tiny_model(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def training_step(model: Any, optimizer: Any, x: Any, y: Any) -> Callable[[], Any]:
    """Forward, backward, step; the caller zeroes the grads (see the module's docstring)."""

    def step() -> Any:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def assert_same_tensors(actual: Any, expected: Any) -> None:
    assert_same_bits(actual.detach().numpy(), expected.detach().numpy())


@pytest.mark.parametrize("cls, options", RULES)
def test_a_compiled_training_step_is_the_eager_step(cls: Any, options: dict[str, Any]) -> None:
    """The oracle: the eager optimizer stepping a copy of the model with the grads the compiled
    backward made (which the graph leaves in ``p.grad``); an inductor backward may round its grads
    differently from eager autograd's, the step may not."""
    model = tiny_model()
    twin = copy.deepcopy(model)
    optimizer, eager = cls(model.parameters(), **options), cls(twin.parameters(), **options)
    schedules = [torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5) for o in (optimizer, eager)]
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    compiled = torch.compile(training_step(model, optimizer, x, y), fullgraph=True)
    for _ in range(STEPS):
        optimizer.zero_grad()
        compiled()
        for p, q in zip(model.parameters(), twin.parameters()):
            q.grad = p.grad.clone()
        eager.step()
        for schedule in schedules:
            schedule.step()
        for p, q in zip(model.parameters(), twin.parameters()):
            assert_same_tensors(p, q)
            for name in (*cls.RULE.state_names, "step"):
                assert_same_tensors(optimizer.state[p][name], eager.state[q][name])
    assert int(optimizer.state[next(model.parameters())]["step"]) == STEPS
    assert optimizer.param_groups[0]["lr"] == options["lr"] * 0.5**STEPS
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1  # the lr changes retraced nothing


def test_explain_finds_one_graph_and_no_break() -> None:
    model = tiny_model()
    optimizer = adagrad.torch.Adagrad(model.parameters(), lr=0.1)
    explained = torch._dynamo.explain(training_step(model, optimizer, torch.randn(4, 6), torch.tensor([0, 1, 2, 0])))()
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    ops = [str(node.target) for graph in explained.graphs for node in graph.graph.nodes]
    assert ops.count("adagrad.step.default") == 1


def test_zero_grad_is_traced_with_the_step() -> None:
    """torch's zero_grad is a graph break; ours is traced: a step and zero_grad, one graph."""
    model = tiny_model()
    optimizer = adagrad.torch.Adagrad(model.parameters(), lr=0.1)

    def step_and_zero() -> None:
        optimizer.step()
        optimizer.zero_grad()

    with torch._dynamo.config.patch(trace_autograd_ops=False):
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        explained = torch._dynamo.explain(step_and_zero)()
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
    assert all(p.grad is None for p in model.parameters())
    assert int(optimizer.state[next(model.parameters())]["step"]) == 1


def test_a_param_torch_ops_update_is_refused_at_trace_time() -> None:
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.complex64))
    optimizer = adagrad.torch.Adagrad([w], lr=0.1)
    w.grad = torch.ones_like(w)
    with pytest.raises(Exception, match=r"complex64 on cpu is updated by torch ops: step this optimizer eagerly"):
        torch.compile(optimizer.step, fullgraph=True)()
    assert torch.equal(w.detach(), torch.ones(3, dtype=torch.complex64))  # nothing written


def test_a_grad_scalers_scale_is_refused_at_trace_time() -> None:
    w = torch.nn.Parameter(torch.ones(3))
    optimizer = adagrad.torch.Adagrad([w], lr=0.1)
    w.grad = torch.ones(3)
    optimizer.grad_scale = torch.tensor(2.0)  # as torch.amp.GradScaler.step hands it over
    with pytest.raises(Exception, match=r"does not take torch.amp.GradScaler's scale"):
        torch.compile(optimizer.step, fullgraph=True)()
    assert torch.equal(w.detach(), torch.ones(3))


def test_sparse_grads_break_the_graph_and_step_as_eager() -> None:
    """torch.compile takes no sparse tensor (fullgraph: its own error); without fullgraph the step
    runs where the graph broke, the eager step's update."""
    bag = torch.nn.Embedding(10, 4, sparse=True)
    twin = copy.deepcopy(bag)
    optimizer, eager = adagrad.torch.Adagrad(bag.parameters(), lr=0.1), adagrad.torch.Adagrad(twin.parameters(), lr=0.1)
    ids = torch.tensor([1, 2, 2])
    for module in (bag, twin):
        module(ids).sum().backward()
    with pytest.raises(Exception, match="sparse"):
        torch.compile(optimizer.step, fullgraph=True)()
    torch.compile(optimizer.step)()
    eager.step()
    assert_same_tensors(bag.weight, twin.weight)
    assert_same_tensors(optimizer.state[bag.weight]["sum"], eager.state[twin.weight]["sum"])
    assert int(optimizer.state[bag.weight]["step"]) == 1


def test_a_state_tensor_replaced_after_the_trace_is_used_and_retraced() -> None:
    """A warm restart of the accumulator between compiled steps: the step uses the new tensor, as
    the eager step does, and the next call traces again."""
    model = tiny_model()
    twin = copy.deepcopy(model)
    optimizer = adagrad.torch.Adagrad(model.parameters(), lr=0.1)
    eager = adagrad.torch.Adagrad(twin.parameters(), lr=0.1)
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    compiled = torch.compile(training_step(model, optimizer, x, y), fullgraph=True)
    for call in range(3):
        optimizer.zero_grad()
        if call == 1:
            for o, m in ((optimizer, model), (eager, twin)):
                weight = next(m.parameters())
                o.state[weight]["sum"] = torch.full_like(weight, 0.5)
        compiled()
        for p, q in zip(model.parameters(), twin.parameters()):
            q.grad = p.grad.clone()
        eager.step()
        for p, q in zip(model.parameters(), twin.parameters()):
            assert_same_tensors(p, q)
            assert_same_tensors(optimizer.state[p]["sum"], eager.state[q]["sum"])


def test_a_group_added_after_the_trace_is_stepped() -> None:
    """add_param_group fails the compiled step's guards: the next call traces the new group.
    By hand, lr 0.5, grads 1: a = 1 - 0.5 / sqrt(1), then 0.5 - 0.5 / sqrt(2); b = 1 - 0.5."""
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    optimizer = adagrad.torch.Adagrad([a], lr=0.5)
    compiled = torch.compile(optimizer.step, fullgraph=True, backend="eager")  # dynamo's guards, no inductor
    a.grad = torch.ones(3)
    compiled()
    optimizer.add_param_group({"params": [b]})
    a.grad, b.grad = torch.ones(3), torch.ones(2)
    compiled()
    assert torch.equal(a.detach(), torch.full((3,), 0.5 - 0.5 / 2**0.5))
    assert torch.equal(b.detach(), torch.full((2,), 0.5))
    assert (int(optimizer.state[a]["step"]), int(optimizer.state[b]["step"])) == (2, 1)
