"""The command line: ``python -m adagrad [demo|info]``."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from . import Adagrad, __version__, cpu_info


def info(_: argparse.Namespace) -> int:
    print(json.dumps({"adagrad": __version__, **cpu_info()}, indent=2))
    return 0


def demo(args: argparse.Namespace) -> int:
    """Logistic regression on a planted model with sparse binary features: Adagrad trains it."""
    rng = np.random.default_rng(args.seed)
    n_samples, n_features = 4000, 500
    frequency = 0.5 / np.arange(1, n_features + 1)  # Zipf-like: a few common, many rare features
    x = (rng.random((n_samples, n_features)) < frequency).astype(np.float32)
    true_w = rng.standard_normal(n_features).astype(np.float32) * 2
    y = (rng.random(n_samples) < 1 / (1 + np.exp(-(x @ true_w)))).astype(np.float32)

    w = np.zeros(n_features, np.float32)
    opt = Adagrad([w], lr=0.5)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        z = x @ w
        p = 1 / (1 + np.exp(-z))
        loss = float(np.mean(np.logaddexp(0, z) - y * z))
        opt.step([x.T @ (p - y) / n_samples])
        if step == 1 or step % max(1, args.steps // 5) == 0:
            print(f"step {step:4d}  loss {loss:.4f}")
    elapsed = time.perf_counter() - start
    print(f"{args.steps} steps in {elapsed:.2f} s on {cpu_info()['isa']} with {cpu_info()['threads']} threads")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adagrad", description="Exact, SIMD-vectorised Adagrad.")
    commands = parser.add_subparsers(dest="command")
    demo_parser = commands.add_parser("demo", help="train a small model with Adagrad (the default)")
    demo_parser.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    demo_parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    commands.add_parser("info", help="version, instruction sets, threads")
    commands.add_parser("bench", help="benchmarks against peers and the memory ceiling (--help for options)",
                        add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        from .benchmarks.cli import main as bench_main

        return bench_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "info":
        return info(args)
    if args.command is None:
        args = parser.parse_args(["demo"])
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    return demo(args)


if __name__ == "__main__":
    sys.exit(main())
