"""The native forward pooling of an embedding bag (cpp/src/pool_kernel.inl), called through its
binding `_core.embedding_bag_pool` with NumPy arrays alone (no torch: the aarch64 qemu run has none),
against a NumPy oracle, bit for bit, on every instruction set the machine offers.

The oracle's order, which the kernel's contract fixes: bag b's row starts at +0.0 and adds its ids'
table rows one at a time in input order, skipping padding ids; a per-sample weight w enters as
fma(w, row, sum) (one rounding, "fused_weights") or as sum + (w * row) (two roundings); mean then
divides by max(the bag's ids but padding, 1). Every step is elementwise in float32, so NumPy's
correctly rounded +, * and / (and adagrad.reference.exact.fma) give the exact bits."""

from __future__ import annotations

import numpy as np
import pytest

import adagrad
from adagrad import _core
from adagrad.reference.exact import fma
from conftest import F16, assert_same_bits

# rows kept in registers (16, 64, 128), SIMD then scalar tails (33, 100; 7 on NEON), one vector (8 on AVX2), scalar (1)
DIMS = [1, 7, 8, 16, 33, 64, 100, 128]
# (mode, weighing, padding): weights go with sum only (nn.EmbeddingBag's rule, kept by the adapter)
VARIANTS = [
    pytest.param("sum", None, False, id="sum"),
    pytest.param("mean", None, False, id="mean"),
    pytest.param("sum", "fused", False, id="sum-fma"),
    pytest.param("sum", "product", True, id="sum-product-padding"),
    pytest.param("mean", None, True, id="mean-padding"),
]
ROWS = 50
PADDING = 3


def bags_case(dim: int, ids_dtype: type, weighted: bool, seed: int) -> dict:
    """Twelve bags of 0 to 9 ids (two empty; the padding id frequent, one bag all padding), repeated
    ids, rows of mixed magnitudes so that the summation order shows in the bits."""
    rng = np.random.default_rng(seed)
    lengths = np.array([3, 0, 9, 1, 5, 0, 7, 2, 8, 4, 6, 2])
    n = int(lengths.sum())
    ids = rng.integers(0, ROWS, n).astype(ids_dtype)
    ids[rng.random(n) < 0.2] = PADDING
    ids[lengths[0] + lengths[1] + lengths[2]] = PADDING  # bag 3: one id, the padding one
    table = (rng.standard_normal((ROWS, dim)) * 10.0 ** rng.integers(-3, 4, (ROWS, 1))).astype(np.float32)
    weights = rng.standard_normal(n).astype(np.float32) if weighted else None
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return {"table": table, "ids": ids, "offsets": offsets, "weights": weights}


def oracle(case: dict, mode: str, weighing: str | None, padding: int) -> np.ndarray:
    table, ids, offsets, weights = case["table"], case["ids"], case["offsets"], case["weights"]
    out = np.empty((offsets.size - 1, table.shape[1]), np.float32)
    for b in range(offsets.size - 1):
        acc = np.zeros(table.shape[1], np.float32)
        count = 0
        for k in range(offsets[b], offsets[b + 1]):
            if ids[k] == padding:
                continue
            count += 1
            row = table[ids[k]]
            if weighing is None:
                acc = acc + row
            elif weighing == "fused":
                acc = fma(np.full_like(row, weights[k]), row, acc)
            else:
                acc = acc + weights[k] * row
        out[b] = acc / np.float32(max(count, 1)) if mode == "mean" else acc
    return out


def record(case: dict, out: np.ndarray, mode: str, weighing: str | None, padding: int) -> dict:
    return {
        "table": case["table"],
        "ids": case["ids"],
        "offsets": case["offsets"],
        "weights": case["weights"],
        "fused_weights": weighing == "fused",
        "padding_idx": padding,
        "mean": mode == "mean",
        "out": out,
    }


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize(("mode", "weighing", "padded"), VARIANTS)
def test_pooling_is_the_oracles_bits(isa: str, dim: int, mode: str, weighing: str | None, padded: bool) -> None:
    padding = PADDING if padded else -1
    for ids_dtype in (np.int32, np.int64):
        case = bags_case(dim, ids_dtype, weighing is not None, seed=dim)
        out = np.full((case["offsets"].size - 1, dim), np.nan, np.float32)  # every row must be written
        _core.embedding_bag_pool(record(case, out, mode, weighing, padding))
        assert_same_bits(out, oracle(case, mode, weighing, padding))


@pytest.mark.parametrize("threads", [1, 2])
def test_pooling_threaded_over_many_bags_is_the_oracles_bits(threads: int) -> None:
    """Enough bags (96 x 12) for the call to split them over threads; each bag is one thread's."""
    before = adagrad.get_num_threads()
    adagrad.set_num_threads(threads)
    try:
        parts = [bags_case(32, np.int64, True, seed=s) for s in range(96)]
        table = parts[0]["table"]
        ids = np.concatenate([p["ids"] for p in parts])
        lengths = np.concatenate([np.diff(p["offsets"]) for p in parts])
        case = {
            "table": table,
            "ids": ids,
            "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "weights": np.concatenate([p["weights"] for p in parts]),
        }
        out = np.full((lengths.size, 32), np.nan, np.float32)
        _core.embedding_bag_pool(record(case, out, "sum", "fused", PADDING))
        assert_same_bits(out, oracle(case, "sum", "fused", PADDING))
    finally:
        adagrad.set_num_threads(before)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({"ids": np.array([0, ROWS, 1], np.int64)}, ValueError, id="id-past-the-table"),
        pytest.param({"ids": np.array([0, -1, 1], np.int32)}, ValueError, id="negative-id"),
        pytest.param({"offsets": np.array([0, 2, 1], np.int64)}, ValueError, id="offsets-decreasing"),
        pytest.param({"offsets": np.array([0, 1, 4], np.int64)}, ValueError, id="offsets-past-the-ids"),
        pytest.param({"offsets": np.array([0, 1, 3], np.int32)}, TypeError, id="offsets-int32"),
        pytest.param({"table": np.ones((ROWS, 4), F16)}, TypeError, id="float16-table"),
        pytest.param({"weights": np.ones(2, np.float32)}, ValueError, id="weights-too-short"),
    ],
)
def test_refused_records_write_nothing(change: dict, error: type) -> None:
    """Only float32 tables are pooled natively (16-bit tables go through torch's op in the adapter)."""
    rec = {
        "table": np.ones((ROWS, 4), np.float32),
        "ids": np.array([0, 1, 2], np.int64),
        "offsets": np.array([0, 1, 3], np.int64),
        "weights": None,
        "fused_weights": True,
        "padding_idx": -1,
        "mean": False,
        "out": np.full((2, 4), 7.0, np.float32),
        **change,
    }
    with pytest.raises(error):
        _core.embedding_bag_pool(rec)
    assert (rec["out"] == 7.0).all()
