"""``python -m adagrad bench``: run the cases, print the table and the targets, write JSON and PNG."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from . import peers, report, targets
from .cases import (
    HalfCase,
    RuleCase,
    SparseCase,
    SparseHalfCase,
    SparseRuleCase,
    TrainingCase,
    dense_cases,
    half_cases,
    rule_cases,
    sparse_cases,
    sparse_half_cases,
    sparse_rule_cases,
    training_cases,
)
from .timing import interleaved_medians, interleaved_split_medians

# A name for a set of cases on the command line.
CASE_SETS = {
    "training": [c.name for c in training_cases()],
    "composite": [c.name for c in rule_cases() + sparse_rule_cases()],
    "half": [c.name for c in half_cases() + sparse_half_cases()],
}
# What each group holds, for --help (tests/test_bench.py checks every group has a line).
CASE_SET_HELP = {
    "training": "whole torch training steps with torch's Adagrad and adagrad.torch.Adagrad (need torch)",
    "composite": "the Proximal Adagrad (prox-*), Adagrad-DA (da-*) and FTRL-Proximal (ftrl-*) cases",
    "half": "the float16 / bfloat16 cases, dense and sparse, with the stochastic-rounding rows",
}


def all_cases() -> list[Any]:
    return [
        *dense_cases(),
        *half_cases(),
        *sparse_cases(),
        *sparse_half_cases(),
        *rule_cases(),
        *sparse_rule_cases(),
        *training_cases(),
    ]


def parse(argv: list[str] | None) -> argparse.Namespace:
    cases = [c.name for c in all_cases()]
    parser = argparse.ArgumentParser(
        prog="python -m adagrad bench",
        description="Runs the cases with adagrad and its peers interleaved, prints the table and the targets, "
        "writes results.json and throughput.png. Cases run in the order given.",
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        metavar="NAME",
        choices=cases + list(CASE_SETS),
        default=cases,
        help=f"cases to run (default: all): {' '.join(cases)}; or a group: {' '.join(CASE_SETS)}. "
        + "; ".join(f"'{name}': {what}" for name, what in CASE_SET_HELP.items()),
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        metavar="N",
        default=sorted({1, len(os.sched_getaffinity(0))}),
        help="thread counts to run each case with (default: 1 and all CPUs)",
    )
    parser.add_argument("--repeats", type=int, default=9, help="interleaved rounds per case (default 9)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results"),
        help="folder for results.json and throughput.png (default bench/results)",
    )
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    args = parser.parse_args(argv)
    args.cases = [name for case in args.cases for name in CASE_SETS.get(case, [case])]
    if args.repeats < 1 or any(t < 1 for t in args.threads):
        parser.error("--repeats and --threads must be >= 1")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"cannot create output folder {args.out}: {error}")
    if not os.access(args.out, os.W_OK):
        parser.error(f"output folder {args.out} is not writable")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    info = report.machine()
    print(
        f"adagrad {info['adagrad']} ({info['isa']}), torch {info['torch']}, numpy {info['numpy']}, "
        f"{info['processor']}, {info['cpus']} CPUs; FBGEMM peers: {info['fbgemm']}; "
        f"TensorFlow peers: {info['tensorflow']}",
        flush=True,
    )
    by_name = {c.name: c for c in all_cases()}
    chosen = [by_name[name] for name in dict.fromkeys(args.cases)]  # in the order given, each once
    training: ModuleType | None = None
    if any(isinstance(c, TrainingCase) for c in chosen):
        try:
            from . import training
        except ImportError as error:
            print(f"training cases skipped: they need torch ({error})", flush=True)
            chosen = [c for c in chosen if not isinstance(c, TrainingCase)]
    rows: list[dict[str, Any]] = []
    table = None  # the kind of table printed last: its header is printed once
    for threads in args.threads:
        peers.set_threads(threads)
        for case in chosen:
            if isinstance(case, TrainingCase):
                assert training is not None  # without it, the training cases were dropped above
                loops = training.training_peers(case)
                split = interleaved_split_medians(
                    {name: (loop, loop.clock) for name, loop in loops.items()}, args.repeats
                )
                del loops  # a training peer can hold hundreds of MB
                case_rows, kind = report.training_rows_for(case, threads, split), report.format_training_table
            elif isinstance(case, (HalfCase, SparseHalfCase)):
                try:  # bfloat16 needs ml_dtypes
                    half = peers.sparse_half_peers(case) if isinstance(case, SparseHalfCase) else peers.half_peers(case)
                except ImportError as error:
                    print(f"{case.name} skipped: {error}", flush=True)
                    continue
                medians = interleaved_medians(half, args.repeats)
                if isinstance(case, SparseHalfCase):
                    case_rows, kind = report.sparse_rows_for(case, threads, medians), report.format_sparse_table
                else:
                    case_rows, kind = report.rows_for(case, threads, medians), report.format_table
            elif isinstance(case, SparseRuleCase):
                medians = interleaved_medians(peers.sparse_rule_peers(case), args.repeats)
                case_rows, kind = report.sparse_rows_for(case, threads, medians), report.format_sparse_table
            elif isinstance(case, RuleCase):
                medians = interleaved_medians(peers.rule_peers(case), args.repeats)
                case_rows, kind = report.rule_rows_for(case, threads, medians), report.format_table
            elif isinstance(case, SparseCase):
                medians = interleaved_medians(peers.sparse_peers(case), args.repeats)
                case_rows, kind = report.sparse_rows_for(case, threads, medians), report.format_sparse_table
            else:
                medians = interleaved_medians(peers.all_peers(case), args.repeats)
                case_rows, kind = report.rows_for(case, threads, medians), report.format_table
            text = kind(case_rows)
            print(text.split("\n", 2)[2] if kind is table else ("\n" if rows else "") + text, flush=True)
            table = kind
            rows += case_rows
    results = targets.evaluate(rows)
    print("\nTargets\n" + targets.format_targets(results))
    report.write_json(args.out / "results.json", rows, results)
    written = [str(args.out / "results.json")]
    if not args.no_plot and report.plot(args.out / "throughput.png", rows):
        written.append(str(args.out / "throughput.png"))
    print("\nwrote " + ", ".join(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
