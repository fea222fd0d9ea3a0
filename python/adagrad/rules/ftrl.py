"""FTRL-Proximal: per-coordinate follow-the-regularized-leader, TensorFlow's ApplyFtrlV2 and Keras's Ftrl."""

from __future__ import annotations

from .declare import Option, Rule, State

FTRL = Rule(
    name="ftrl",
    title="FTRL-Proximal",
    optimizer="Ftrl",
    functions=("ftrl_update", "sparse_ftrl_update"),
    summary=(
        "FTRL-Proximal, the click-through-rate learner of hashed sparse features, keeps Adagrad's sum of squared "
        "gradients ``n`` and a linear sum ``z`` of the gradients less the regularizer's pull; the new param is "
        "the closed-form minimizer of the linear loss ``z . theta`` plus l1, l2 and the per-coordinate proximal "
        "terms, independent of the old param but through ``z``: exactly 0 wherever ``|z| <= l1``, so the model "
        "is sparse without a thresholding pass. ``lr_power`` sets the rate's decay (``-0.5``: Adagrad's "
        "``1 / sqrt(n)``, taken by a correctly rounded square root; ``0``: a fixed rate; any other value "
        "``<= 0``: ``n ** -lr_power`` by the C library's ``pow`` in double, rounded once, the function the "
        "reference calls too). ``l2_shrinkage`` adds an L2 penalty to the loss (it enters ``z``, not ``n``), "
        "``beta`` is Keras's (``l2 + beta / (2 * lr)``), ``multiply_linear_by_lr`` TensorFlow's attribute (``z`` "
        "holds ``lr`` times the sum: the same maths, other roundings, and ``lr`` may change between steps "
        "without moving the weights). The operations are TensorFlow's, in its order, but for ``n``: "
        "one fma, Adagrad's sum (TensorFlow: ``n + g * g``). Sparse grads update their rows' ``n`` and ``z``; "
        "the states are element-wise (a row-wise ``n`` would give every coordinate of a row one rate, and ``z`` "
        "is per coordinate anyway: FTRL's sparsity is per coordinate)."
    ),
    formula="""\
g'    = g + 2 * l2_shrinkage * theta           (when l2_shrinkage > 0)
n'    = fma(g, g, n)
r(x)  = x ** -lr_power        (sqrt(x) at lr_power = -0.5; 1 at lr_power = 0)
l2'   = l2 + beta / (2 * lr)
z     <- z + (g' - ((r(n') - r(n)) / lr) * theta)     [multiply_linear_by_lr: z + (lr * g' - (r(n') - r(n)) * theta)]
q     = r(n') / lr + 2 * l2'                          [r(n') + 2 * l2' * lr]
theta <- (sign(z) * l1 - z) / q  if |z| > l1, else 0  [l1 * lr in place of l1]
n     <- n'""",
    citation=(
        'McMahan et al., "Ad Click Prediction: a View from the Trenches", KDD 2013, Algorithm 1 (per-coordinate '
        "FTRL-Proximal with l1 and l2); TensorFlow, ``ApplyFtrlV2`` / ``SparseApplyFtrlV2``; Keras, ``Ftrl`` "
        "(``beta``)."
    ),
    options=(
        Option("lr", 1e-3, "positive", "learning rate, > 0 (Keras's default)"),
        Option("lr_power", -0.5, "non_positive", "the rate's power, <= 0: ``-0.5`` Adagrad's ``1 / sqrt(n)``, 0 fixed"),
        Option(
            "initial_accumulator_value",
            0.1,
            "non_negative",
            "the start of ``n``, >= 0 (TensorFlow's default)",
            kernel=False,
        ),
        Option("l1", 0.0, "non_negative", "L1 regularization strength: exact zeros where ``|z| <= l1``"),
        Option("l2", 0.0, "non_negative", "L2 regularization strength (the paper's, in the closed form)"),
        Option("l2_shrinkage", 0.0, "non_negative", "L2 penalty on the loss: ``g' = g + 2 * l2_shrinkage * theta``"),
        Option("beta", 0.0, "non_negative", "Keras's beta: ``l2 + beta / (2 * lr)``"),
        Option(
            "multiply_linear_by_lr", False, "flag", "``z`` holds ``lr`` times the linear sum (TensorFlow's attribute)"
        ),
    ),
    states=(
        State(
            "n",
            "the accumulator, the sum of squared gradients",
            "initial_accumulator_value",
            "accumulator",
            "accumulator",
        ),
        State("z", "the linear sum", 0.0, "linear", "linear", signed=True),
    ),
    uses_step=False,
    examples={
        "optimizer": """\
>>> import numpy as np, adagrad
>>> w = np.array([0.5, 0.001, -2.0])
>>> opt = adagrad.Ftrl([w], lr=0.1, l1=0.5)
>>> opt.step([np.array([0.3, 0.3, -0.3])])
True
>>> w  # |z| <= l1 for the first two: exactly 0
array([ 0.        ,  0.        , -0.36551491])""",
        "function": """\
>>> import numpy as np, adagrad
>>> w = np.array([0.5, 0.001, -2.0])
>>> n, z = np.full(3, 0.1), np.zeros(3)
>>> adagrad.ftrl_update(w, np.array([0.3, 0.3, -0.3]), n, z, lr=0.1, l1=0.5)
True
>>> w, z  # z = g - ((sqrt(n') - sqrt(n)) / lr) * w; the first two |z| <= l1: exactly 0
(array([ 0.        ,  0.        , -0.36551491]), array([-0.29831064,  0.29880338,  2.09324257]))""",
        "sparse_function": """\
>>> import numpy as np, adagrad
>>> table = np.ones((4, 2))
>>> n, z = np.full((4, 2), 0.1), np.zeros((4, 2))
>>> adagrad.sparse_ftrl_update(table, np.array([2, 0, 2]), np.full((3, 2), 0.5), n, z, lr=0.5, l1=0.1)
True
>>> table[:, 0]  # row 2 took its summed grad 1.0; row 0 its 0.5, |z| <= l1: exactly 0
array([0.        , 1.        , 0.17408423, 1.        ])""",
        "torch": """\
>>> import torch, adagrad.torch
>>> w = torch.nn.Parameter(torch.tensor([0.5, 0.001, -2.0]))
>>> opt = adagrad.torch.Ftrl([w], lr=0.1, l1=0.5)
>>> w.grad = torch.tensor([0.3, 0.3, -0.3])
>>> opt.step()
>>> w.detach()  # |z| <= l1 for the first two: exactly 0
tensor([ 0.0000,  0.0000, -0.3655])""",
    },
)
