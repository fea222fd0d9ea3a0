"""Adagrad-DA: regularized dual averaging with l1 and l2, TensorFlow's ApplyAdagradDA."""

from __future__ import annotations

from .declare import Option, Rule, State

DUAL_AVERAGING = Rule(
    name="dual_averaging",
    title="Adagrad-DA",
    optimizer="AdagradDA",
    functions=("da_update", "sparse_da_update"),
    summary=(
        "Adagrad-DA keeps the sum of the gradients ``a`` and of their squares ``s``; the new param is the "
        "closed-form minimizer of the averaged linear loss plus the regularizer, independent of the old param: "
        "with ``l1 > 0`` every weight whose average gradient ``|a| / t`` stays at most ``l1`` is exactly 0. "
        "``t`` counts the steps in which the param had a grad (for a param stepped every time, TensorFlow's "
        "global step + 1). Sparse grads are TensorFlow's lazy form: an untouched row keeps the value computed "
        "when it was last touched, although the dense form would move it; its states are exactly the dense "
        "run's. TensorFlow's ``ApplyAdagradDA`` forms the same constants and differs only in "
        "``s += g * g`` (ours one fma)."
    ),
    formula="""\
a     <- a + g
s     <- fma(g, g, s)
theta <- -copysign(lr * max(|a| - l1_t, 0) / (sqrt(s) + l2_t), a)
l1_t = T(t) * l1,  l2_t = l2 * (T(t) * lr)          (T: the compute type; products rounded in T)""",
    citation=(
        'Duchi, Hazan & Singer (2011), section 3 (regularized dual averaging, after Xiao, "Dual Averaging '
        'Methods for Regularized Stochastic Learning and Online Optimization", JMLR 11, 2010); TensorFlow, '
        "``ApplyAdagradDA``."
    ),
    options=(
        Option("lr", 1e-2, "non_negative", "learning rate"),
        Option("l1", 0.0, "non_negative", "L1 regularization strength"),
        Option("l2", 0.0, "non_negative", "L2 regularization strength"),
        Option(
            "initial_gradient_squared_accumulator_value",
            0.1,
            "positive",
            "the start of ``s``, > 0 (TensorFlow's default; ``a`` starts at 0)",
            kernel=False,
        ),
    ),
    states=(
        State("grad_sum", "the sum of gradients", 0.0, "grad_sum", "grad_sum", signed=True),
        State(
            "sum", "the sum of squared gradients", "initial_gradient_squared_accumulator_value", "state_sum", "state"
        ),
    ),
    uses_step=True,
    examples={
        "optimizer": """\
>>> import numpy as np, adagrad
>>> w = np.array([1.0, 2.0])
>>> opt = adagrad.AdagradDA([w], lr=3.0)
>>> opt.step([np.array([0.1, 0.2])])  # TensorFlow's adagrad_da_test: [-0.904534, -1.603567]
True
>>> w
array([-0.90453403, -1.60356745])""",
        "function": """\
>>> import numpy as np, adagrad
>>> w = np.array([1.0, 2.0])
>>> a = np.zeros(2)
>>> s = np.full(2, 0.1)
>>> adagrad.da_update(w, np.array([0.1, 0.2]), a, s, step=1, lr=3.0)
True
>>> w  # TensorFlow's adagrad_da_test: [-0.904534, -1.603567]
array([-0.90453403, -1.60356745])""",
        "sparse_function": """\
>>> import numpy as np, adagrad
>>> table = np.zeros((3, 2))
>>> a, s = np.zeros((3, 2)), np.full((3, 2), 0.1)
>>> adagrad.sparse_da_update(table, np.array([1]), np.array([[0.1, 0.2]]), a, s, step=1, lr=3.0)
True
>>> table[1]
array([-0.90453403, -1.60356745])""",
        "torch": """\
>>> import torch, adagrad.torch
>>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
>>> opt = adagrad.torch.AdagradDA([w], lr=3.0)
>>> w.grad = torch.tensor([0.1, 0.2], dtype=torch.float64)
>>> opt.step()  # TensorFlow's adagrad_da_test: [-0.904534, -1.603567]
>>> w.detach()
tensor([-0.9045, -1.6036], dtype=torch.float64)""",
    },
)
