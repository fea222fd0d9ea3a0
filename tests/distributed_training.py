"""The training runs of tests/test_torch_distributed.py, shared by the test and its worker processes.

Imported, it gives the model, the data and single-process training. Run as a script, it is one
rank of a gloo job on 127.0.0.1 that trains every scenario of ``SCENARIOS`` in turn and saves the
results for the test to compare::

    python distributed_training.py RANK WORLD_SIZE PORT OUT_FILE

An exception ends the worker with a traceback on stderr and a non-zero exit code, which the test
reports.
"""

from __future__ import annotations

import datetime
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import adagrad.torch

STEPS = 6
BATCH = 64  # global batch; a power of two, so that the 1/n of each mean is exact on every rank
BAG = 3  # feature ids per example, summed by the EmbeddingBag
ROWS, DIM, FEATURES, HIDDEN = 40, 8, 5, 16  # few rows: both ranks touch many of the same ones
# Options beside lr that reach the native step, so that a lost option would show.
OPTIONS = {"lr_decay": 0.01, "initial_accumulator_value": 0.1, "eps": 1e-10}
LR = 0.05


@dataclass(frozen=True)
class Scenario:
    sparse: bool  # nn.EmbeddingBag(sparse=True): sparse COO grads, all-reduced sparse by gloo
    zero: bool = False  # ZeroRedundancyOptimizer(optimizer_class=adagrad.torch.Adagrad) around DDP
    grads_as_bucket_view: bool = False  # DDP(gradient_as_bucket_view=True): grads are views of its buckets
    params_as_bucket_view: bool = False  # ZeRO(parameters_as_bucket_view=True): params re-pointed into buckets
    # adagrad.torch.step_after_allreduce: each bucket steps as its all-reduce completes (small
    # buckets: several per step); the scenario it must equal bit for bit is the same one without it.
    overlap: bool = False


SCENARIOS = {
    "ddp-sparse-embeddingbag": Scenario(sparse=True),
    "ddp-dense": Scenario(sparse=False),
    "ddp-dense-grads-as-bucket-view": Scenario(sparse=False, grads_as_bucket_view=True),
    "zero-sparse-embeddingbag": Scenario(sparse=True, zero=True),
    "zero-params-as-bucket-view": Scenario(sparse=True, zero=True, params_as_bucket_view=True),
    "ddp-sparse-overlapped": Scenario(sparse=True, overlap=True),
    "ddp-dense-grads-as-bucket-view-overlapped": Scenario(sparse=False, grads_as_bucket_view=True, overlap=True),
}
OVERLAP_BUCKET_CAP_MB = 1e-4  # ~100 bytes: each dense weight and bias, but the last layer's pair, fills its own


