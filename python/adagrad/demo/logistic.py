"""Training loop of the sparse problem: logistic regression over hashed features, any optimizer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .optimizers import OPTIMIZERS, Timed, state_sum
from .problems import HashedZipfProblem, sigmoid
from .progress import Progress, no_progress

__all__ = ["ReferenceCheck", "SparseRun", "compare_with_reference", "loss_and_gradient", "train_logistic"]


@dataclass
class SparseRun:
    """What one optimizer did on the sparse problem."""

    optimizer: str
    lr: float
    #: mean log-loss of each batch, measured before the step that learns from it (progressive
    #: validation: every sample is new, so this is a test loss).
    losses: np.ndarray
    weights: np.ndarray
    #: how many samples contained each weight's feature(s)
    counts: np.ndarray
    #: Adagrad's accumulator s of the traced weights after each step, shape (steps, len(trace)); None for SGD
    traced_sums: np.ndarray | None
    #: Adagrad's final accumulator (None for SGD)
    final_sum: np.ndarray | None
    #: seconds spent inside ``optimizer.step`` alone
    step_seconds: float
    #: Adagrad's eps (None for SGD)
    eps: float | None = None

    @property
    def steps(self) -> int:
        return len(self.losses)

    def effective_lr(self) -> np.ndarray:
        """The step size each traced weight gets per unit of gradient after each step,
        ``lr / (√s + eps)`` for Adagrad (nan until the weight's first nonzero gradient), ``lr`` for SGD."""
        if self.traced_sums is None or self.eps is None:
            return np.full((self.steps, 1), self.lr)
        sums = self.traced_sums.astype(np.float64)
        with np.errstate(divide="ignore"):
            return np.where(sums > 0, self.lr / (np.sqrt(sums) + self.eps), np.nan)

    @property
    def label(self) -> str:
        return f"{self.optimizer} lr={self.lr:g}"


def loss_and_gradient(models: np.ndarray, indices: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The batch's mean log-loss under each row of ``models`` (shape (models, weights)) and its
    gradient: float64 losses, one per model, and float32 gradients shaped like ``models``, dense but
    zero outside the batch's features. ``indices[b, f]`` is the weight of sample b's field f.
    Each row's numbers are those it would get alone (the same operations, row by row)."""
    n_models, n_weights = models.shape
    logits = models[:, indices].sum(axis=2, dtype=np.float64)
    per_sample = np.logaddexp(0, logits) - labels * logits
    # row by row: NumPy's mean over axis 1 of several rows may sum in another order than of one
    losses = np.array([np.mean(row) for row in per_sample])
    residual = (sigmoid(logits) - labels) / len(labels)
    bins = (indices.ravel() + n_weights * np.arange(n_models)[:, None]).ravel()
    grads = np.bincount(bins, weights=np.repeat(residual, indices.shape[1], axis=1).ravel(), minlength=models.size)
    return losses, grads.reshape(models.shape).astype(np.float32)


def train_logistic(
    problem: HashedZipfProblem,
    optimizer: str,
    lr: float,
    steps: int,
    *,
    trace: tuple[int, ...] = (),
    progress: Progress = no_progress,
) -> SparseRun:
    """Train float32 weights from zero for ``steps`` batches of ``problem`` with the optimizer named
    ``optimizer`` (a key of :data:`~adagrad.demo.optimizers.OPTIMIZERS`) at learning rate ``lr``.

    The gradient of the mean log-loss is dense over all weights but zero outside the batch's
    features; Adagrad leaves a weight with a zero gradient (and its s) exactly as it was.
    ``trace`` names weights whose accumulator s is recorded after every step.
    """
    weights = np.zeros(problem.n_weights, np.float32)
    opt = Timed(OPTIMIZERS[optimizer]([weights], lr))
    live_sum = state_sum(opt)
    losses = np.empty(steps)
    counts = np.zeros(problem.n_weights, np.int64)
    traced = np.empty((steps, len(trace)), np.float32) if live_sum is not None else None
    batches = progress(problem.batches(steps), total=steps, desc=f"sparse {optimizer} lr={lr:g}")
    for step, (indices, labels) in enumerate(batches):
        step_losses, grads = loss_and_gradient(weights[None], indices, labels)
        losses[step] = step_losses[0]
        opt.step([grads[0]])
        counts += np.bincount(indices.ravel(), minlength=problem.n_weights)
        if traced is not None and live_sum is not None:
            traced[step] = live_sum[list(trace)]
    return SparseRun(
        optimizer=optimizer,
        lr=lr,
        losses=losses,
        weights=weights,
        counts=counts,
        traced_sums=traced,
        final_sum=None if live_sum is None else live_sum.copy(),
        step_seconds=opt.seconds,
        eps=None if live_sum is None else opt.optimizer.param_groups[0]["eps"],
    )


@dataclass
class ReferenceCheck:
    """The native optimizer against :class:`adagrad.reference.Adagrad` on the first steps."""

    steps: int
    n_weights: int
    #: elements of the weights or the accumulators whose bits differ (0: identical)
    differing: int
    native: SparseRun
    reference: SparseRun


def compare_with_reference(problem: HashedZipfProblem, lr: float, steps: int) -> ReferenceCheck:
    """Train ``steps`` batches with the native and with the pure-NumPy reference Adagrad and
    count the weights and accumulator elements whose bits differ."""
    native = train_logistic(problem, "Adagrad", lr, steps)
    reference = train_logistic(problem, "reference Adagrad", lr, steps)
    assert native.final_sum is not None and reference.final_sum is not None  # Adagrad runs keep their sums
    differing = sum(
        int(np.count_nonzero(a.view(np.uint32) != b.view(np.uint32)))
        for a, b in [(native.weights, reference.weights), (native.final_sum, reference.final_sum)]
    )
    return ReferenceCheck(steps, problem.n_weights, differing, native, reference)
