"""The demo's two data sets: a planted sparse problem generated from a seed, and scikit-learn's digits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["DigitsData", "HashedZipfProblem", "load_digits"]


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a fixed 64-bit hash, the same on every machine and in every run
    (Python's own ``hash`` of a string is salted per process)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class HashedZipfProblem:
    """Sparse logistic regression with a planted true model, the setting Adagrad was made for.

    Each sample has ``n_fields`` categorical fields (think: country, browser, advertiser, ...).
    In every field the value of rank k is drawn with probability proportional to
    ``k ** -zipf_exponent``, so a few values are everywhere and most are rare. Each (field, value)
    pair is hashed to one of ``n_weights`` weights (the hashing trick); a sample's logit is the sum
    of its ``n_fields`` weights, and its label is drawn from the logistic model with the planted
    weights ``true_weights`` (standard normal). Training streams ``batch_size`` fresh samples per
    step, so no sample is seen twice and the planted weights are the target.

    ``irrelevant_fraction`` plants a sparse model: each weight is independently set to exactly 0
    with that probability, after the normal weights are drawn, so the other weights, the features
    of every sample and the random numbers behind the labels stay those of the dense problem (0, the
    default, is the dense problem itself). A weight planted at 0 that some feature hashes to is
    *irrelevant* (:meth:`irrelevant`): its features say nothing about the label. The weights no
    feature hashes to (:meth:`hashed` false) never get a gradient and stay at 0 under every optimizer.

    Everything is a function of ``seed``: the planted weights, and the stream, which restarts
    identically on every call of :meth:`batches`, so that every optimizer sees the same data.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        n_fields: int = 8,
        n_values: int = 2000,
        zipf_exponent: float = 1.1,
        n_weights: int = 2**14,
        batch_size: int = 128,
        irrelevant_fraction: float = 0.0,
    ) -> None:
        if not 0.0 <= irrelevant_fraction <= 1.0:
            raise ValueError(f"irrelevant_fraction must be in [0, 1], got {irrelevant_fraction!r}")
        self.seed, self.n_fields, self.n_values = seed, n_fields, n_values
        self.zipf_exponent, self.n_weights, self.batch_size = zipf_exponent, n_weights, batch_size
        self.irrelevant_fraction = irrelevant_fraction
        weights_seed, self._stream_seed = np.random.SeedSequence(seed).spawn(2)
        weights_rng = np.random.default_rng(weights_seed)
        self.true_weights = weights_rng.standard_normal(n_weights).astype(np.float32)
        self.true_weights[weights_rng.random(n_weights) < irrelevant_fraction] = 0.0

        ranks = np.arange(1, n_values + 1, dtype=np.float64)
        self.value_probability = ranks**-zipf_exponent / np.sum(ranks**-zipf_exponent)
        self._value_cdf = np.cumsum(self.value_probability)
        keys = (np.arange(n_fields, dtype=np.uint64)[:, None] << np.uint64(32)) | np.arange(n_values, dtype=np.uint64)
        #: feature_index[field, value] is the weight that (field, value) hashes to.
        self.feature_index = (_mix64(keys) % np.uint64(n_weights)).astype(np.intp)

    def feature_rate(self) -> np.ndarray:
        """Expected occurrences of each weight per sample (hash collisions add up)."""
        return np.bincount(
            self.feature_index.ravel(), weights=np.tile(self.value_probability, self.n_fields), minlength=self.n_weights
        )

    def hashed(self) -> np.ndarray:
        """True for each weight that at least one (field, value) hashes to."""
        return np.bincount(self.feature_index.ravel(), minlength=self.n_weights) > 0

    def irrelevant(self) -> np.ndarray:
        """True for each hashed weight planted at exactly 0 (none unless ``irrelevant_fraction > 0``)."""
        return self.hashed() & (self.true_weights == 0)

    def relevant(self) -> np.ndarray:
        """True for each hashed weight with a nonzero planted value."""
        return self.hashed() & (self.true_weights != 0)

    def batches(self, steps: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``steps`` batches of (indices, labels): ``indices[b, f]`` is the weight of sample b's
        field f, ``labels`` are 0.0 / 1.0 (float32). The same batches on every call."""
        rng = np.random.default_rng(self._stream_seed)
        fields = np.arange(self.n_fields)
        for _ in range(steps):
            ranks = np.searchsorted(self._value_cdf, rng.random((self.batch_size, self.n_fields)), side="right")
            indices = self.feature_index[fields, np.minimum(ranks, self.n_values - 1)]
            logits = self.true_weights[indices].sum(axis=1, dtype=np.float64)
            labels = (rng.random(self.batch_size) < sigmoid(logits)).astype(np.float32)
            yield indices, labels


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z) without overflow for large |z|."""
    return np.exp(-np.logaddexp(0, -z))


@dataclass(frozen=True)
class DigitsData:
    """scikit-learn's bundled 8×8 digits (no download), pixels scaled to [0, 1], split 80/20."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digits(seed: int = 0) -> DigitsData:
    """The digits split by a stratified shuffle of ``seed``; float32 pixels, int64 labels."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    x, y = sklearn_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        (x / 16).astype(np.float32), y.astype(np.int64), test_size=0.2, random_state=seed, stratify=y
    )
    return DigitsData(x_train, y_train, x_test, y_test)
