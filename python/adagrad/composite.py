"""Where the composite rules' single-call functions were: now :mod:`adagrad.functional`."""

from .functional import (
    da_update,
    decay_update,
    proximal_update,
    sparse_da_update,
    sparse_decay_update,
    sparse_proximal_update,
)

__all__ = [
    "da_update",
    "decay_update",
    "proximal_update",
    "sparse_da_update",
    "sparse_decay_update",
    "sparse_proximal_update",
]
