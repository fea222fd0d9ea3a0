"""The long run on a drifting planted model: :class:`adagrad.Adagrad` against
:class:`adagrad.AdagradDecay`, whose accumulators decay so that its step size does not vanish."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import adagrad

from .logistic import loss_and_gradient
from .optimizers import L1_INITIAL_SUM, Timed
from .problems import HashedZipfProblem
from .progress import Progress, no_progress

__all__ = [
    "DECAY_RATE",
    "DECAY_STEPS_PER_RUN",
    "DRIFTS_PER_RUN",
    "DRIFT_FRACTION",
    "RUN_MULTIPLE",
    "WINDOWS",
    "DriftComparison",
    "DriftRun",
    "drift_problem",
    "train_drift",
]

#: The drifting run is this many times as long as the others (8,000 steps at the default 2,000):
#: long enough that Adagrad's step size for a frequent weight has fallen to half its value at
#: 2,000 steps, as 1/√t does.
RUN_MULTIPLE = 4
#: The planted model drifts this many times per run's length (every 1,000 steps at the defaults) ...
DRIFTS_PER_RUN = 8
#: ... each time redrawing this share of the planted weights: 87% have been redrawn by the end.
DRIFT_FRACTION = 0.25
#: AdagradDecay multiplies its accumulators by DECAY_RATE this many times per run (every 250 steps
#: at the defaults). Its accumulator then holds about DECAY_STEP / (1 − DECAY_RATE) = 500 steps'
#: worth of squared gradients, half the time between two drifts: its step size stays where
#: Adagrad's is after 500 steps, a rate that learns a drift's new weights well within a drift's
#: time, where Adagrad's keeps shrinking. On the default problem (seed 0, 8,000 steps), the loss of
#: the last quarter was 0.034 below Adagrad's decaying every 250 steps by 0.5, 0.030 every 250 by 0.8,
#: 0.035 every 500 by 0.5, 0.034 every 100 by 0.8, and 0.030 every 1,000 by 0.5 (memory 2,000 steps).
DECAY_STEPS_PER_RUN = 32
DECAY_RATE = 0.5
#: The loss is reported as the mean over each of this many successive windows of the run.
WINDOWS = 4


def drift_problem(seed: int, steps: int) -> HashedZipfProblem:
    """The default problem of ``seed``, its planted model drifting over a run of ``steps``."""
    return HashedZipfProblem(seed, drift_every=max(1, steps // DRIFTS_PER_RUN), drift_fraction=DRIFT_FRACTION)


@dataclass
class DriftRun:
    """One optimizer's run on the drifting problem."""

    optimizer: str
    lr: float
    #: mean log-loss of each batch, before the step that learns from it (a test loss, as in SparseRun)
    losses: np.ndarray
    weights: np.ndarray
    #: the traced weight's step size per unit gradient after each step: lr / (√s + eps) for
    #: Adagrad, lr / √s for AdagradDecay (no eps); nan until the weight's first nonzero gradient
    step_sizes: np.ndarray
    #: seconds spent inside ``optimizer.step`` alone
    step_seconds: float

    @property
    def steps(self) -> int:
        return len(self.losses)

    @property
    def label(self) -> str:
        return f"{self.optimizer} lr={self.lr:g}"


@dataclass
class DriftComparison:
    """Adagrad's and AdagradDecay's runs, in that order, on one pass of a drifting stream."""

    problem: HashedZipfProblem
    runs: list[DriftRun]
    #: the planted model's own loss on each batch: the best any model could do, on average
    planted_losses: np.ndarray
    #: the weight whose step size was traced
    traced: int
    decay_step: int
    decay_rate: float

    @property
    def steps(self) -> int:
        return len(self.planted_losses)

    def windows(self) -> list[tuple[int, int]]:
        """The (first, last) 1-based steps of each of the WINDOWS windows."""
        edges = np.linspace(0, self.steps, WINDOWS + 1).round().astype(int)
        return [(int(a) + 1, int(b)) for a, b in zip(edges[:-1], edges[1:])]

    def window_means(self, losses: np.ndarray) -> list[float]:
        """The mean of ``losses`` over each window."""
        return [float(np.mean(losses[a - 1 : b])) for a, b in self.windows()]


def train_drift(
    problem: HashedZipfProblem,
    lr: float,
    steps: int,
    *,
    decay_step: int,
    decay_rate: float = DECAY_RATE,
    trace: int = 0,
    progress: Progress = no_progress,
) -> DriftComparison:
    """Train Adagrad and AdagradDecay (every ``decay_step`` steps by ``decay_rate``) at learning
    rate ``lr``, each from zero float32 weights, for ``steps`` batches of ``problem``, in lockstep
    over one pass of the stream (see :func:`~adagrad.demo.sparsity.train_l1_sweep`); ``trace`` is
    the weight whose step size is recorded.

    Adagrad starts its accumulators at 0 and divides by √s + eps (eps = 1e-10); AdagradDecay, which
    has no eps and must start above 0, starts at eps² (:data:`~adagrad.demo.optimizers.L1_INITIAL_SUM`),
    its floor too. So the two take the same steps, to rounding, until the first decay.
    """
    models = np.zeros((2, problem.n_weights), np.float32)
    optimizers = [
        Timed(adagrad.Adagrad([models[0]], lr=lr)),
        Timed(
            adagrad.AdagradDecay(
                [models[1]],
                lr=lr,
                accumulator_decay_step=decay_step,
                accumulator_decay_rate=decay_rate,
                initial_accumulator_value=L1_INITIAL_SUM,
            )
        ),
    ]
    eps = optimizers[0].optimizer.param_groups[0]["eps"]
    sums = [opt.optimizer.state[0]["sum"] for opt in optimizers]
    losses = np.empty((2, steps))
    planted_losses = np.empty(steps)
    traced_sums = np.empty((2, steps))
    planted = problem.true_weights
    batches = progress(problem.batches(steps), total=steps, desc="sparse drifting, Adagrad and AdagradDecay")
    for step, (indices, labels) in enumerate(batches):
        if problem.drifts and step % problem.drift_every == 0:
            planted = problem.planted(step)
        logits = planted[indices].sum(axis=1, dtype=np.float64)
        planted_losses[step] = np.mean(np.logaddexp(0, logits) - labels * logits)
        losses[:, step], grads = loss_and_gradient(models, indices, labels)
        for opt, grad in zip(optimizers, grads):
            opt.step([grad])
        traced_sums[:, step] = [float(each[trace]) for each in sums]
    # AdagradDecay's s never falls below eps² > 0 once the weight has had a gradient; before, its s is eps² exactly
    seen = np.cumsum(traced_sums[0] > 0) > 0
    with np.errstate(divide="ignore"):
        sizes = [
            np.where(seen, lr / (np.sqrt(traced_sums[0]) + eps), np.nan),
            np.where(seen, lr / np.sqrt(traced_sums[1]), np.nan),
        ]
    runs = [
        DriftRun(name, lr, run_losses, weights, size, opt.seconds)
        for name, run_losses, weights, size, opt in zip(("Adagrad", "AdagradDecay"), losses, models, sizes, optimizers)
    ]
    return DriftComparison(problem, runs, planted_losses, trace, decay_step, decay_rate)
