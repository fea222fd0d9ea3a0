"""Adagrad: the rule torch.optim.Adagrad runs, reproduced bit for bit (its fused CPU kernel's maths)."""

from __future__ import annotations

from .declare import Option, Rule, State

ADAGRAD = Rule(
    name="adagrad",
    title="Adagrad",
    optimizer="Adagrad",
    functions=("update", "sparse_update"),
    summary=(
        "Adagrad scales each coordinate's step by the root of its sum of squared gradients, so that rare "
        "features, whose sums stay small, keep learning fast. The maths are torch.optim.Adagrad's, bit for bit "
        "its ``fused=True`` kernel, with Keras's and optax's variants as options (``eps_inside_sqrt``, "
        "decoupled weight decay) and FBGEMM's row-wise state for embedding tables (``rowwise``)."
    ),
    formula="""\
clr   = lr / fma(t - 1, lr_decay, 1)          (in double, then rounded to the compute type)
g     <- fma(theta, weight_decay, g)         weight decay, coupled (the default)
theta <- theta * (1 - clr * weight_decay)    weight decay, decoupled_weight_decay=True
s     <- fma(g, g, s)
theta <- theta - (clr * g) / (sqrt(s) + eps)        [eps_inside_sqrt: / sqrt(s + eps)]
row-wise (rowwise=True, one s per row of d elements, sparse grads):
s     <- s + (sum_j g_j^2) / d,   m = clr / (sqrt(s) + eps),   theta_j <- theta_j - m * g_j""",
    citation=(
        'Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic '
        'Optimization", JMLR 12 (2011).'
    ),
    options=(
        Option("lr", 1e-2, "non_negative", "learning rate"),
        Option("lr_decay", 0.0, "non_negative", "learning-rate decay: ``clr = lr / (1 + (t - 1) * lr_decay)``"),
        Option("weight_decay", 0.0, "non_negative", "L2 penalty (coupled: added to the gradient)"),
        Option("initial_accumulator_value", 0.0, "non_negative", "the sums' start", kernel=False),
        Option("eps", 1e-10, "non_negative", "added to the denominator"),
        Option("decoupled_weight_decay", False, "flag", "decay the weights directly, AdamW-style"),
        Option("eps_inside_sqrt", False, "flag", "``sqrt(s + eps)``, Keras 3's and optax's placement"),
        Option(
            "rowwise",
            False,
            "flag",
            "one sum per row of each 2-D param (FBGEMM's row-wise Adagrad; sparse grads)",
            kernel=False,
            shapes_states=True,
        ),
    ),
    states=(State("sum", "the sum of squared gradients", "initial_accumulator_value", "state_sum", "state"),),
    uses_step=True,
    rowwise=True,
    examples={
        "optimizer": """\
>>> import numpy as np, adagrad
>>> w = np.zeros(3, dtype=np.float32)
>>> opt = adagrad.Adagrad([w], lr=0.1)
>>> opt.step([np.array([1.0, -2.0, 0.0], dtype=np.float32)])
True
>>> w
array([-0.1,  0.1,  0. ], dtype=float32)
>>> int(opt.state[0]["step"]), opt.state[0]["sum"]
(1, array([1., 4., 0.], dtype=float32))""",
        "function": """\
>>> import numpy as np, adagrad
>>> w = np.array([1.0, 2.0])
>>> s = np.zeros(2)
>>> adagrad.update(w, np.array([0.5, -0.5]), s, step=1, lr=0.1)
True
>>> w, s
(array([0.9, 2.1]), array([0.25, 0.25]))

With stochastic rounding, a step of 2e-4 down from 1.0 in float16 (under half the float16 spacing
there, 4.9e-4: round to nearest keeps every 1.0) lands on 1 - 2**-11 with probability 0.41:

>>> w16 = np.ones(8, np.float16)
>>> adagrad.update(w16, np.ones(8, np.float16), np.zeros(8, np.float32), step=1, lr=2e-4,
...                stochastic_rounding=True, seed=0)
True
>>> w16
array([0.9995, 1.    , 1.    , 0.9995, 1.    , 0.9995, 0.9995, 1.    ],
      dtype=float16)""",
        "sparse_function": """\
>>> import numpy as np, adagrad
>>> table = np.zeros((5, 2), np.float32)
>>> state = np.zeros_like(table)
>>> idx = np.array([3, 1, 3])
>>> vals = np.array([[1, 1], [2, 2], [1, -3]], np.float32)
>>> adagrad.sparse_update(table, idx, vals, state, step=1, lr=0.1)
True
>>> table
array([[ 0. ,  0. ],
       [-0.1, -0.1],
       [ 0. ,  0. ],
       [-0.1,  0.1],
       [ 0. ,  0. ]], dtype=float32)""",
        "torch": """\
>>> import torch, adagrad.torch
>>> w = torch.nn.Parameter(torch.zeros(3))
>>> opt = adagrad.torch.Adagrad([w], lr=0.1)
>>> w.grad = torch.tensor([1.0, -2.0, 0.0])
>>> opt.step()
>>> w.detach()
tensor([-0.1000,  0.1000,  0.0000])""",
    },
    notes={
        "torch": (
            "``adagrad.torch.Adagrad`` keeps ``torch.optim.Adagrad``'s constructor (``lr``, ``lr_decay``, "
            "``weight_decay``, ``initial_accumulator_value``, ``eps`` and ``foreach`` positional; ``foreach`` and "
            "``fused`` accepted for compatibility) and its maths, bit for bit ``torch.optim.Adagrad(fused=True)``, "
            "16-bit params included (its vector body's narrowed constants). Its ``state_dict`` interchanges with "
            "``torch.optim.Adagrad`` both ways: a group records ``fused=True`` unless it has had sparse grads "
            "(then ``fused=None``, torch's sparse path); options torch lacks (``eps_inside_sqrt``, "
            "``decoupled_weight_decay``, ``rowwise``, stochastic rounding) do not continue there. Weight decay with "
            "sparse grads is lazy (torch raises instead)."
        ),
        "sparse_function": (
            "The shape of ``state`` picks the variant: ``(R, D)`` element-wise, each touched row updated "
            "exactly as :func:`adagrad.update` would; ``(R,)`` row-wise (FBGEMM / TorchRec "
            "EXACT_ROWWISE_ADAGRAD), one sum per row, whose sum of squares has one fixed order on every "
            "CPU. Weight decay is lazy: it applies to the touched rows only (torch refuses weight decay "
            "with sparse gradients; FBGEMM is lazy too)."
        ),
    },
)
