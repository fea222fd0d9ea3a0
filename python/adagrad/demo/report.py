"""The demo's text summary: the error table, the bitwise check, the l1 sweep, the drifting run, the
digits, the throughput."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

import adagrad

from .metrics import BANDS, FREQUENT, RARE, Band, band_error

if TYPE_CHECKING:
    from .drift import DriftRun
    from .logistic import SparseRun
    from .mlp import DenseRun
    from .pipeline import DemoResult
    from .sparsity import L1Run

__all__ = ["summary"]


def summary(result: DemoResult) -> str:
    """The text the command prints and writes to ``summary.txt``."""
    info = adagrad.cpu_info()
    config = result.config
    head = (
        f"adagrad {adagrad.__version__} demo: seed {config.seed}, {config.steps:,} steps per run, "
        f"{info['isa']} kernel, {info['threads']} threads"
    )
    written = ", ".join(str(path) for path in result.files)
    tail = f"Wall time {result.seconds:.1f} s. Wrote {written}"
    sections = [
        sparse_section(result),
        l1_section(result),
        drift_section(result),
        digits_section(result),
        throughput_section(result),
    ]
    return "\n\n".join([head, *sections, tail])


def fmt(value: float, spec: str = ".3f") -> str:
    return "—" if math.isnan(value) else format(value, spec)


def ratio(numerator: float, denominator: float) -> str:
    return (
        "—"
        if math.isnan(numerator) or math.isnan(denominator) or denominator == 0
        else f"{numerator / denominator:.2f}"
    )


def final_loss(losses: np.ndarray) -> float:
    """Mean loss over the last tenth of the run (the per-batch loss is noisy)."""
    return float(np.mean(losses[-max(1, len(losses) // 10) :]))


def sparse_section(result: DemoResult) -> str:
    problem, runs = result.problem, result.sparse
    adagrad_run, _sgd_same, sgd_tuned = runs
    counts, truth = adagrad_run.counts, problem.true_weights
    zero = np.zeros_like(truth)

    def errors(band: Band) -> list[float]:
        """Each run's error in the band, then the untrained model's."""
        return [band_error(run.weights, truth, counts, band) for run in runs] + [band_error(zero, truth, counts, band)]

    header = ["feature seen", "weights"] + [run.label for run in runs] + ["untrained"]
    rows = [[band.name, f"{int(band.mask(counts).sum()):,}"] + [fmt(e) for e in errors(band)] for band in BANDS]
    rows.append(["loss, last 10% of steps", ""] + [fmt(final_loss(run.losses)) for run in runs] + [fmt(math.log(2))])
    rare, frequent = errors(RARE), errors(FREQUENT)
    check = result.reference
    verdict = (
        "identical bits"
        if check.differing == 0
        else f"DIFFERENT: {check.differing:,} elements differ (a bug: please report it)"
    )
    samples = problem.batch_size * adagrad_run.steps
    return "\n".join(
        [
            "Sparse logistic regression with a planted model",
            f"  {problem.n_fields} categorical fields × {problem.n_values:,} values (Zipf {problem.zipf_exponent:g} "
            f"frequencies) hashed into {problem.n_weights:,} float32 weights;",
            f"  {samples:,} fresh samples in batches of {problem.batch_size}.",
            "  Error: RMS of (learned − planted) weights, by how often a feature was seen.",
            "",
            table(header, rows),
            "",
            f"  Rare features (seen {RARE.name}): Adagrad's error is {ratio(rare[0], rare[1])} of SGD's at the same lr "
            f"({fmt(rare[0], '.2f')} vs {fmt(rare[1], '.2f')})",
            f"  and {ratio(rare[0], rare[2])} of SGD's at lr={sgd_tuned.lr:g}, SGD's best lr on the default problem "
            f"({fmt(rare[2], '.2f')}).",
            f"  Frequent features (seen {FREQUENT.name}): {fmt(frequent[0], '.2f')} vs {fmt(frequent[1], '.2f')} "
            f"and {fmt(frequent[2], '.2f')}.",
            f"  adagrad.Adagrad vs adagrad.reference.Adagrad, first {check.steps} steps: {verdict} (weights and sums).",
        ]
    )


#: weights whose features were seen this often have the evidence to tell relevant from irrelevant
WELL_SEEN = Band(100)


def l1_section(result: DemoResult) -> str:
    sweep = result.l1
    problem, runs = sweep.problem, sweep.runs
    adagrad_loss = final_loss(runs[0].losses)

    def percent(share: float) -> str:
        return fmt(100 * share, ".1f") + "%"

    header = ["optimizer", "loss", "vs Adagrad", "all = 0", "irrelevant = 0", "relevant = 0", "relevant: error"]
    rows = []
    for index, run in enumerate(runs):
        loss = final_loss(run.losses)
        change = "" if index == 0 else f"{100 * (loss / adagrad_loss - 1):+.1f}%"
        shares = [percent(sweep.zero_share(run, which)) for which in ("all", "irrelevant", "relevant")]
        rows.append([run.label, fmt(loss), change, *shares, fmt(sweep.relevant_error(run))])
    seen = sweep.seen()
    well_seen = "; ".join(
        f"{run.label} {percent(sweep.zero_share(run, 'irrelevant', WELL_SEEN))} vs "
        f"{percent(sweep.zero_share(run, 'relevant', WELL_SEEN))}"
        for run in sweep.last_runs()
    )
    return "\n".join(
        [
            "L1 on a sparse planted model: the same features, each planted weight 0 with probability "
            f"{problem.irrelevant_fraction:g}",
            f"  Of the {int(seen.sum()):,} weights seen in training, {int((problem.irrelevant() & seen).sum()):,} are "
            f"irrelevant (planted 0) and {int((problem.relevant() & seen).sum()):,} relevant;",
            f"  the other {int((~seen).sum()):,} (no feature hashes to them, or none was drawn) stay 0 under every "
            "optimizer.",
            f"  All at lr={runs[0].lr:g} from w = 0, no l2. Loss: last 10% of steps. = 0: share of weights exactly 0.",
            "  Error: RMS of (learned − planted).",
            "",
            table(header, rows),
            "",
            f"  Exactly 0 among the weights seen {WELL_SEEN.name}, irrelevant vs relevant:",
            f"  {well_seen}.",
        ]
    )


def drift_section(result: DemoResult) -> str:
    comparison = result.drift
    problem, runs = comparison.problem, comparison.runs
    windows = comparison.windows()
    header = ["optimizer"] + [f"steps {a:,}–{b:,}" if i == 0 else f"{a:,}–{b:,}" for i, (a, b) in enumerate(windows)]
    header.append("step size at the end")
    rows = [
        [run.label] + [fmt(loss) for loss in comparison.window_means(run.losses)] + [fmt(run.step_sizes[-1], ".4f")]
        for run in runs
    ]
    planted = comparison.window_means(comparison.planted_losses)
    rows.append(["the planted model itself"] + [fmt(loss) for loss in planted] + [""])
    ours, decayed = (comparison.window_means(run.losses)[-1] for run in runs)
    drifts = (comparison.steps - 1) // problem.drift_every if problem.drifts else 0
    sizes = [run.step_sizes[-1] for run in runs]
    multiple = comparison.steps // max(1, result.config.steps)
    ours_gap, decayed_gap = fmt(ours - planted[-1]), fmt(decayed - planted[-1])
    last_period = runs[1].step_sizes[-comparison.decay_step :]
    low, high = float(np.nanmin(last_period)), float(np.nanmax(last_period))
    return "\n".join(
        [
            f"A long run on a drifting planted model: {comparison.steps:,} steps, {multiple} times the others",
            f"  The same features; every {problem.drift_every:,} steps each planted weight is redrawn with probability "
            f"{problem.drift_fraction:g} ({drifts} drifts).",
            f"  Both at lr={runs[0].lr:g} from w = 0; AdagradDecay multiplies its accumulators by "
            f"{comparison.decay_rate:g} every {comparison.decay_step:,} steps.",
            "  Loss: mean over each quarter of the run. Step size: lr/√s of the most frequent weight.",
            "",
            table(header, rows),
            "",
            f"  Last quarter: AdagradDecay's loss is {fmt(ours - decayed)} below Adagrad's, {decayed_gap} above the "
            f"planted model's (Adagrad: {ours_gap}).",
            f"  Its step size for the most frequent weight ends {ratio(sizes[1], sizes[0])} times Adagrad's "
            f"({ratio(low, sizes[0])} to {ratio(high, sizes[0])} times over its",
            f"  last {comparison.decay_step:,} steps, from one decay to the next).",
        ]
    )


def digits_section(result: DemoResult) -> str:
    n_train, n_test = result.digits_sizes
    rows = [[run.label, f"{100 * run.test_accuracy:.1f}%", f"{final_loss(run.losses):.3f}"] for run in result.digits]
    return "\n".join(
        [
            f"Digits (scikit-learn, {n_train:,} training / {n_test:,} test images), "
            f"MLP 64–32–10 ({result.digits[0].n_params:,} params), batches of 64",
            table(["optimizer", "test accuracy", "training loss, last 10% of steps"], rows),
        ]
    )


def throughput_section(result: DemoResult) -> str:
    n_weights = result.problem.n_weights
    check = result.reference
    lines: list[tuple[str, int, SparseRun | DenseRun | L1Run | DriftRun]] = [
        ("adagrad.Adagrad, sparse problem", n_weights, result.sparse[0]),
        ("adagrad.reference.Adagrad, sparse", n_weights, check.reference),
        ("SGD in NumPy, sparse problem", n_weights, result.sparse[1]),
        *[(f"adagrad.{run.optimizer}, sparse", n_weights, run) for run in result.l1.last_runs()],
        ("adagrad.AdagradDecay, sparse", n_weights, result.drift.runs[1]),
        ("adagrad.Adagrad, digits MLP", result.digits[0].n_params, result.digits[0]),
        ("SGD in NumPy, digits MLP", result.digits[1].n_params, result.digits[1]),
    ]
    rows = []
    for name, size, run in lines:
        per_second = run.steps / run.step_seconds if run.step_seconds > 0 else math.inf
        rows.append([name, f"{size:,} × {run.steps:,}", f"{size * per_second / 1e6:,.1f}", f"{per_second:,.0f}"])
    return "\n".join(
        [
            "Throughput: time inside optimizer.step only (data and gradients not counted)",
            table(["optimizer", "params × steps", "M updates/s", "steps/s"], rows),
            "  (an SGD update is one multiply-subtract; Adagrad's is an fma, a square root and a division)",
        ]
    )


def table(header: list[str], rows: list[list[str]]) -> str:
    """Columns aligned, the first to the left and the others to the right, indented by two."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  " + "   ".join(cells).rstrip())
    return "\n".join(lines)
