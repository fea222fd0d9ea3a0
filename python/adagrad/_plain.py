"""Hyper-parameters as plain Python values, so that whatever an optimizer accepts can be saved.

:func:`plain` turns the number types a caller may hand an optimizer into ``bool``, ``int`` or
``float``: NumPy scalars and 0-d arrays, 0-d torch tensors (duck-typed: torch is not imported),
``fractions.Fraction`` and other ``numbers.Real``, ``decimal.Decimal``; a ``numpy.dtype`` becomes
its name and a ``numpy.str_`` a ``str``. A float conversion is Python's ``float()``: the double
nearest the value (exact for a float32 or float16 scalar), which is what the kernels read anyway.
Anything else is returned as it is, for the option's own check to accept or refuse.

>>> from fractions import Fraction
>>> import numpy as np
>>> [plain(v) for v in (np.float32(0.5), np.array(3), Fraction(1, 4), np.bool_(True), "sum", None)]
[0.5, 3, 0.25, True, 'sum', None]
"""

from __future__ import annotations

import decimal
import numbers
from typing import Any

import numpy as np

__all__ = ["is_plain", "plain"]


def plain(value: Any) -> Any:
    """`value` as a ``bool``, ``int``, ``float`` or ``str`` where it is one in another type."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "biuf":
        value = value[()]
    elif type(value).__module__.split(".")[0] == "torch" and hasattr(value, "dim") and hasattr(value, "item"):
        if value.dim() != 0 or value.is_complex():
            return value
        value = value.item()
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (numbers.Integral, np.integer)):
        return int(value)
    if isinstance(value, (np.floating, numbers.Real, decimal.Decimal)):
        try:
            return float(value)
        except (OverflowError, ValueError):  # a Fraction beyond float range, a signaling Decimal NaN
            return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, np.dtype):
        return value.name
    return value


def is_plain(value: Any) -> bool:
    return value is None or type(value) in (bool, int, float, str)
