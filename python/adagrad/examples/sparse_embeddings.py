"""Train embeddings with sparse Adagrad: a factorization machine on hashed categorical features.

    python -m adagrad.examples.sparse_embeddings [--steps N] [--seed S]

Six categorical fields, each with 2,000 values drawn from a Zipf law (a few values are everywhere,
most are rare, as with user, item or word ids), hashed into one table of 2**16 rows. Labels come
from a planted factorization machine. The model,

    z = b + sum_f w[x_f] + sum_{f<g} <v[x_f], v[x_g]>

keeps w (the linear weights) and v (16-dim embeddings) in tables that only see sparse gradients:
each step touches the few thousand rows in its batch, through `adagrad.Adagrad` with
`SparseGrad(indices, values)`; v keeps row-wise state (one accumulator per row).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import adagrad

FIELDS, VALUES_PER_FIELD, ROWS, DIM, BATCH = 6, 2_000, 1 << 16, 16, 512


def hashed_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, FIELDS) table rows: Zipf(1.1) values per field, hashed with the field number."""
    values = (rng.zipf(1.1, size=(n, FIELDS)) - 1) % VALUES_PER_FIELD
    return ((values * 2654435761 + np.arange(FIELDS) * 40503) % ROWS).astype(np.int64)


def fm_logits(ids: np.ndarray, bias: float, w: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The logits, and the summed embeddings of each sample (needed by the gradient)."""
    emb = v[ids]  # (B, F, D)
    summed = emb.sum(axis=1)  # (B, D)
    pairs = 0.5 * ((summed**2).sum(axis=1) - (emb**2).sum(axis=(1, 2)))
    return bias + w[ids, 0].sum(axis=1) + pairs, summed


def train(
    steps: int = 1000, seed: int = 0, report_every: int = 100, quiet: bool = False, lr: float = 0.1
) -> tuple[list[float], float]:
    """The mean training loss of each block of `report_every` steps, and the planted model's loss
    on the same samples (the best a model can do on these labels)."""
    rng = np.random.default_rng(seed)
    true_w = rng.normal(0, 0.5, (ROWS, 1)).astype(np.float32)
    true_v = rng.normal(0, 0.3, (ROWS, DIM)).astype(np.float32)

    bias = np.zeros(1, np.float32)
    w = np.zeros((ROWS, 1), np.float32)
    v = adagrad.aligned_zeros((ROWS, DIM))  # rows on whole cache lines (README, "Speed")
    v[...] = rng.normal(0, 0.01, (ROWS, DIM))
    opt = adagrad.Adagrad(
        [
            {"params": {"w": w}},
            {"params": {"v": v}, "rowwise": True},
            {"params": {"bias": bias}},
        ],
        lr=lr,
    )

    losses, block, planted, start = [], [], [], time.perf_counter()
    for step in range(1, steps + 1):
        ids = hashed_ids(rng, BATCH)
        true_z, _ = fm_logits(ids, 0.0, true_w, true_v)
        y = (rng.random(BATCH) < 1 / (1 + np.exp(-true_z))).astype(np.float32)
        planted.append(float(np.mean(np.logaddexp(0, true_z) - y * true_z)))
        z, summed = fm_logits(ids, float(bias[0]), w, v)
        block.append(float(np.mean(np.logaddexp(0, z) - y * z)))
        dz = ((1 / (1 + np.exp(-z)) - y) / BATCH).astype(np.float32)  # dL/dz, (B,)
        flat = ids.ravel()
        grad_w = np.repeat(dz, FIELDS)[:, None]  # one row per occurrence
        grad_v = (dz[:, None, None] * (summed[:, None, :] - v[ids])).reshape(-1, DIM)
        opt.step(
            [
                {"w": adagrad.SparseGrad(flat, grad_w)},
                {"v": adagrad.SparseGrad(flat, np.ascontiguousarray(grad_v, np.float32))},
                {"bias": np.array([dz.sum()], np.float32)},
            ]
        )
        if step % report_every == 0:
            losses.append(float(np.mean(block)))
            block = []
            if not quiet:
                touched = np.unique(flat).size
                print(f"step {step:5d}  loss {losses[-1]:.4f}  ({touched:,} of {ROWS:,} rows touched this step)")
    best = float(np.mean(planted))
    if not quiet:
        elapsed = time.perf_counter() - start
        print(
            f"{steps} steps in {elapsed:.1f} s; loss {losses[0]:.4f} -> {losses[-1]:.4f} "
            f"(the planted model scores {best:.4f} on the same samples; 0.6931 is a coin toss)"
        )
    return losses, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args(argv)
    if args.steps < 100:
        parser.error("--steps must be >= 100")
    train(args.steps, args.seed, lr=args.lr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
