r"""Drop-in ``torch.optim`` optimizers that run the native kernels: ``adagrad.torch.Adagrad``,
``adagrad.torch.ProximalAdagrad``, ``adagrad.torch.AdagradDA``, ``adagrad.torch.AdagradDecay`` and
``adagrad.torch.Ftrl``.

Switch with one line::

    optimizer = adagrad.torch.Adagrad(model.parameters(), lr=0.01)   # was torch.optim.Adagrad(...)

Dense CPU float32, float64, float16 and bfloat16 params are updated in place, zero-copy, by one native
call per step for all of them; for Adagrad bit for bit ``torch.optim.Adagrad(fused=True)``, for every
rule bit for bit the NumPy optimizer of the same name. Sparse COO grads (``nn.Embedding`` and
``nn.EmbeddingBag`` with ``sparse=True``, and any other layout) go through the sparse kernel in the
same call. Importing this module runs adagrad's parallel steps on torch's OpenMP thread team
(:func:`share_torch_threads`). Params on other devices are updated by torch ops: torch's own
single-tensor Adagrad for Adagrad, the rule's formula in plain torch ops for the others; correct but
not accelerated. Importing ``adagrad`` never needs torch; this package does
(``pip install 'adagrad[torch]'``).

Every drop-in is the one adapter (:mod:`adagrad.torch.adapter`) with its rule's declaration
(:mod:`adagrad.rules`).
"""

from __future__ import annotations

try:
    import torch
except ModuleNotFoundError as error:
    if error.name != "torch":  # torch is there but broken: its own error says more
        raise
    raise ModuleNotFoundError(
        "adagrad.torch needs PyTorch, which is not installed: pip install 'adagrad[torch]' "
        "(any torch >= 2.4; for the CPU-only build, install torch first from "
        "https://download.pytorch.org/whl/cpu, see the README)",
        name="torch",
    ) from error

from .. import _core
from .embedding_bag import EmbeddingBag
from .embedding_bag_collection import EmbeddingBagCollection, EmbeddingBagConfig
from .optimizers import Adagrad, AdagradDA, AdagradDecay, Ftrl, ProximalAdagrad, torch_vector_width
from .overlap import StepInBackward, step_after_allreduce, step_in_backward

__all__ = [
    "Adagrad",
    "AdagradDA",
    "AdagradDecay",
    "EmbeddingBag",
    "EmbeddingBagCollection",
    "EmbeddingBagConfig",
    "Ftrl",
    "ProximalAdagrad",
    "StepInBackward",
    "share_torch_threads",
    "step_after_allreduce",
    "step_in_backward",
    "torch_vector_width",
]


def share_torch_threads(on: bool = True) -> bool:
    """Run the parallel steps of this module's optimizers on torch's OpenMP thread team instead of
    adagrad's own pool; returns whether they now do (False where torch's CPU build uses no
    OpenMP). Importing this module turns it on: in a training loop torch's OpenMP workers keep
    spinning after the backward pass, and a pool of our own would wait for cores they hold
    (docs/speed.md, "Threads in a torch loop"). The NumPy API's steps stay on the own pool,
    whose caller never waits for a thread that has not started its share: on a loaded machine the
    team's barrier waits for a descheduled thread (a 1M NumPy step: p90 8 ms on the team against
    0.14 ms on the own pool, with one busy process beside). The team's size is the smaller of
    ``adagrad.get_num_threads()`` and ``torch.get_num_threads()``. Results never depend on it."""
    if on and "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        on = False
    return bool(_core._use_openmp_team(on))


share_torch_threads(True)
