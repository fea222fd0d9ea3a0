"""``python -m adagrad demo``: why Adagrad, shown on an embedded problem in well under a minute.

Modules, one job each:
    problems    the planted sparse problem (hashed Zipf features, from a seed; sparse or drifting
                if asked) and the digits
    optimizers  plain SGD and a timing wrapper, beside adagrad.Adagrad and its reference, and the
                l1 optimizers (adagrad.ProximalAdagrad, adagrad.AdagradDA)
    logistic    the sparse logistic-regression training loop; native vs reference bitwise
    sparsity    the l1 sweep on a sparse planted model, in lockstep; its exact zeros
    drift       Adagrad vs adagrad.AdagradDecay on a long run with a drifting planted model
    mlp         the digits MLP and its training loop
    metrics     error against the planted weights by feature frequency
    report      the text summary
    plotting    the PNG figure (matplotlib, Agg canvas)
    progress    tqdm bars, or none
    deps        the optional packages, checked up front
    pipeline    all of it in order: :func:`run` with a :class:`DemoConfig`
"""

from .deps import DemoError, MissingDependencyError
from .pipeline import DemoConfig, DemoResult, run

__all__ = ["DemoConfig", "DemoError", "DemoResult", "MissingDependencyError", "run"]
