"""torch grads in the form the native step takes.

A dense grad is a NumPy view of the tensor (in the param's dim order). A sparse COO grad, of any
sparse and dense dims, coalesced or not, becomes rows of a 2-D table: its sparse dims flattened
into one row index, its dense dims into one row, over the param viewed as (rows, row length). That
view changes no element's place, so element-wise Adagrad on it is element-wise Adagrad on the
param, repeated entries summed (or applied in turn) in their input order.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np
import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)


def bfloat16_dtype() -> Any:
    """ml_dtypes' NumPy bfloat16, or None when ml_dtypes is not installed; imported at the first
    bfloat16 tensor, not with this module (ml_dtypes takes ~0.5 s to import)."""
    global _BFLOAT16
    if _BFLOAT16 is None:
        try:
            import ml_dtypes
        except ImportError:
            return None
        _BFLOAT16 = ml_dtypes.bfloat16
    return _BFLOAT16


_BFLOAT16: Any = None
# The param dtypes the native kernels take (bfloat16 needs ml_dtypes for its NumPy view): whether
# it is installed is asked without importing it.
NATIVE_DTYPES = (torch.float32, torch.float64, torch.float16) + (
    (torch.bfloat16,) if importlib.util.find_spec("ml_dtypes") is not None else ()
)


def numpy_view(t: torch.Tensor) -> np.ndarray:
    """The tensor's memory as a NumPy array, no copy (bfloat16: through its int16 bits)."""
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(bfloat16_dtype())
    return t.numpy()


@dataclass(frozen=True)
class SparseRows:
    """A sparse grad as rows: ``values[i]`` is the gradient of row ``rows[i]`` of the param
    viewed as ``shape`` (2-D)."""

    rows: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]

    def native(self) -> tuple[np.ndarray, np.ndarray]:
        return self.rows, self.values


def as_array(t: torch.Tensor, order: tuple[int, ...] | None) -> np.ndarray:
    return numpy_view(t if order is None else t.permute(order))


def native_grads(
    params: list[torch.Tensor], orders: list[tuple[int, ...] | None], labels: list[str], try_dense_first: bool
) -> list[Any]:
    """Each param's grad: None, a NumPy array, or SparseRows. ``try_dense_first``: all grads are
    expected dense and the params in C order (one comprehension, ~1.2 us a tensor; its failure
    costs ~10 us, so callers stop asking once they have seen a sparse grad)."""
    if try_dense_first:
        try:
            return [
                None if (g := p.grad) is None else g.numpy() if g.dtype != torch.bfloat16 else numpy_view(g)
                for p in params
            ]
        except (TypeError, RuntimeError):  # sparse, requires grad, another device or dtype
            pass
    return [
        None if (g := p.grad) is None else native_grad(g, order, name) for p, order, name in zip(params, orders, labels)
    ]


def native_grad(g: torch.Tensor, order: tuple[int, ...] | None, name: str) -> Any:
    """One grad as the native step takes it: a NumPy array, or SparseRows."""
    if g.is_sparse:  # asked first: a failed numpy() costs more than the whole conversion
        return sparse_rows(g, order, name)
    try:
        return as_array(g, order)
    except (TypeError, RuntimeError):
        return unusual_dense_grad(g, order, name)


def sparse_rows(g: torch.Tensor, order: tuple[int, ...] | None, name: str) -> SparseRows | np.ndarray:
    """A sparse COO grad (torch has checked its shape is its param's) as rows of the param's 2-D
    view; for a param not in C order (channels_last), the dense-equivalent grad instead (its dense
    update is the sum mode's)."""
    g = _on_cpu(g, name)
    values = g._values()
    if values.dtype not in NATIVE_DTYPES:
        raise TypeError(f"grad of {name} has dtype {values.dtype}; it must match its param's")
    if order is not None or g.sparse_dim() == 0:
        return as_array(g.to_dense(), order)
    sparse_dims = g.sparse_dim()
    indices = g._indices()
    rows = indices[0]
    for d in range(1, sparse_dims):  # row-major flattening of the sparse dims
        rows = rows * g.shape[d] + indices[d]
    row_length = prod(g.shape[sparse_dims:])
    shape = (prod(g.shape[:sparse_dims]), row_length)
    return SparseRows(rows.numpy(), numpy_view(values.contiguous().view(values.shape[0], row_length)), shape)


def unusual_dense_grad(g: torch.Tensor, order: tuple[int, ...] | None, name: str) -> np.ndarray:
    """The native form of a dense grad that is not a plain CPU tensor of a native dtype, or a clear error."""
    g = _on_cpu(g, name)
    if g.layout != torch.strided:
        raise ValueError(f"grad of {name} has layout {g.layout}; only dense and sparse COO grads are supported")
    if g.dtype not in NATIVE_DTYPES:
        raise TypeError(f"grad of {name} has dtype {g.dtype}; it must match its param's")
    return as_array(g, order)


def _on_cpu(g: torch.Tensor, name: str) -> torch.Tensor:
    """The grad detached from autograd, or a ValueError if it is not on the CPU (its param is)."""
    if g.device.type != "cpu":
        raise ValueError(f"grad of {name} is on {g.device}, its param on cpu")
    return g.detach() if g.requires_grad else g
