"""What is measured: sets of parameter shapes, one optimizer step over all of them."""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Case:
    name: str
    shapes: tuple[tuple[int, ...], ...]
    dtype: Any  # a NumPy type, or a dtype's name ("bfloat16": ml_dtypes', HalfCase)
    note: str = ""

    @property
    def elements(self) -> int:
        return sum(prod(s) for s in self.shapes)

    @property
    def bytes_moved(self) -> int:
        """Read param, grad, sum; write param, sum: five passes over the elements."""
        return 5 * self.elements * np.dtype(self.dtype).itemsize


def resnet18_shapes() -> tuple[tuple[int, ...], ...]:
    """The 62 parameter tensors of torchvision's ResNet-18 (11,689,512 elements)."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
    channels_in = 64
    for channels in (64, 128, 256, 512):
        for block in range(2):
            downsample = block == 0 and channels != 64
            shapes += [(channels, channels_in, 3, 3), (channels,), (channels,)]
            shapes += [(channels, channels, 3, 3), (channels,), (channels,)]
            if downsample:
                shapes += [(channels, channels_in, 1, 1), (channels,), (channels,)]
            channels_in = channels
    return tuple(shapes + [(1000, 512), (1000,)])


def single(n: int, dtype: type) -> Case:
    suffix = "f32" if dtype == np.float32 else "f64"
    label = f"{n >> 20}M" if n >= 1 << 20 else f"{n >> 10}K"
    return Case(f"{label}-{suffix}", ((n,),), dtype, "one tensor")


def dense_cases() -> list[Case]:
    cases = [single(n, dt) for dt in (np.float32, np.float64) for n in (1 << 12, 1 << 16, 1 << 20, 1 << 24)]
    cases.append(Case("resnet18-f32", resnet18_shapes(), np.float32, "62 tensors"))
    cases.append(Case("1000x1K-f32", ((1024,),) * 1000, np.float32, "per-tensor overhead"))
    cases.append(Case("1K-f32", ((1024,),), np.float32, "call overhead"))
    return cases


# 16-bit params (issue 15): float16 / bfloat16 params and grads, with state of their dtype or
# float32 ("-f32state"). bfloat16 needs ml_dtypes (its NumPy dtype): its cases are skipped without it.
@dataclass(frozen=True)
class HalfCase(Case):
    """A dense step over one 16-bit param: `dtype` is "float16" or "bfloat16"; `state` the sums'."""

    state: str = ""

    @property
    def bytes_moved(self) -> int:
        """Read param, grad, sum; write param, sum: 10 bytes per element, 14 with float32 sums."""
        return self.elements * (3 * 2 + 2 * np.dtype(self.state or "float16").itemsize)


def half_cases() -> list[HalfCase]:
    out = []
    for dtype, label in (("bfloat16", "bf16"), ("float16", "f16")):
        for n in (1 << 16, 1 << 24):
            size = f"{n >> 20}M" if n >= 1 << 20 else f"{n >> 10}K"
            out.append(HalfCase(f"{size}-{label}", ((n,),), dtype, "one tensor", state=""))
        out.append(HalfCase(f"16M-{label}-f32state", ((1 << 24,),), dtype, "float32 state", state="float32"))
    return out


# Cases small enough for the pure-NumPy reference to be timed without dominating the run.
REFERENCE_MAX_ELEMENTS = 1 << 16


@dataclass(frozen=True)
class SparseCase:
    """A sparse step on a (rows, dim) float32 table: `k` Zipf(1.2) row ids per step."""

    name: str
    rows: int
    dim: int
    k: int
    batches: int = 16  # distinct index batches, rotated, so that touched rows are not all cached

    def index_batches(self, seed: int = 0) -> list[np.ndarray]:
        return zipf_row_batches(self.rows, self.k, self.batches, seed)

    def unique_rows(self) -> float:
        return float(np.mean([np.unique(b).size for b in self.index_batches()]))


def zipf_row_batches(rows: int, k: int, batches: int, seed: int) -> list[np.ndarray]:
    """`batches` arrays of `k` row ids: Zipf(1.2) ranks scattered over the table by a fixed
    permutation, as hashed feature ids would be."""
    rng = np.random.default_rng(seed)
    scatter = rng.permutation(rows)
    return [scatter[(rng.zipf(1.2, size=k) - 1) % rows] for _ in range(batches)]


@dataclass(frozen=True)
class SparseHalfCase(SparseCase):
    """A sparse step on a (rows, dim) 16-bit table (`dtype`), against the float32 table."""

    dtype: str = "float16"


def sparse_half_cases() -> list[SparseHalfCase]:
    return [SparseHalfCase("sparse-1Mx64-f16", 1 << 20, 64, 8192, dtype="float16")]


def sparse_cases() -> list[SparseCase]:
    return [SparseCase("sparse-1Mx64", 1 << 20, 64, 8192), SparseCase("sparse-1Mx128", 1 << 20, 128, 16384)]


# The composite rules (issue 16): Proximal Adagrad ("proximal") and Adagrad-DA ("da"); FTRL-Proximal
# ("ftrl", issue 29). With l1 and l2 > 0 every step takes the full path (soft threshold and l2
# division); l1 is small enough that most weights stay non-zero.
RULE_LABELS = {"proximal": "prox", "da": "da", "ftrl": "ftrl"}
RULE_NAMES = {"proximal": "Proximal Adagrad", "da": "Adagrad-DA", "ftrl": "FTRL-Proximal"}
# Arrays each rule reads and writes per element: Proximal reads param, grad, sum and writes param,
# sum (Adagrad's five passes); DA also reads and writes its grad_sum, FTRL its z (seven: 28 bytes).
RULE_PASSES = {"proximal": 5, "da": 7, "ftrl": 7}


