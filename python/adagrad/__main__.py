"""The command line: ``python -m adagrad [demo|info|bench] ...``; each command lives elsewhere."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from . import __version__, cpu_info

EXIT_ERROR = 2
MAX_STEPS = 1_000_000
MAX_SEED = 2**32 - 1  # scikit-learn's random_state bound


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], else a message naming the bounds."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:,} and {high:,}, got {value:,}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m adagrad",
        description=(
            "Exact, SIMD-vectorised Adagrad for NumPy and PyTorch (adagrad.torch.Adagrad, a drop-in "
            "torch.optim.Adagrad). Without a command, runs the demo."
        ),
    )
    parser.add_argument("--version", action="version", version=f"adagrad {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{demo,info,bench}")

    demo = commands.add_parser(
        "demo",
        help="train on an embedded problem: why Adagrad (the default command)",
        description=(
            "Trains a sparse logistic regression with a planted model (hashed categorical features with "
            "Zipf frequencies) with adagrad.Adagrad and with plain SGD, checks the native optimizer against "
            "the NumPy reference bit for bit, trains adagrad.ProximalAdagrad, adagrad.AdagradDA and adagrad.Ftrl at a "
            "few l1 on a sparse planted model, trains a small MLP on scikit-learn's digits, then prints a "
            "summary and writes summary.txt and demo.png into the output folder. Needs "
            "pip install 'adagrad[demo]'."
        ),
        epilog=(
            "Exit status: 0 done; 1 native and reference disagree; 2 bad option, missing package or unwritable folder."
        ),
    )
    demo.add_argument(
        "--steps",
        type=bounded_int(1, MAX_STEPS),
        default=2000,
        metavar="N",
        help="optimizer steps of each training run (default: 2000)",
    )
    demo.add_argument(
        "--seed",
        type=bounded_int(0, MAX_SEED),
        default=0,
        metavar="N",
        help="seed of the planted problem, the digits split and the MLP (default: 0)",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("adagrad-demo"),
        metavar="DIR",
        help="folder for demo.png and summary.txt, created if needed (default: ./adagrad-demo)",
    )
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars; print only the summary")
    demo.add_argument("--no-plot", dest="plot", action="store_false", help="skip the figure (no matplotlib needed)")

    info = commands.add_parser(
        "info",
        help="version, instruction sets, threads, build",
        description="Which kernel runs, what this CPU and build offer, how many threads.",
    )
    info.add_argument("--json", action="store_true", help="print adagrad.cpu_info() as JSON")

    commands.add_parser(
        "bench", add_help=False, help="benchmarks against peers and the memory ceiling (bench --help for its options)"
    )
    return parser


def run_demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, DemoError, run

    try:
        result = run(DemoConfig(steps=args.steps, seed=args.seed, out=args.out, quiet=args.quiet, plot=args.plot))
    except DemoError as error:
        print(f"python -m adagrad demo: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    print(result.summary)
    return 0 if result.reference.differing == 0 else 1


def run_info(args: argparse.Namespace) -> int:
    from ._info import describe

    info = cpu_info()
    print(json.dumps(info, indent=2) if args.json else describe(info))
    for error in info.get("errors", []):
        print(f"python -m adagrad info: error: {error}", file=sys.stderr)
    return EXIT_ERROR if info.get("errors") else 0


def run_bench(argv: list[str]) -> int:
    """Hand the remaining arguments to the benchmark harness, imported only now."""
    from .benchmarks.cli import main as bench_main

    return bench_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # before argparse, which would claim the harness's own options
        return run_bench(argv[1:])
    args = build_parser().parse_args(argv or ["demo"])
    return run_info(args) if args.command == "info" else run_demo(args)


if __name__ == "__main__":
    sys.exit(main())
