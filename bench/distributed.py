"""The step overlapped with the backward pass (docs/torch.md, "The step inside the backward pass"):
whole training steps and peak memory of an MLP of 15.7 M float32 params.

    python bench/distributed.py OUT_FOLDER [ROUNDS [THREADS]]

Cases, each a fresh process (or pair of processes: DDP, 2 gloo ranks on 127.0.0.1, each on its half
of a global batch of 16), so that each has its own peak:

- ``ddp-torch-fused``: DDP + ``torch.optim.Adagrad(fused=True)``, step after backward
- ``ddp-adagrad``: DDP + ``adagrad.torch.Adagrad``, step after backward
- ``ddp-adagrad-overlap``: DDP + ``adagrad.torch.step_after_allreduce`` (buckets of DDP's default size)
- ``ddp-adagrad-overlap-bucket-view``: the same with ``gradient_as_bucket_view=True``
- ``single-torch-fused``, ``single-adagrad``: one process, the whole batch, step after backward
- ``single-torch-fused-in-backward``: torch's documented idiom, one ``torch.optim.Adagrad(fused=True)``
  per param stepped by ``register_post_accumulate_grad_hook``
- ``single-adagrad-in-backward``: ``adagrad.torch.step_in_backward``

Every process runs torch and adagrad on THREADS threads (default 1: ``torch.set_num_threads``,
``adagrad.set_num_threads``; gloo has its own). A step is ``zero_grad`` + forward + backward
(+ all-reduce) + the update; its time is the wall time on rank 0, median and min over the timed
steps after warm-up. The rounds interleave the cases, so that a change in the machine's load
spreads over all of them.

Memory, in runs of their own: the peak resident set over the steps
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the kernel's high-water mark of the process, reset
through ``/proc/self/clear_refs`` once the model, the optimizer states and the data exist:
tracemalloc does not see torch's allocations, and torch keeps no CPU allocator statistics), and that
peak minus the resident set at that moment (what the steps add: grads, DDP's buckets, activations).
"""

from __future__ import annotations

