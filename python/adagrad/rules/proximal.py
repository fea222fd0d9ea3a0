"""Proximal Adagrad: composite mirror descent with l1 and l2, TensorFlow's ApplyProximalAdagrad."""

from __future__ import annotations

from .declare import Option, Rule, State

PROXIMAL = Rule(
    name="proximal",
    title="Proximal Adagrad",
    optimizer="ProximalAdagrad",
    functions=("proximal_update", "sparse_proximal_update"),
    summary=(
        "Proximal Adagrad minimizes the loss plus ``l1 * |theta|_1 + (l2 / 2) * |theta|^2`` by an Adagrad step "
        "followed by the regularizer's proximal step: with ``l1 > 0`` a weight whose steps stay within "
        "``eta * l1`` of zero is held at exactly 0, so the model is truly sparse. TensorFlow's "
        "``ApplyProximalAdagrad`` with every operation correctly rounded (its CPU kernel takes ``lr * rsqrt(s)`` "
        "through Eigen's approximation: the last bits differ). Its sums start at a value > 0; ``eps`` (0 by "
        "default, TensorFlow's maths) guards the rate where a sum is 0, in a state warm-started from Adagrad's."
    ),
    formula="""\
s     <- fma(g, g, s)
eta   <- lr / (sqrt(s) + eps)                    (lr / sqrt(s) with eps = 0)
v     <- fma(-eta, g, theta)                        (theta - eta * g)
v     <- copysign(max(fma(-eta, l1, |v|), 0), v)    if l1 > 0: exact zeros
theta <- v / fma(eta, l2, 1)""",
    citation=(
        'Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic '
        'Optimization", JMLR 12 (2011), section 3 (composite mirror descent); TensorFlow, '
        "``ApplyProximalAdagrad``."
    ),
    options=(
        Option("lr", 1e-2, "non_negative", "learning rate"),
        Option("l1", 0.0, "non_negative", "L1 regularization strength (0: no shrinkage, as TensorFlow)"),
        Option("l2", 0.0, "non_negative", "L2 regularization strength"),
        Option("eps", 0.0, "non_negative", "added to the rate's denominator (0: TensorFlow's maths)"),
        Option(
            "initial_accumulator_value", 0.1, "positive", "the sums' start, > 0 (TensorFlow's default)", kernel=False
        ),
    ),
    states=(State("sum", "the sum of squared gradients", "initial_accumulator_value", "state_sum", "state"),),
    uses_step=False,
    examples={
        "optimizer": """\
>>> import numpy as np, adagrad
>>> w = np.array([0.5, 0.001, -2.0])
>>> opt = adagrad.ProximalAdagrad([w], lr=0.1, l1=0.5)
>>> opt.step([np.array([0.3, 0.3, -0.3])])
True
>>> w  # the middle weight lands within eta * l1 of zero: exactly 0
array([ 0.31646741, -0.        , -1.81646741])""",
        "function": """\
>>> import numpy as np, adagrad
>>> w = np.array([0.5, 0.001, -2.0])
>>> s = np.full(3, 0.1)
>>> adagrad.proximal_update(w, np.array([0.3, 0.3, -0.3]), s, lr=0.1, l1=0.5)
True
>>> w
array([ 0.31646741, -0.        , -1.81646741])""",
        "sparse_function": """\
>>> import numpy as np, adagrad
>>> table = np.ones((4, 2))
>>> state = np.full((4, 2), 0.1)
>>> adagrad.sparse_proximal_update(table, np.array([2, 0, 2]), np.full((3, 2), 0.5), state,
...                                lr=0.5, l1=0.9)
True
>>> table[:, 0]  # row 2 took its summed grad 1.0, row 0 its 0.5 (and is exactly 0)
array([0.        , 1.        , 0.09421054, 1.        ])""",
        "torch": """\
>>> import torch, adagrad.torch
>>> w = torch.nn.Parameter(torch.tensor([0.5, 0.001, -2.0]))
>>> opt = adagrad.torch.ProximalAdagrad([w], lr=0.1, l1=0.5)
>>> w.grad = torch.tensor([0.3, 0.3, -0.3])
>>> opt.step()
>>> w.detach()  # the middle weight lands within eta * l1 of zero: exactly 0
tensor([ 0.3165, -0.0000, -1.8165])""",
    },
)
