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

    ``drift_every`` and ``drift_fraction`` make the planted model drift: before every
    ``drift_every``-th batch of the stream (batch ``drift_every``, ``2 * drift_every``, ...), each
    nonzero planted weight is independently redrawn, with probability ``drift_fraction``, from the
    standard normal (a weight planted at 0 stays 0, so :meth:`irrelevant` holds throughout).
    :meth:`planted` gives the weights behind any batch; ``true_weights`` are those of the first
    ``drift_every`` batches. The redraws come from random numbers of their own, so the features of
    every sample and the uniforms behind its label stay those of the problem without drift, and with
    ``drift_every=0`` (the default) or ``drift_fraction=0`` there is none: the stream is that
    problem's, bit for bit.

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
        drift_every: int = 0,
        drift_fraction: float = 0.0,
    ) -> None:
        if not 0.0 <= irrelevant_fraction <= 1.0:
            raise ValueError(f"irrelevant_fraction must be in [0, 1], got {irrelevant_fraction!r}")
        if isinstance(drift_every, bool) or not isinstance(drift_every, int) or drift_every < 0:
            raise ValueError(f"drift_every must be an int >= 0, got {drift_every!r}")
        if not 0.0 <= drift_fraction <= 1.0:
            raise ValueError(f"drift_fraction must be in [0, 1], got {drift_fraction!r}")
        self.seed, self.n_fields, self.n_values = seed, n_fields, n_values
        self.zipf_exponent, self.n_weights, self.batch_size = zipf_exponent, n_weights, batch_size
        self.irrelevant_fraction = irrelevant_fraction
        self.drift_every, self.drift_fraction = drift_every, drift_fraction
        # the third child is new: the first two, and so every number of the problem without drift, are unchanged
        weights_seed, self._stream_seed, self._drift_seed = np.random.SeedSequence(seed).spawn(3)
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

    @property
    def drifts(self) -> bool:
        """Whether the planted weights change over the stream."""
        return self.drift_every > 0 and self.drift_fraction > 0

    def _redraw(self, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One drift: a copy of ``weights`` with each nonzero planted weight redrawn with
        probability ``drift_fraction``."""
        redraw = (rng.random(self.n_weights) < self.drift_fraction) & (self.true_weights != 0)
        fresh = rng.standard_normal(self.n_weights).astype(np.float32)
        return np.where(redraw, fresh, weights)

    def planted(self, step: int) -> np.ndarray:
        """The planted weights behind batch ``step`` (0-based) of the stream: ``true_weights``
        after ``step // drift_every`` drifts (none without drift)."""
        weights = self.true_weights
        if self.drifts:
            rng = np.random.default_rng(self._drift_seed)
            for _ in range(step // self.drift_every):
                weights = self._redraw(weights, rng)
        return weights

    def batches(self, steps: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``steps`` batches of (indices, labels): ``indices[b, f]`` is the weight of sample b's
        field f, ``labels`` are 0.0 / 1.0 (float32), drawn from :meth:`planted`. The same batches
        on every call."""
        rng = np.random.default_rng(self._stream_seed)
        drift = np.random.default_rng(self._drift_seed)
        fields = np.arange(self.n_fields)
        weights = self.true_weights
        for step in range(steps):
            if self.drifts and step > 0 and step % self.drift_every == 0:
                weights = self._redraw(weights, drift)
            ranks = np.searchsorted(self._value_cdf, rng.random((self.batch_size, self.n_fields)), side="right")
            indices = self.feature_index[fields, np.minimum(ranks, self.n_values - 1)]
            logits = weights[indices].sum(axis=1, dtype=np.float64)
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
