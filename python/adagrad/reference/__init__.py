"""The pure-NumPy reference: the maths of the native kernels, written to be obviously right.

Tests hold the native code to it bit for bit. Every floating-point operation is one IEEE
operation in the compute type T (float32 for float16 / bfloat16 arrays, else the array's own
dtype): NumPy's +, -, *, / and sqrt are correctly rounded, and :func:`adagrad.reference.exact.fma`
rounds a fused multiply-add once. Speed is not a goal. It depends on NumPy, the standard library
and :mod:`adagrad.stochastic_rounding` alone (a checkpoint ``load`` also uses the package's reader).

Every rule applies, per element, in this order:

1. widen: 16-bit param, grad and float states to float32 (exact);
2. unscale: ``g / T(float32(grad_scale))``;
3. clip: at most one of max_grad_norm, clip_norm_per_tensor, clip_value (:mod:`.transforms`;
   norms of the unscaled grads in float64 in a fixed order, :mod:`.norms`);
4. maximize: ``g = -g``;
5. the rule's stages (:mod:`.rules`);
6. narrow: each float array written rounded once to its own dtype (the param stochastically with
   ``stochastic_rounding=True``, 16-bit params only).

Modules: ``exact`` (fma), ``precision`` (dtypes, widen, narrow), ``norms``, ``transforms``,
``rules``, ``checks`` (options and arrays), ``updates`` (one tensor's update), ``functions`` (the
single calls), ``groups``, ``base``, ``optimizers`` and ``checkpoint`` (the optimizers).
"""

from __future__ import annotations

from .checks import NonFiniteGradError
from .functions import (
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
from .groups import SparseGrad
from .norms import grad_norms
from .optimizers import Adagrad, AdagradDA, AdagradDecay, Ftrl, ProximalAdagrad
from .rules import corrected_lr

__all__ = [
    "Adagrad",
    "AdagradDA",
    "AdagradDecay",
    "Ftrl",
    "NonFiniteGradError",
    "ProximalAdagrad",
    "SparseGrad",
    "corrected_lr",
    "da_update",
    "decay_update",
    "ftrl_update",
    "grad_norms",
    "proximal_update",
    "sparse_da_update",
    "sparse_decay_update",
    "sparse_ftrl_update",
    "sparse_proximal_update",
    "sparse_update",
    "update",
]
