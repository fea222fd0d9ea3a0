"""AdagradDecay: DeepRec's Adagrad whose accumulators decay, so that long runs keep learning."""

from __future__ import annotations

from .declare import Option, Rule, State

ADAGRAD_DECAY = Rule(
    name="adagrad_decay",
    title="AdagradDecay",
    optimizer="AdagradDecay",
    functions=("decay_update", "sparse_decay_update"),
    summary=(
        "Adagrad's rate ``lr / sqrt(s)`` only falls, because ``s`` only grows: in a long run on drifting data "
        "it vanishes. AdagradDecay (DeepRec, Alibaba's recommender fork of TensorFlow) multiplies every sum by "
        "``accumulator_decay_rate`` once per ``accumulator_decay_step`` steps, never below "
        "``initial_accumulator_value``. By step ``t`` (the param's own count, this step included) "
        "``t // accumulator_decay_step`` decays are due; the ones a sum has not had are taken first, each "
        "rounded to the state's dtype as at its own step. A 2-D C-contiguous param keeps one decay count per "
        "row, so a row its sparse grads leave untouched takes the decays it missed when next touched: the result "
        "is exactly the dense run's with zero grads for the untouched rows (DeepRec's sparse kernel catches up "
        "at most one decay per touch). As in DeepRec the decays come before ``g * g`` is added, and there is no "
        "eps."
    ),
    formula="""\
s     <- max(s * rate, initial_accumulator_value)   for each decay due, each rounded to the state's dtype
s     <- fma(g, g, s)
theta <- theta - (lr * g) / sqrt(s)""",
    citation=(
        "DeepRec (Alibaba), ``AdagradDecayOptimizer`` (``training/adagrad_decay.py``); Duchi, Hazan & Singer, "
        '"Adaptive Subgradient Methods for Online Learning and Stochastic Optimization", JMLR 12 (2011), for '
        "Adagrad itself."
    ),
    options=(
        Option("lr", 1e-2, "non_negative", "learning rate"),
        Option("accumulator_decay_step", 100000, "positive_int", "steps between decays (DeepRec's default)"),
        Option("accumulator_decay_rate", 0.9, "open_unit", "the factor of each decay, in (0, 1)"),
        Option("initial_accumulator_value", 0.1, "positive", "the sums' start and floor, > 0"),
    ),
    states=(
        State("sum", "the decaying sum of squared gradients", "initial_accumulator_value", "state_sum", "state"),
        State("decay_count", "the decays had, per row", 0.0, "decay_counts", "decay_counts", kind="decay_count"),
    ),
    uses_step=True,
    examples={
        "optimizer": """\
>>> import numpy as np, adagrad
>>> w = np.array([1.0, 2.0])
>>> opt = adagrad.AdagradDecay([w], lr=1.0, accumulator_decay_step=3, accumulator_decay_rate=0.9)
>>> for _ in range(4):  # DeepRec's adagrad_decay_test, testBasic
...     _ = opt.step([np.full(2, 0.1)])
>>> w, opt.state[0]["sum"]
(array([-0.16080623,  0.83919377]), array([0.128, 0.128]))""",
        "function": """\
>>> import numpy as np, adagrad
>>> w, s, k = np.array([1.0, 2.0]), np.full(2, 0.1), np.zeros(1, np.int64)
>>> for t in range(1, 5):  # DeepRec's adagrad_decay_test, testBasic: decays at step 3
...     _ = adagrad.decay_update(w, np.full(2, 0.1), s, k, step=t, lr=1.0,
...                              accumulator_decay_step=3, accumulator_decay_rate=0.9)
>>> w, s, k
(array([-0.16080623,  0.83919377]), array([0.128, 0.128]), array([1]))""",
        "sparse_function": """\
>>> import numpy as np, adagrad
>>> table, state, counts = np.ones((3, 2)), np.full((3, 2), 0.1), np.zeros(3, np.int64)
>>> adagrad.sparse_decay_update(table, np.array([2]), np.full((1, 2), 0.5), state, counts,
...                             step=7, lr=0.1, accumulator_decay_step=2, accumulator_decay_rate=0.5)
True
>>> state[2], counts  # three decays due (7 // 2): 0.1 is already the floor, then + 0.5 ** 2
(array([0.35, 0.35]), array([0, 0, 3]))""",
        "torch": """\
>>> import torch, adagrad.torch
>>> w = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
>>> opt = adagrad.torch.AdagradDecay([w], lr=1.0, accumulator_decay_step=3, accumulator_decay_rate=0.9)
>>> for _ in range(4):  # DeepRec's adagrad_decay_test, testBasic: a decay at step 3
...     w.grad = torch.full_like(w, 0.1)
...     opt.step()
>>> w.detach(), opt.state[w]["sum"], opt.state[w]["decay_count"]
(tensor([-0.1608,  0.8392], dtype=torch.float64), tensor([0.1280, 0.1280], dtype=torch.float64), tensor([1]))""",
    },
)
