"""adagrad: exact, SIMD-vectorised Adagrad for NumPy (and PyTorch) on CPU.

Public API:
    Adagrad            the stateful optimizer over NumPy arrays (save / load: checkpoints)
    ProximalAdagrad    Proximal Adagrad (l1 / l2, exact zeros), the same API
    AdagradDA          Adagrad-DA (regularized dual averaging), the same API
    AdagradDecay       DeepRec's Adagrad with decaying accumulators, the same API
    Ftrl               FTRL-Proximal (TensorFlow's and Keras's, l1 exact zeros), the same API
    SparseGrad         a sparse grad for ``step``: (indices, values) of some rows of a 2-D param
    NonFiniteGradError a grad held a NaN or an infinity under nonfinite="raise" (a ValueError)
    update             one in-place update of one array (functional form)
    sparse_update      Adagrad on the indexed rows of a 2-D table (element-wise or row-wise)
    proximal_update / sparse_proximal_update   Proximal Adagrad (l1/l2, exact zeros), dense / rows
    da_update / sparse_da_update               Adagrad-DA (dual averaging), dense / rows
    decay_update / sparse_decay_update         AdagradDecay, dense / rows
    ftrl_update / sparse_ftrl_update           FTRL-Proximal, dense / rows
    rules              the rules' declarations, which every one of the above derives from
    reference          the pure-NumPy reference with the same signatures (imported on first use)
    stochastic_rounding  the 16-bit stochastic rounding's contract (stochastic_rounding=True) in NumPy
    aligned_zeros      a zero-filled array on a 64-byte cache line (embedding tables, their state)
    cpu_info           which kernel runs, what the CPU offers, how many threads
    set_isa            force the kernels of one instruction set
    get_num_threads / set_num_threads
"""

from __future__ import annotations

import importlib
from types import ModuleType

from . import rules, stochastic_rounding
from ._core import __version__, cpu_info, get_num_threads, set_isa, set_num_threads
from ._memory import aligned_zeros
from .functional import (
    da_update,
    decay_update,
    ftrl_update,
    proximal_update,
    sparse_da_update,
    sparse_decay_update,
    sparse_ftrl_update,
    sparse_proximal_update,
    sparse_update,
    update,
)
from .optimizer import Adagrad, AdagradDA, AdagradDecay, Ftrl, NonFiniteGradError, ProximalAdagrad, SparseGrad

__all__ = [
    "Adagrad",
    "AdagradDA",
    "AdagradDecay",
    "Ftrl",
    "NonFiniteGradError",
    "ProximalAdagrad",
    "SparseGrad",
    "__version__",
    "aligned_zeros",
    "cpu_info",
    "da_update",
    "decay_update",
    "ftrl_update",
    "get_num_threads",
    "proximal_update",
    "reference",
    "rules",
    "set_isa",
    "set_num_threads",
    "sparse_da_update",
    "sparse_decay_update",
    "sparse_ftrl_update",
    "sparse_proximal_update",
    "sparse_update",
    "stochastic_rounding",
    "update",
]


def __getattr__(name: str) -> ModuleType:
    # The reference is a package of its own that tests hold the native code to: imported when
    # first asked for (adagrad.reference), never by `import adagrad`.
    if name == "reference":
        return importlib.import_module(".reference", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
