"""The dense model: a one-hidden-layer softmax MLP in NumPy, trained on the digits with any optimizer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .optimizers import OPTIMIZERS, Timed
from .problems import DigitsData
from .progress import Progress, no_progress

__all__ = ["DenseRun", "train_mlp"]

Params = dict[str, np.ndarray]


@dataclass
class DenseRun:
    """What one optimizer did on the digits."""

    optimizer: str
    lr: float
    #: cross-entropy of each training batch, before the step that learns from it
    losses: np.ndarray
    test_accuracy: float
    n_params: int
    #: seconds spent inside ``optimizer.step`` alone
    step_seconds: float

    @property
    def steps(self) -> int:
        return len(self.losses)

    @property
    def label(self) -> str:
        return f"{self.optimizer} lr={self.lr:g}"


def init_params(n_in: int, n_hidden: int, n_out: int, seed: int) -> Params:
    """He-initialised float32 weights, zero biases: x → relu(x·w1 + b1) → ·w2 + b2."""
    rng = np.random.default_rng(seed)
    return {
        "w1": (rng.standard_normal((n_in, n_hidden)) * np.sqrt(2 / n_in)).astype(np.float32),
        "b1": np.zeros(n_hidden, np.float32),
        "w2": (rng.standard_normal((n_hidden, n_out)) * np.sqrt(1 / n_hidden)).astype(np.float32),
        "b2": np.zeros(n_out, np.float32),
    }


def forward(params: Params, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hidden activations and log-probabilities of the classes."""
    hidden = np.maximum(x @ params["w1"] + params["b1"], 0)
    logits = hidden @ params["w2"] + params["b2"]
    logits -= logits.max(axis=1, keepdims=True)
    return hidden, logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def loss_and_grads(params: Params, x: np.ndarray, y: np.ndarray) -> tuple[float, Params]:
    """Mean cross-entropy of the batch and its gradient with respect to every param."""
    hidden, log_probs = forward(params, x)
    rows = np.arange(len(y))
    loss = float(-log_probs[rows, y].mean())
    d_logits = np.exp(log_probs)
    d_logits[rows, y] -= 1
    d_logits /= len(y)
    d_hidden = (d_logits @ params["w2"].T) * (hidden > 0)
    grads = {"w1": x.T @ d_hidden, "b1": d_hidden.sum(axis=0), "w2": hidden.T @ d_logits, "b2": d_logits.sum(axis=0)}
    return loss, grads


def train_mlp(
    data: DigitsData,
    optimizer: str,
    lr: float,
    steps: int,
    *,
    seed: int,
    n_hidden: int = 32,
    batch_size: int = 64,
    progress: Progress = no_progress,
) -> DenseRun:
    """Train the MLP for ``steps`` random batches of the training images with the optimizer named
    ``optimizer`` at learning rate ``lr``; the initial weights and the batches depend only on
    ``seed``, so every optimizer starts from and sees the same."""
    params = init_params(data.x_train.shape[1], n_hidden, int(data.y_train.max()) + 1, seed)
    opt = Timed(OPTIMIZERS[optimizer](params, lr))  # a dict of named arrays
    rng = np.random.default_rng(seed)
    losses = np.empty(steps)
    for step in progress(range(steps), total=steps, desc=f"digits {optimizer} lr={lr:g}"):
        batch = rng.integers(0, len(data.y_train), batch_size)
        losses[step], grads = loss_and_grads(params, data.x_train[batch], data.y_train[batch])
        opt.step(grads)
    _, log_probs = forward(params, data.x_test)
    return DenseRun(
        optimizer=optimizer,
        lr=lr,
        losses=losses,
        test_accuracy=float(np.mean(log_probs.argmax(axis=1) == data.y_test)),
        n_params=sum(p.size for p in params.values()),
        step_seconds=opt.seconds,
    )
