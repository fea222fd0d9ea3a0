"""adagrad.torch.Adagrad across processes: DistributedDataParallel and ZeroRedundancyOptimizer.

Two worker processes (``distributed_training.py`` run as a script) train on 127.0.0.1 with gloo,
each on its half of every global batch, once per scenario (DDP with sparse and dense grads, DDP with
grads as bucket views, ZeRO with and without params as bucket views). Their params and optimizer
state must equal one process training on the whole batches.

Tolerance. Everything is float64 (unit roundoff u = 1.1e-16). Both runs do the same operations
except the order of the sums over examples: each rank sums its half and the all-reduce adds the
halves (for sparse grads gloo also coalesces repeated rows in its own order); the 1/n of the mean
losses is a power of two on every rank, so exact. That changes a grad element by a few u of its
terms, and six Adagrad steps carry it into params and sums at the level of 1e-16 (measured here:
at most 5.6e-17 on params of size up to 3.2, 1.4e-17 on sums of ~0.1). We require
|a - b| <= ATOL + RTOL |b| with ATOL = RTOL = 1e-12: ten thousand times the measured error, room for
other BLAS kernels and summation orders elsewhere, and still ten thousand times below what a wrong
learning rate does: every comparison is also made against training with lr × (1 + 1e-6), which
moves the params by 2.5e-8, and must fail there. (A grad scaled by 1 + 1e-9 on the workers fails it too.)
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with the gloo backend is not available", allow_module_level=True)

import adagrad.torch  # noqa: E402  (these need torch, checked above)
import distributed_training as dt  # noqa: E402
from conftest import assert_same_bits  # noqa: E402

WORLD = 2
RTOL = ATOL = 1e-12
WRONG_LR = dt.LR * (1 + 1e-6)
WORKER_TIMEOUT_S = 45.0  # a run takes ~5-10 s here; gloo itself gives up after 30 s
FAILURE_GRACE_S = 3.0  # after one rank fails, time for the other to report its side before it is killed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback_env() -> dict[str, str]:
    """Keep gloo's own connections on the loopback interface (by default it picks the host name's)."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except (AttributeError, OSError):
        return {}
    loopback = next((n for n in names if n.startswith("lo")), None)
    return {"GLOO_SOCKET_IFNAME": loopback} if loopback else {}


def run_workers(out_dir: Path) -> tuple[list[int], list[str], bool]:
    """Start one worker per rank, wait for all (or kill all): exit codes, outputs, timed out."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", **loopback_env()}
    logs = [out_dir / f"rank{rank}.log" for rank in range(WORLD)]
    procs = []
    for rank in range(WORLD):
        with open(logs[rank], "w") as log:
            args = [str(rank), str(WORLD), str(port), str(out_dir / f"rank{rank}.pt")]
            procs.append(
                subprocess.Popen(
                    # -W error: the workers hold warnings to the same rule as pytest's filterwarnings
                    [sys.executable, "-W", "error", str(Path(dt.__file__)), *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    timed_out = False
    try:
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline:
                timed_out = not any(p.returncode for p in procs)
                break
            if any(p.returncode for p in procs):
                deadline = min(deadline, time.monotonic() + FAILURE_GRACE_S)
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    return [p.returncode for p in procs], [log.read_text() for log in logs], timed_out


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every scenario's results on every rank, from one 2-process job."""
    for attempt in range(3):
        out_dir = tmp_path_factory.mktemp(f"distributed{attempt}")
        start = time.monotonic()
        codes, outputs, timed_out = run_workers(out_dir)
        if codes == [0] * WORLD:
            return [torch.load(out_dir / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)]
        if not any("Address already in use" in text for text in outputs):
            break  # the free port can be taken before rank 0 binds it: only that is retried
    why = f"were killed at the {WORKER_TIMEOUT_S:.0f} s time limit" if timed_out else "failed"
    report = "\n".join(
        f"--- rank {rank}: exit code {code}{' (killed)' if code < 0 else ''}, output:\n{text[-4000:]}"
        for rank, (code, text) in enumerate(zip(codes, outputs))
    )
    pytest.fail(f"the distributed workers {why} after {time.monotonic() - start:.1f} s\n{report}", pytrace=False)


@functools.cache
def single(sparse: bool, lr: float) -> tuple[Any, Any]:
    """The single-process model and optimizer after training (read only)."""
    return dt.single_process(sparse, lr)


