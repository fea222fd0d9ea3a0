"""The l1 sweep: :class:`adagrad.ProximalAdagrad`, :class:`adagrad.AdagradDA` and :class:`adagrad.Ftrl` at a
few l1 beside Adagrad on a planted sparse model, and how many weights each run holds at exactly 0, among the
irrelevant and the relevant ones."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .logistic import loss_and_gradient
from .metrics import Band
from .optimizers import OPTIMIZERS, Timed, with_l1
from .problems import HashedZipfProblem
from .progress import Progress, no_progress

__all__ = ["IRRELEVANT_FRACTION", "SWEEP", "L1Run", "L1Sweep", "exact_zero_share", "short", "train_l1_sweep"]

#: The share of the planted weights set to exactly 0 in the sweep's problem: half the features
#: say nothing about the label.
IRRELEVANT_FRACTION = 0.5
#: (optimizer, l1) of each run after Adagrad's, picked on the sweep's problem with the demo's
#: defaults (seed 0, 2,000 steps, lr 0.3): ProximalAdagrad from an l1 that costs under 2% of loss to
#: one past where it holds most irrelevant weights at 0; AdagradDA at the l1 where it holds most of
#: them at 0 for about 2% of loss, and at three times that; Ftrl (its l1 bounds |z|, a sum of
#: gradients, not a step) at the largest l1 that costs no loss and where it holds about 90% of the
#: irrelevant weights at 0 for under 2%.
SWEEP: tuple[tuple[str, float], ...] = (
    ("ProximalAdagrad", 3e-5),
    ("ProximalAdagrad", 1e-4),
    ("ProximalAdagrad", 3e-4),
    ("AdagradDA", 1e-5),
    ("AdagradDA", 3e-5),
    ("Ftrl", 1e-2),
    ("Ftrl", 5e-2),
)


@dataclass
class L1Run:
    """One optimizer's run in the sweep: Adagrad (``l1`` 0), ProximalAdagrad, AdagradDA or Ftrl at ``l1``."""

    optimizer: str
    lr: float
    l1: float
    #: mean log-loss of each batch, before the step that learns from it (a test loss, as in SparseRun)
    losses: np.ndarray
    weights: np.ndarray
    #: seconds spent inside ``optimizer.step`` alone
    step_seconds: float

    @property
    def steps(self) -> int:
        return len(self.losses)

    @property
    def label(self) -> str:
        return (
            f"{self.optimizer} lr={self.lr:g}"
            if self.optimizer == "Adagrad"
            else f"{self.optimizer} l1={short(self.l1)}"
        )


@dataclass
class L1Sweep:
    """The sweep's runs on its problem: Adagrad first, then those of the sweep in its order."""

    problem: HashedZipfProblem
    runs: list[L1Run]
    #: how many samples contained each weight's feature(s)
    counts: np.ndarray

    def seen(self) -> np.ndarray:
        """True for each weight that some sample of the run contained."""
        return self.counts > 0

    def zero_share(self, run: L1Run, which: str, band: Band | None = None) -> float:
        """The share of ``which`` weights that ``run`` holds at exactly 0: "all" the weights, or the
        "irrelevant" or "relevant" ones among those seen in training (within ``band`` of feature
        frequency if given). A weight never seen is 0 under every optimizer and says nothing."""
        if which == "all":
            mask = np.ones(self.problem.n_weights, bool)
        elif which in ("irrelevant", "relevant"):
            planted = self.problem.irrelevant() if which == "irrelevant" else self.problem.relevant()
            mask = planted & self.seen()
        else:
            raise ValueError(f"expected 'all', 'irrelevant' or 'relevant', got {which!r}")
        return exact_zero_share(run.weights, mask if band is None else mask & band.mask(self.counts))

    def last_runs(self) -> list[L1Run]:
        """Each l1 optimizer's last run in the sweep (its largest l1), in the sweep's order."""
        last = {run.optimizer: run for run in self.runs[1:]}
        return list(last.values())

    def relevant_error(self, run: L1Run) -> float:
        """RMS of (learned − planted) over the relevant weights seen in training."""
        relevant = self.problem.relevant() & self.seen()
        difference = run.weights[relevant].astype(np.float64) - self.problem.true_weights[relevant]
        return float(np.sqrt(np.mean(difference**2)))


def short(value: float) -> str:
    """A small number as 3e-5, not 3e-05; 0.25 as 0.25."""
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:g}"
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def exact_zero_share(weights: np.ndarray, mask: np.ndarray) -> float:
    """The share of ``weights[mask]`` that are exactly ±0 (nan if ``mask`` selects none)."""
    return float(np.mean(weights[mask] == 0)) if mask.any() else math.nan


def train_l1_sweep(
    problem: HashedZipfProblem,
    lr: float,
    sweep: tuple[tuple[str, float], ...],
    steps: int,
    *,
    progress: Progress = no_progress,
) -> L1Sweep:
    """Train Adagrad, then each (optimizer, l1) of ``sweep`` (no l2; see
    :func:`~adagrad.demo.optimizers.with_l1`), at learning rate ``lr``, each from zero float32
    weights, for ``steps`` batches of ``problem``.

    The models train in lockstep over one pass of the stream: each batch is drawn once, and every
    model takes its step from its own loss and gradient, all computed by one
    :func:`~adagrad.demo.logistic.loss_and_gradient` call (Adagrad's run is
    :func:`~adagrad.demo.logistic.train_logistic`'s, bit for bit). The gradients are dense:
    ProximalAdagrad shrinks every weight toward 0 at every step, one absent from the batch too,
    AdagradDA's step count t counts every step, and Ftrl recomputes every weight from its z and n.
    """
    makers = [OPTIMIZERS["Adagrad"]] + [with_l1(name, l1) for name, l1 in sweep]
    models = np.zeros((len(makers), problem.n_weights), np.float32)
    optimizers = [Timed(make([weights], lr)) for make, weights in zip(makers, models)]
    losses = np.empty((len(models), steps))
    counts = np.zeros(problem.n_weights, np.int64)
    batches = progress(problem.batches(steps), total=steps, desc=f"sparse l1 sweep ({len(models)} models)")
    for step, (indices, labels) in enumerate(batches):
        losses[:, step], grads = loss_and_gradient(models, indices, labels)
        for opt, grad in zip(optimizers, grads):
            opt.step([grad])
        counts += np.bincount(indices.ravel(), minlength=problem.n_weights)
    specs = [("Adagrad", 0.0), *sweep]
    runs = [
        L1Run(name, lr, l1, run_losses, weights, opt.seconds)
        for (name, l1), run_losses, weights, opt in zip(specs, losses, models, optimizers)
    ]
    return L1Sweep(problem, runs, counts)
