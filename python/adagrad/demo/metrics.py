"""How close each optimizer got to the planted weights, by how often a weight's feature was seen."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["BANDS", "FREQUENT", "RARE", "Band", "band_error"]


@dataclass(frozen=True)
class Band:
    """Weights whose features were seen at least ``low`` and fewer than ``high`` times."""

    low: int
    high: float = math.inf

    def mask(self, counts: np.ndarray) -> np.ndarray:
        return (counts >= self.low) & (counts < self.high)

    @property
    def name(self) -> str:
        if self.high == math.inf:
            return f"≥ {self.low:,} times"
        return f"{self.low:,}–{int(self.high) - 1:,} times"


BANDS = (Band(1, 10), Band(10, 100), Band(100, 1000), Band(1000))
RARE = Band(1, 100)
FREQUENT = Band(1000)


def band_error(weights: np.ndarray, true_weights: np.ndarray, counts: np.ndarray, band: Band) -> float:
    """Root-mean-square of ``weights − true_weights`` over the band's weights (nan if it has none).

    Weights never seen stay at zero under every optimizer and belong to no band.
    """
    mask = band.mask(counts)
    if not mask.any():
        return math.nan
    return float(np.sqrt(np.mean((weights[mask].astype(np.float64) - true_weights[mask]) ** 2)))
