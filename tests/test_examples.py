"""The runnable examples train for real: the loss falls."""

from __future__ import annotations

import numpy as np
import pytest

from adagrad.examples import sparse_embeddings


def test_sparse_embeddings_loss_falls() -> None:
    losses, planted = sparse_embeddings.train(steps=400, report_every=100, quiet=True)
    assert len(losses) == 4 and np.isfinite(losses).all()
    assert losses[-1] < losses[0] - 0.02  # it learns ...
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert planted < losses[-1] < np.log(2.0)  # ... toward the planted model's loss


def test_sparse_embeddings_cli_rejects_too_few_steps() -> None:
    with pytest.raises(SystemExit) as exit_info:
        sparse_embeddings.main(["--steps", "5"])
    assert exit_info.value.code == 2
