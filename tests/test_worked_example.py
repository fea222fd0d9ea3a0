"""The worked example of docs/semantics.md section 5: two weights, five steps, by hand."""

from __future__ import annotations

import numpy as np
import pytest

import adagrad

GRADS = [(0.5, 0.0), (0.4, 0.3), (0.3, 0.0), (0.5, 0.2), (0.4, 0.0)]
# step: (s1, s2, w1, w2), as printed in the source table (weights to 8 places).
TABLE = [
    (0.25, 0.00, -0.10000000, 0.00000000),
    (0.41, 0.09, -0.16246950, -0.10000000),
    (0.50, 0.09, -0.20489591, -0.10000000),
    (0.75, 0.13, -0.26263093, -0.15547001),
    (0.91, 0.13, -0.30456233, -0.15547001),
]


@pytest.mark.parametrize("implementation", [adagrad.Adagrad, adagrad.reference.Adagrad], ids=["native", "reference"])
def test_worked_example(implementation: type) -> None:
    w = np.zeros(2)
    opt = implementation([w], lr=0.1, eps=1e-8)
    for grad, (s1, s2, w1, w2) in zip(GRADS, TABLE):
        opt.step([np.array(grad)])
        np.testing.assert_allclose(opt.state[0]["sum"], [s1, s2], rtol=0, atol=1e-12)
        np.testing.assert_allclose(w, [w1, w2], rtol=0, atol=5e-9)


def test_effective_rate_of_an_untouched_weight() -> None:
    """s2 = 0 at step 1: eps outside the root gives lr/eps, inside gives lr/sqrt(eps)."""
    for inside, rate in [(False, 0.1 / 1e-8), (True, 0.1 / np.sqrt(1e-8))]:
        w = np.zeros(1)
        adagrad.update(w, np.array([1e-16]), np.zeros(1), step=1, lr=0.1, eps=1e-8, eps_inside_sqrt=inside)
        # g = 1e-16: sqrt(s) = 1e-16 is 1e-8 of eps (and s is 1e-24 of it), so the step is -rate * g.
        np.testing.assert_allclose(w, [-rate * 1e-16], rtol=1e-7)