def scaled_error(actual: Any, expected: Any) -> float:
    """max |a - e| / (ATOL + RTOL |e|): at most 1 passes."""
    actual, expected = actual.to(torch.float64), expected.to(torch.float64)
    return float(((actual - expected).abs() / (ATOL + RTOL * expected.abs())).max())


def assert_close_and_discriminating(actual: list[Any], expected: list[Any], wrong: list[Any], what: str) -> None:
    """Within tolerance of the reference, and not within tolerance of the wrong-lr run."""
    assert len(actual) == len(expected) == len(wrong)
    errors = [scaled_error(a, e) for a, e in zip(actual, expected)]
    assert max(errors) <= 1, f"{what}: scaled errors {errors} (tolerance 1)"
    wrong_errors = [scaled_error(a, w) for a, w in zip(actual, wrong)]
    assert max(wrong_errors) > 1, f"{what}: the comparison does not tell lr from lr*(1+1e-6): {wrong_errors}"


SCENARIO_NAMES = list(dt.SCENARIOS)
ZERO_NAMES = [name for name, s in dt.SCENARIOS.items() if s.zero]
# Each overlapped scenario (adagrad.torch.step_after_allreduce) and the same one stepping after backward.
OVERLAPPED = {
    name: next(other for other, t in dt.SCENARIOS.items() if t == dataclasses.replace(s, overlap=False))
    for name, s in dt.SCENARIOS.items()
    if s.overlap
}


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_ranks_end_with_identical_params(ranks: list[dict[str, Any]], name: str) -> None:
    """DDP applies one all-reduced grad on every rank, ZeRO broadcasts each shard: same bits."""
    sparse = dt.SCENARIOS[name].sparse
    for rank in range(WORLD):  # the embedding bag's grad (the first param's) really was sparse, or dense
        assert ranks[rank][name]["sparse_grads"] == [sparse] + [False] * (len(ranks[rank][name]["params"]) - 1)
    assert len(ranks[0][name]["params"]) == len(ranks[1][name]["params"])
    for p0, p1 in zip(ranks[0][name]["params"], ranks[1][name]["params"]):
        assert_same_bits(p1.numpy(), p0.numpy())


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_trained_params_equal_single_process(ranks: list[dict[str, Any]], name: str) -> None:
    sparse = dt.SCENARIOS[name].sparse
    model, _ = single(sparse, dt.LR)
    wrong, _ = single(sparse, WRONG_LR)
    expected = [p.detach() for p in model.parameters()]
    assert_close_and_discriminating(
        ranks[0][name]["params"], expected, [p.detach() for p in wrong.parameters()], f"{name} params"
    )


def check_state(state_dict: dict[str, Any], reference: Any, wrong: Any, what: str) -> None:
    """Per-param "sum" and "step" of a state_dict against single-process optimizers' state."""
    ref, bad = reference.state_dict(), wrong.state_dict()
    assert sorted(state_dict["state"]) == sorted(ref["state"]) == list(range(len(ref["state"])))
    keys = sorted(ref["state"])
    for key in keys:
        assert int(state_dict["state"][key]["step"]) == int(ref["state"][key]["step"]) == dt.STEPS
    assert_close_and_discriminating(
        [state_dict["state"][k]["sum"] for k in keys],
        [ref["state"][k]["sum"] for k in keys],
        [bad["state"][k]["sum"] for k in keys],
        f"{what} sums",
    )
    for option in ("lr", *dt.OPTIONS):
        assert [g[option] for g in state_dict["param_groups"]] == [g[option] for g in ref["param_groups"]]


@pytest.mark.parametrize("name", [n for n in SCENARIO_NAMES if n not in ZERO_NAMES])
def test_ddp_optimizer_state_equals_single_process(ranks: list[dict[str, Any]], name: str) -> None:
    sparse = dt.SCENARIOS[name].sparse
    for rank in range(WORLD):
        check_state(ranks[rank][name]["state_dict"], single(sparse, dt.LR)[1], single(sparse, WRONG_LR)[1], name)