@dataclass(frozen=True)
class RuleCase(Case):
    """A dense step of one composite rule (`adagrad.ProximalAdagrad` or `adagrad.AdagradDA`)."""

    rule: str = "proximal"

    @property
    def bytes_moved(self) -> int:
        return RULE_PASSES[self.rule] * self.elements * np.dtype(self.dtype).itemsize

    @property
    def ceiling_scale(self) -> float:
        """The factor from the stream ceiling's time (Adagrad's five passes) to this rule's bytes:
        there is no native seven-pass ceiling, so DA's and FTRL's is the five-pass one scaled by 7/5
        (28/20 bytes per float32 element)."""
        return RULE_PASSES[self.rule] / 5


@dataclass(frozen=True)
class SparseRuleCase(SparseCase):
    """A sparse step of one composite rule on a (rows, dim) float32 table, as `SparseCase`."""

    rule: str = "proximal"


def sparse_floor_bytes(dim: int, occurrences: int, unique_rows: float, row_arrays: int) -> float:
    """The bytes an exact sparse step must move at least (float32): each touched row of its
    `row_arrays` (R, D) arrays read and written once, every value row of the batch read once.
    Adagrad and Proximal Adagrad: table and state (2); Adagrad-DA: and its grad_sum (3)."""
    return 4 * dim * (2 * row_arrays * unique_rows + occurrences)


# (R, D) arrays each rule reads and writes per touched row.
RULE_ROW_ARRAYS = {"proximal": 2, "da": 3, "ftrl": 3}


def rule_cases() -> list[RuleCase]:
    out = []
    for rule, label in RULE_LABELS.items():
        for n in (1 << 16, 1 << 20, 1 << 24):
            base = single(n, np.float32)
            out.append(RuleCase(f"{label}-{base.name}", base.shapes, np.float32, RULE_NAMES[rule], rule))
    return out


def sparse_rule_cases() -> list[SparseRuleCase]:
    return [
        SparseRuleCase(f"sparse-{label}-{base.name.removeprefix('sparse-')}", base.rows, base.dim, base.k, rule=rule)
        for rule, label in RULE_LABELS.items()
        for base in sparse_cases()
    ]


@dataclass(frozen=True)
class TrainingCase:
    """Whole torch training steps on float32 models (forward, backward, optimizer.step).

    "embeddingbag": a hashed-feature logistic regression, ``nn.EmbeddingBag(rows, dim, mode="sum")``
    over ``ids`` Zipf(1.2) feature ids per example, then ``nn.Linear(dim, 1)``;
    "embeddingbags": the same over ``tables`` such tables (``ids`` per table per example), their
    pooled rows side by side into ``nn.Linear(tables * dim, 1)``;
    "mlp": ``nn.Linear`` layers of ``widths`` (input first) with ReLU between, cross-entropy.
    """

    name: str
    model: str  # "embeddingbag", "embeddingbags" or "mlp"
    batch: int  # examples per step
    rows: int = 0  # embeddingbag: table rows, width, feature ids per example
    dim: int = 0
    ids: int = 0
    tables: int = 1  # embeddingbags
    widths: tuple[int, ...] = ()  # mlp
    batches: int = 8  # distinct batches, rotated
    compiled: bool = False  # the whole step under torch.compile, against the same steps eager

    @property
    def params(self) -> int:
        if self.model == "embeddingbag":
            return self.rows * self.dim + self.dim + 1
        if self.model == "embeddingbags":
            return self.tables * (self.rows * self.dim + self.dim) + 1
        return sum(a * b + b for a, b in zip(self.widths, self.widths[1:]))

    @property
    def note(self) -> str:
        if self.model == "embeddingbag":
            return (
                f"EmbeddingBag {self.rows:,}x{self.dim} + Linear, {self.ids} Zipf(1.2) ids per example, "
                f"batch {self.batch}"
            )
        if self.model == "embeddingbags":
            return (
                f"{self.tables} EmbeddingBags {self.rows:,}x{self.dim} + Linear, {self.ids} Zipf(1.2) ids per "
                f"table per example, batch {self.batch}"
            )
        compiled = ", torch.compile" if self.compiled else ""
        return f"MLP {'-'.join(map(str, self.widths))}, batch {self.batch}{compiled}"


def training_cases() -> list[TrainingCase]:
    return [
        TrainingCase("train-embbag-1Mx32", "embeddingbag", batch=256, rows=1 << 20, dim=32, ids=16),
        # issue 28's multi-table step (8 tables of 1M x 64 asked; 256K rows: five peers' tables and
        # state, 1M rows each, would take ~16 GiB of this shared 24 GiB VM)
        TrainingCase("train-ebc-8x256Kx64", "embeddingbags", batch=2048, rows=1 << 18, dim=64, ids=20, tables=8),
        TrainingCase("train-mlp-784", "mlp", batch=128, widths=(784, 256, 256, 10)),
        TrainingCase("train-mlp-64-compiled", "mlp", batch=256, widths=(64, 128, 10), compiled=True),
        TrainingCase("train-mlp-784-compiled", "mlp", batch=128, widths=(784, 256, 256, 10), compiled=True),
    ]