class Net(nn.Module):
    """A hashed-feature bag and dense features into a one-hidden-layer logistic model, float64."""

    def __init__(self, sparse: bool) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(ROWS, DIM, mode="sum", sparse=sparse, dtype=torch.float64)
        self.hidden = nn.Linear(DIM + FEATURES, HIDDEN, dtype=torch.float64)
        self.out = nn.Linear(HIDDEN, 1, dtype=torch.float64)

    def forward(self, ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        offsets = torch.arange(0, ids.numel(), BAG)
        x = torch.cat([self.bag(ids, offsets), features], dim=1)
        return self.out(torch.tanh(self.hidden(x))).squeeze(1)


def make_model(sparse: bool) -> Net:
    torch.manual_seed(0)  # the same start everywhere (DDP would broadcast rank 0's anyway)
    return Net(sparse)


def global_batch(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Example i has ids[i*BAG:(i+1)*BAG], features[i] and labels[i]."""
    g = torch.Generator().manual_seed(1000 + step)
    ids = torch.randint(0, ROWS, (BATCH * BAG,), generator=g)
    features = torch.randn(BATCH, FEATURES, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 2, (BATCH,), generator=g).to(torch.float64)
    return ids, features, labels


def shard(step: int, rank: int, world: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """This rank's contiguous share of the global batch (world=1: all of it)."""
    ids, features, labels = global_batch(step)
    n = BATCH // world
    rows = slice(rank * n, (rank + 1) * n)
    return ids[rank * n * BAG : (rank + 1) * n * BAG], features[rows], labels[rows]


def backward(model: nn.Module, step: int, rank: int = 0, world: int = 1) -> None:
    """Grads of the mean loss over this rank's examples; DDP averages them over the ranks."""
    ids, features, labels = shard(step, rank, world)
    nn.functional.binary_cross_entropy_with_logits(model(ids, features), labels).backward()


def train(
    model: nn.Module, optimizer: Any, rank: int = 0, world: int = 1, steps: int = STEPS, in_backward: bool = False
) -> None:
    """``in_backward``: the optimizer steps in a hook, not in step()."""
    for step in range(steps):
        optimizer.zero_grad()
        backward(model, step, rank, world)
        if not in_backward:
            optimizer.step()


def single_process(sparse: bool, lr: float = LR) -> tuple[Net, adagrad.torch.Adagrad]:
    """The reference: one process, the whole global batch at every step."""
    model = make_model(sparse)
    optimizer = adagrad.torch.Adagrad(model.parameters(), lr=lr, **OPTIONS)
    train(model, optimizer)
    return model, optimizer


def zero_redundancy_optimizer() -> Any:
    with warnings.catch_warnings():
        # torch.distributed.optim's own modules decorate functions with torch.jit.script and
        # torch.jit.interface, deprecated in recent torch: torch's warnings, raised on its first import.
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.(script|interface)` is deprecated", category=DeprecationWarning
        )
        from torch.distributed.optim import ZeroRedundancyOptimizer
    return ZeroRedundancyOptimizer


def run_scenario(scenario: Scenario, rank: int, world: int) -> dict[str, Any]:
    model = make_model(scenario.sparse)
    buckets = {"bucket_cap_mb": OVERLAP_BUCKET_CAP_MB} if scenario.overlap else {}
    ddp = nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=scenario.grads_as_bucket_view, **buckets)
    optimizer: Any
    if scenario.zero:
        optimizer = zero_redundancy_optimizer()(
            ddp.parameters(),
            optimizer_class=adagrad.torch.Adagrad,
            parameters_as_bucket_view=scenario.params_as_bucket_view,
            lr=LR,
            **OPTIONS,
        )
    else:
        optimizer = adagrad.torch.Adagrad(ddp.parameters(), lr=LR, **OPTIONS)
        if scenario.overlap:
            adagrad.torch.step_after_allreduce(ddp, optimizer)
    train(ddp, optimizer, rank, world, in_backward=scenario.overlap)
    result: dict[str, Any] = {
        "params": [p.detach().clone() for p in model.parameters()],
        "sparse_grads": [p.grad.is_sparse for p in model.parameters()],  # the last step's, as all-reduced
        "grads": [p.grad.to_dense() for p in model.parameters()],
    }
    if scenario.overlap:
        result["buckets"] = len(ddp.reducer._get_zeros_like_grad_buckets())
    if scenario.zero:
        result["local_params"] = len(optimizer.optim.param_groups[0]["params"])  # this rank's shard
        optimizer.consolidate_state_dict(to=0)  # a collective: every rank calls it
        if rank == 0:
            result["state_dict"] = optimizer.state_dict()
    else:
        result["state_dict"] = optimizer.state_dict()
    return result


def main(argv: list[str]) -> int:
    import torch.distributed as dist

    rank, world, port, out = int(argv[0]), int(argv[1]), int(argv[2]), argv[3]
    torch.set_num_threads(1)  # two ranks share the machine
    adagrad.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=30),
    )
    try:
        results = {name: run_scenario(scenario, rank, world) for name, scenario in SCENARIOS.items()}
        torch.save(results, out)
        # Both ranks done before either tears its process group down: a rank that exits while the
        # other still tears down can leave a gloo thread of the other to abort it ("terminate
        # called without an active exception", seen once in ~20 runs without this barrier).
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
