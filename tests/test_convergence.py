"""Training on real data: logistic regression on scikit-learn's bundled breast-cancer set."""

from __future__ import annotations

import numpy as np
import pytest

import adagrad

datasets = pytest.importorskip("sklearn.datasets")
torch = pytest.importorskip("torch")

SETTINGS = {"lr": 0.1, "lr_decay": 1e-3, "weight_decay": 1e-4, "initial_accumulator_value": 0.1}
EPOCHS = 300


def standardized_data() -> tuple[np.ndarray, np.ndarray]:
    x, y = datasets.load_breast_cancer(return_X_y=True)
    return (x - x.mean(axis=0)) / x.std(axis=0), y.astype(np.float64)


def loss_and_grads(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    z = x @ w + b[0]
    loss = float(np.mean(np.logaddexp(0.0, z) - y * z))  # binary cross-entropy with logits
    residual = (1.0 / (1.0 + np.exp(-z)) - y) / len(y)
    return loss, x.T @ residual, np.array([residual.sum()])


def train_numpy(x: np.ndarray, y: np.ndarray) -> list[float]:
    w, b = np.zeros(x.shape[1]), np.zeros(1)
    opt = adagrad.Adagrad({"w": w, "b": b}, **SETTINGS)
    losses = []
    for _ in range(EPOCHS):
        loss, gw, gb = loss_and_grads(w, b, x, y)
        losses.append(loss)
        opt.step({"w": gw, "b": gb})
    return losses


def train_torch(x: np.ndarray, y: np.ndarray) -> list[float]:
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adagrad([w, b], **SETTINGS)  # torch's default (for-each) path
    losses = []
    for _ in range(EPOCHS):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt)
        loss.backward()
        losses.append(loss.item())
        opt.step()
    return losses


def test_reaches_the_same_loss_as_torch() -> None:
    x, y = standardized_data()
    ours, theirs = train_numpy(x, y), train_torch(x, y)
    assert ours[0] == pytest.approx(np.log(2.0))
    assert ours[-1] < 0.1  # from 0.693: it really trained
    # Same data, same maths; torch's default path rounds sqrt differently, so not bitwise.
    np.testing.assert_allclose(ours[::50] + [ours[-1]], theirs[::50] + [theirs[-1]], rtol=1e-6)
