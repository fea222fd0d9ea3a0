"""The demo's figure: loss per optimizer on both problems, Adagrad's per-weight step size, the
error against the planted weights by feature frequency, the l1 sweep's loss against its exact
zeros, with those zeros by feature frequency, and Adagrad against AdagradDecay on the long drifting
run: their loss and their step size for a frequent weight. Drawn with matplotlib's Agg canvas: no display, no
pyplot global state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .drift import DriftComparison
from .logistic import SparseRun
from .metrics import BANDS, band_error
from .mlp import DenseRun
from .problems import HashedZipfProblem
from .report import final_loss
from .sparsity import L1Sweep, short

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["save_figure"]


class _Curve(Protocol):
    """What the loss panels read of a run: SparseRun and DenseRun both have it."""

    @property
    def losses(self) -> np.ndarray: ...
    @property
    def label(self) -> str: ...


#: by a run's position: Adagrad first, then SGD at the same lr, then SGD at its tuned lr
COLORS = ("tab:blue", "tab:orange", "tab:red")
#: the l1 sweep's optimizers (its Adagrad run is COLORS[0])
L1_COLORS = {"ProximalAdagrad": "tab:green", "AdagradDA": "tab:purple", "Ftrl": "tab:olive"}


def moving_average(values: np.ndarray, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Steps (1-based, at each window's end) and the mean over a window of about 1/40 of the run,
    at most ``points`` of them (more would not show, and would only make the PNG bigger)."""
    window = max(1, len(values) // 40)
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    every = max(1, len(smooth) // points)
    return np.arange(window, len(values) + 1)[::every], smooth[::every]


def save_figure(
    path: Path,
    problem: HashedZipfProblem,
    sparse: Sequence[SparseRun],
    digits: Sequence[DenseRun],
    traced: dict[str, int],
    l1: L1Sweep,
    drift: DriftComparison,
) -> None:
    """Write the 4×2 figure as a PNG. ``sparse[0]`` is Adagrad's run, with ``traced`` (label ->
    weight index) the weights whose accumulators it recorded; ``l1`` the l1 sweep; ``drift`` the
    drifting run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 14.5), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    (loss_sparse, loss_digits), (step_size, errors), (trade_off, zeros), (drift_loss, drift_step) = fig.subplots(4, 2)

    panels: list[tuple[Axes, Sequence[_Curve], str]] = [
        (loss_sparse, sparse, f"sparse logistic regression ({problem.n_weights:,} hashed weights)"),
        (loss_digits, digits, "MLP on the digits (training batches)"),
    ]
    for ax, runs, title in panels:
        for index, run in enumerate(runs):
            ax.plot(*moving_average(run.losses), label=run.label, color=COLORS[index])
        ax.set(title=title, xlabel="step", ylabel="loss (moving average)")
        ax.legend()

    adagrad_run = sparse[0]
    rates = adagrad_run.effective_lr()
    steps = np.arange(1, adagrad_run.steps + 1)
    every = max(1, len(steps) // 400)
    for column, (name, index) in enumerate(traced.items()):
        seen = int(adagrad_run.counts[index])
        step_size.plot(
            steps[::every],
            rates[::every, column],
            label=f"Adagrad, {name} weight (seen {seen:,} times)",
            color=COLORS[0],
            linestyle="-" if column == 0 else "--",
        )
    for index, run in enumerate(sparse[1:], start=1):
        step_size.axhline(run.lr, label=f"{run.label}, every weight", color=COLORS[index], linestyle=":")
    step_size.set(title="step size per unit gradient: lr/(√s + eps)", xlabel="step", yscale="log")
    step_size.legend(fontsize="small")

    width = 0.8 / len(sparse)
    positions = np.arange(len(BANDS))
    for index, run in enumerate(sparse):
        values = [band_error(run.weights, problem.true_weights, run.counts, band) for band in BANDS]
        errors.bar(
            positions + (index - (len(sparse) - 1) / 2) * width, values, width, label=run.label, color=COLORS[index]
        )
    untrained = [
        band_error(np.zeros_like(problem.true_weights), problem.true_weights, adagrad_run.counts, band)
        for band in BANDS
    ]
    errors.scatter(positions, untrained, marker="_", s=600, color="black", label="untrained (w = 0)", zorder=3)
    errors.set_xticks(positions, [band.name for band in BANDS])
    errors.set(
        title="error vs the planted weights, by feature frequency",
        xlabel="feature seen",
        ylabel="RMS error of the weights",
    )
    errors.set_ylim(0, 1.4 * np.nanmax(untrained + [errors.get_ylim()[1]]))
    errors.legend(fontsize="small", ncol=2, loc="upper right")

    plot_l1_trade_off(trade_off, l1)
    plot_zeros_by_frequency(zeros, l1)
    plot_drift(drift_loss, drift_step, drift)
    save_png(fig, path)


def plot_l1_trade_off(ax: Axes, sweep: L1Sweep) -> None:
    """Each run's loss against its share of irrelevant weights at exactly 0, a line per optimizer
    through its l1 values, Adagrad's loss as a reference line."""
    adagrad_run = sweep.runs[0]
    ax.axhline(final_loss(adagrad_run.losses), color=COLORS[0], linestyle=":", label=f"{adagrad_run.label} (no l1)")
    for name, color in L1_COLORS.items():
        runs = [run for run in sweep.runs if run.optimizer == name]
        if not runs:
            continue
        shares = [100 * sweep.zero_share(run, "irrelevant") for run in runs]
        losses = [final_loss(run.losses) for run in runs]
        ax.plot(shares, losses, marker="o", color=color, label=name)
        for run, share, loss in zip(runs, shares, losses):
            offset = (-44, 4) if share > 85 else (4, -12)  # keep the label inside the panel
            label = f"l1={short(run.l1)}"
            ax.annotate(label, (share, loss), textcoords="offset points", xytext=offset, fontsize="small")
    ax.set(
        title="sparse planted model: loss vs irrelevant weights at exactly 0",
        xlabel="irrelevant weights exactly 0 (%)",
        ylabel="loss, last 10% of steps",
        xlim=(0, 100),
    )
    ax.legend(fontsize="small", loc="upper left")


def plot_zeros_by_frequency(ax: Axes, sweep: L1Sweep) -> None:
    """Each l1 optimizer's largest-l1 run: the share of irrelevant (solid) and relevant (dashed)
    weights at exactly 0, by how often their features were seen."""
    positions = np.arange(len(BANDS))
    for run in sweep.last_runs():
        color = L1_COLORS.get(run.optimizer, "black")
        for which, style in (("irrelevant", "-"), ("relevant", "--")):
            shares = [100 * sweep.zero_share(run, which, band) for band in BANDS]
            ax.plot(positions, shares, marker="o", color=color, linestyle=style, label=f"{run.label}, {which}")
    ax.set_xticks(positions, [band.name for band in BANDS])
    ax.set(
        title="sparse planted model: weights exactly 0, by feature frequency",
        xlabel="feature seen",
        ylabel="exactly 0 (%)",
        ylim=(-3, 103),
    )
    ax.legend(fontsize="small", loc="lower left")


#: the drifting run's optimizers: Adagrad as everywhere, AdagradDecay its own colour
DRIFT_COLORS = (COLORS[0], "tab:brown")


def plot_drift(loss: Axes, step_size: Axes, comparison: DriftComparison) -> None:
    """The drifting run: each optimizer's loss and the planted model's, the drifts marked; and each
    optimizer's step size for the traced weight."""
    problem = comparison.problem
    drifts = range(problem.drift_every, comparison.steps, problem.drift_every) if problem.drifts else range(0)
    for index, at in enumerate(drifts):
        loss.axvline(at, color="0.85", linewidth=0.8, label="planted model redrawn in part" if index == 0 else None)
    for run, color in zip(comparison.runs, DRIFT_COLORS):
        loss.plot(*moving_average(run.losses), label=run.label, color=color)
    loss.plot(
        *moving_average(comparison.planted_losses), label="the planted model itself", color="black", linewidth=0.8
    )
    loss.set(title="drifting planted model: loss", xlabel="step", ylabel="loss (moving average)")
    bottom, top = loss.get_ylim()
    loss.set_ylim(bottom, top + 0.3 * (top - bottom))  # room for the legend above the curves
    loss.legend(fontsize="small", loc="upper center", ncol=2)

    steps = np.arange(1, comparison.steps + 1)
    every = max(1, len(steps) // 2000)  # AdagradDecay's saw-tooth needs the points
    for run, color in zip(comparison.runs, DRIFT_COLORS):
        step_size.plot(steps[::every], run.step_sizes[::every], label=run.label, color=color, linewidth=0.8)
    step_size.set(
        title="drifting planted model: most frequent weight's lr/√s",
        xlabel="step",
        yscale="log",
    )
    step_size.legend(fontsize="small")


def save_png(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a 128-colour palette PNG: a third of the size of matplotlib's RGBA file,
    with no visible difference for a line chart. Pillow is one of matplotlib's own dependencies."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(fig)  # the figure's canvas is Agg already; this one is typed as such
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    Image.fromarray(rgb).quantize(colors=128).save(path, optimize=True)