import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CASES = (
    "ddp-torch-fused",
    "ddp-adagrad",
    "ddp-adagrad-overlap",
    "ddp-adagrad-overlap-bucket-view",
    "single-torch-fused",
    "single-adagrad",
    "single-torch-fused-in-backward",
    "single-adagrad-in-backward",
)
WIDTHS = (1024, 4096, 2048, 1024, 1024, 10)  # 15.7 M params, 63 MB in float32
GLOBAL_BATCH = 16  # small: the update and the all-reduce of 63 MB of grads weigh against the matmuls
WARMUP, TIMED = 3, 12
MEMORY_STEPS = 4  # DDP rebuilds its buckets at the second step
# Memory runs: glibc's malloc returns every block of 64 KiB or more to the system when it is freed
# (a fixed mmap threshold; by default it rises to 32 MiB and freed grads stay in the heap), so that
# the resident set's high-water mark follows the live tensors. Timed runs keep the default.
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 * 1024)}
LR = 0.01


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reset_peak_rss() -> None:
    """The high-water mark back to the current resident set (Linux 4.0+; ru_maxrss follows)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(case: str, rank: int, world: int, port: int, out: str, steps: int, threads: int) -> None:
    import torch
    import torch.distributed as dist

    import adagrad
    import adagrad.torch

    torch.set_num_threads(threads)
    adagrad.set_num_threads(threads)
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for i in range(len(WIDTHS) - 1):
        layers += [torch.nn.Linear(WIDTHS[i], WIDTHS[i + 1]), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1])
    model: torch.nn.Module = net
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
        model = torch.nn.parallel.DistributedDataParallel(net, gradient_as_bucket_view=case.endswith("bucket-view"))
    batch = GLOBAL_BATCH // world
    g = torch.Generator().manual_seed(rank)
    x, y = torch.randn(batch, WIDTHS[0], generator=g), torch.randint(0, WIDTHS[-1], (batch,), generator=g)

    in_backward = "overlap" in case or "in-backward" in case
    optimizer: Any = None
    stepped_first: list[Any] = []  # the optimizers whose states appear at their first step (torch's)
    if "torch-fused-in-backward" in case:  # torch's documented idiom: one optimizer per param, in a hook
        per_param = {p: torch.optim.Adagrad([p], lr=LR, fused=True) for p in net.parameters()}

        def step_and_free(p: torch.Tensor) -> None:
            per_param[p].step()
            per_param[p].zero_grad()

        for p in net.parameters():
            p.register_post_accumulate_grad_hook(step_and_free)
        stepped_first = list(per_param.values())
    elif "torch-fused" in case:
        optimizer = torch.optim.Adagrad(model.parameters(), lr=LR, fused=True)
        stepped_first = [optimizer]
    else:
        optimizer = adagrad.torch.Adagrad(model.parameters(), lr=LR)
        if "overlap" in case:
            adagrad.torch.step_after_allreduce(model, optimizer)
        elif "in-backward" in case:
            adagrad.torch.step_in_backward(optimizer)
    for p in net.parameters():  # every state exists before the first timed step: a zero-grad step
        p.grad = torch.zeros_like(p)
    for opt in stepped_first:
        opt.step()
    for p in net.parameters():
        p.grad = None
    reset_peak_rss()  # the setup's own peak (every grad at once, for the states) is not the steps'
    rss_before = current_rss_mb()
    times = []
    for _i in range(steps):
        start = time.perf_counter()
        if optimizer is not None:
            optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        if not in_backward:
            optimizer.step()
        times.append(time.perf_counter() - start)
    result = {
        "case": case,
        "rank": rank,
        "step_ms": [t * 1e3 for t in times],
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_steps_mb": rss_before,
        "params": sum(p.numel() for p in net.parameters()),
    }
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    Path(out).write_text(json.dumps(result))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_case(case: str, folder: Path, round_: int, memory: bool, threads: int = 1) -> dict[str, Any]:
    """One run of a case (both ranks for DDP); ``memory``: a memory run, else a timed one."""
    world = 2 if case.startswith("ddp") else 1
    port = free_port()
    kind = "memory" if memory else "time"
    outs = [folder / f"{case}.{kind}{round_}.rank{rank}.json" for rank in range(world)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "GLOO_SOCKET_IFNAME": "lo", **(MEMORY_ENV if memory else {})}
    steps = MEMORY_STEPS if memory else WARMUP + TIMED
    reruns = 0
    for _ in range(3):
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "worker",
                    case,
                    str(rank),
                    str(world),
                    str(port),
                    str(outs[rank]),
                    str(steps),
                ],
                env=env,
            )
            for rank in range(world)
        ]
        codes = [p.wait(timeout=600) for p in procs]
        if codes == [0] * world:
            break
        # A worker that fails is rerun, and the rerun counted: an abort at teardown ("terminate called
        # without an active exception", docs/torch.md) was seen in earlier sessions, not since.
        print(f"{case}: workers exited with {codes}; rerun", file=sys.stderr)
        port, reruns = free_port(), reruns + 1
    else:
        raise RuntimeError(f"{case}: workers exited with {codes} three times")
    ranks = [json.loads(out.read_text()) for out in outs]
    for out in outs:
        out.unlink()
    if memory:
        return {
            "case": case,
            "round": round_,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ranks),
            "added_rss_mb": max(r["peak_rss_mb"] - r["rss_before_steps_mb"] for r in ranks),
            "reruns": reruns,
        }
    return {
        "case": case,
        "round": round_,
        "step_ms": ranks[0]["step_ms"][WARMUP:],
        "params": ranks[0]["params"],
        "reruns": reruns,
    }


def main(folder: Path, rounds: int, threads: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    timed, memory = [], []
    for r in range(rounds):
        for case in CASES:
            timed.append(run_case(case, folder, r, memory=False, threads=threads))
            memory.append(run_case(case, folder, r, memory=True, threads=threads))
    (folder / "runs.json").write_text(
        json.dumps(
            {"cpu": cpu_name(), "nproc": os.cpu_count(), "threads": threads, "timed": timed, "memory": memory}, indent=1
        )
    )
    lines = [
        f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs; MLP {'-'.join(map(str, WIDTHS))}, "
        f"{timed[0]['params'] / 1e6:.1f} M float32 params, global batch {GLOBAL_BATCH}; "
        f"{threads} thread(s) per process",
        f"step: {rounds} rounds x {TIMED} timed steps after {WARMUP}; memory: peak resident set of a "
        f"{MEMORY_STEPS}-step run (max over ranks and rounds), and that peak minus the resident set before the "
        "first step",
        f"{'case':34} {'median ms':>10} {'min ms':>8} {'round medians ms':>22} {'peak RSS MB':>12} {'added MB':>12}",
    ]
    for case in CASES:
        times = [r for r in timed if r["case"] == case]
        mems = [r for r in memory if r["case"] == case]
        all_times = [t for r in times for t in r["step_ms"]]
        medians = " ".join(f"{statistics.median(r['step_ms']):.0f}" for r in times)
        added = sorted(r["added_rss_mb"] for r in mems)
        lines.append(
            f"{case:34} {statistics.median(all_times):10.1f} {min(all_times):8.1f} {medians:>22} "
            f"{max(r['peak_rss_mb'] for r in mems):12.0f} {f'{added[0]:.0f}-{added[-1]:.0f}':>12}"
        )
    text = "\n".join(lines) + "\n"
    (folder / "results.txt").write_text(text)
    print(text, end="")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        threads = int(sys.argv[8]) if len(sys.argv) > 8 else 1
        worker(
            sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], int(sys.argv[7]), threads
        )
    else:
        rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
        main(Path(sys.argv[1]), rounds, int(sys.argv[3]) if len(sys.argv) > 3 else 1)
