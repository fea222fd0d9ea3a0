"""The demo's figure: loss per optimizer on both problems, Adagrad's per-weight step size, and the
error against the planted weights by feature frequency. Drawn with matplotlib's Agg canvas: no
display, no pyplot global state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .logistic import SparseRun
from .metrics import BANDS, band_error
from .mlp import DenseRun
from .problems import HashedZipfProblem

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
) -> None:
    """Write the 2×2 figure as a PNG. ``sparse[0]`` is Adagrad's run, with ``traced`` (label ->
    weight index) the weights whose accumulators it recorded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7.5), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    (loss_sparse, loss_digits), (step_size, errors) = fig.subplots(2, 2)

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
    save_png(fig, path)


def save_png(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a 128-colour palette PNG: a third of the size of matplotlib's RGBA file,
    with no visible difference for a line chart. Pillow is one of matplotlib's own dependencies."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(fig)  # the figure's canvas is Agg already; this one is typed as such
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3]
    Image.fromarray(rgb).quantize(colors=128).save(path, optimize=True)
