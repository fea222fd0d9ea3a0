"""``python -m adagrad bench``: run the cases, print the table and the targets, write JSON and PNG."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import peers, report, targets
from .cases import SparseCase, dense_cases, sparse_cases
from .timing import interleaved_medians


def parse(argv: list[str] | None) -> argparse.Namespace:
    cases = [c.name for c in dense_cases()] + [c.name for c in sparse_cases()]
    parser = argparse.ArgumentParser(prog="python -m adagrad bench", description=__doc__)
    parser.add_argument(
        "--cases",
        nargs="+",
        metavar="NAME",
        choices=cases,
        default=cases,
        help=f"cases to run (default: all): {' '.join(cases)}",
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
        f"{info['processor']}, {info['cpus']} CPUs",
        flush=True,
    )
    chosen = [c for c in dense_cases() + sparse_cases() if c.name in args.cases]
    rows = []
    for threads in args.threads:
        peers.set_threads(threads)
        for case in chosen:
            if isinstance(case, SparseCase):
                medians = interleaved_medians(peers.sparse_peers(case), args.repeats)
                case_rows = report.sparse_rows_for(case, threads, medians)
            else:
                case_rows = report.rows_for(case, threads, interleaved_medians(peers.all_peers(case), args.repeats))
            print(
                report.format_table(case_rows).split("\n", 2)[2] if rows else report.format_table(case_rows), flush=True
            )
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