@pytest.mark.parametrize("name", list(OVERLAPPED))
def test_overlapped_step_equals_step_after_backward(ranks: list[dict[str, Any]], name: str) -> None:
    """Stepping each bucket as its all-reduce completes gives the bits of DDP's all-reduce followed
    by optimizer.step(): params, the grads DDP leaves, sums and step counts, on every rank. (At world
    size 2 the bucket sizes, which differ, change no sum: a + b is b + a.)"""
    twin = OVERLAPPED[name]
    for rank in range(WORLD):
        ours, theirs = ranks[rank][name], ranks[rank][twin]
        assert ours["buckets"] >= 3, "the dense params should fill several buckets"
        for what in ("params", "grads"):
            assert len(ours[what]) == len(theirs[what]) == 5  # the bag, two weights, two biases
            for a, b in zip(ours[what], theirs[what]):
                assert_same_bits(a.numpy(), b.numpy())
        for key, entry in theirs["state_dict"]["state"].items():
            assert_same_bits(ours["state_dict"]["state"][key]["sum"].numpy(), entry["sum"].numpy())
            assert int(ours["state_dict"]["state"][key]["step"]) == int(entry["step"]) == dt.STEPS


@pytest.mark.parametrize("name", ZERO_NAMES)
def test_zero_consolidated_state_equals_single_process(ranks: list[dict[str, Any]], name: str) -> None:
    shards = [ranks[rank][name]["local_params"] for rank in range(WORLD)]
    params = len(ranks[0][name]["params"])
    assert sum(shards) == params and min(shards) > 0, f"not sharded over both ranks: {shards}"
    assert "state_dict" not in ranks[1][name]  # consolidated on rank 0 only
    sparse = dt.SCENARIOS[name].sparse
    check_state(ranks[0][name]["state_dict"], single(sparse, dt.LR)[1], single(sparse, WRONG_LR)[1], name)


def resume(params: list[Any], state_dict: dict[str, Any], optimizer: str, sparse: bool) -> tuple[Any, Any]:
    """A fresh single-process model and optimizer from saved params and state, one more step."""
    model = dt.make_model(sparse)
    with torch.no_grad():
        for p, saved in zip(model.parameters(), params):
            p.copy_(saved)
    if optimizer == "adagrad.torch":
        opt = adagrad.torch.Adagrad(model.parameters(), lr=dt.LR, **dt.OPTIONS)
    else:
        opt = torch.optim.Adagrad(model.parameters(), lr=dt.LR, fused=True, **dt.OPTIONS)
    opt.load_state_dict(copy.deepcopy(state_dict))
    next_step(model, opt, dense_grads=optimizer == "torch fused")
    return model, opt


def next_step(model: Any, opt: Any, dense_grads: bool) -> None:
    """Step STEPS on the whole batch, sparse grads coalesced (torch's fused Adagrad takes them dense)."""
    opt.zero_grad()
    dt.backward(model, dt.STEPS)
    for p in model.parameters():
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce().to_dense() if dense_grads else p.grad.coalesce()
    opt.step()


@pytest.mark.parametrize("name", ZERO_NAMES)
def test_zero_consolidated_state_resumes_in_one_process(ranks: list[dict[str, Any]], name: str) -> None:
    """The consolidated state loads into adagrad.torch.Adagrad and torch.optim.Adagrad(fused=True)
    alike: one more step gives the same bits in both, and the single-process run's values."""
    sparse = dt.SCENARIOS[name].sparse
    params, state_dict = ranks[0][name]["params"], ranks[0][name]["state_dict"]
    ours_model, ours = resume(params, state_dict, "adagrad.torch", sparse)
    torch_model, theirs = resume(params, state_dict, "torch fused", sparse)
    assert theirs.param_groups[0]["fused"] is True  # the loaded groups kept torch on its fused path
    for p, q in zip(ours_model.parameters(), torch_model.parameters()):
        assert_same_bits(p.detach().numpy(), q.detach().numpy())
        assert_same_bits(ours.state[p]["sum"].numpy(), theirs.state[q]["sum"].numpy())
        assert int(ours.state[p]["step"]) == int(theirs.state[q]["step"]) == dt.STEPS + 1

    def continued(lr: float) -> list[Any]:
        model, opt = dt.single_process(sparse, lr)
        next_step(model, opt, dense_grads=False)
        return [p.detach() for p in model.parameters()]

    assert_close_and_discriminating(
        [p.detach() for p in ours_model.parameters()], continued(dt.LR), continued(WRONG_LR), f"{name} resumed"
    )
