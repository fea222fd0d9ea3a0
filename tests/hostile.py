"""Hypothesis strategies for the hostile-input tests (tests/test_hostile_*.py): arrays of every
dtype, shape and memory layout, views that share memory, and hyper-parameters of every type.

Arrays are built from a drawn seed with NumPy (fast), not element by element by hypothesis; the
seed, dtype, shape and layout are what hypothesis explores and shrinks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

# Deterministic in CI: the same examples every run, no example database; no "explain" phase (it
# reruns a failure thousands of times to annotate it, minutes here).
HOSTILE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any], odds: int = 9) -> st.SearchStrategy[Any]:
    """`valid` `odds` times out of odds + 1, else `hostile`: most examples pass validation.
    (sampled_from draws uniformly, where st.integers favours its bounds; shrinks toward valid.)"""
    return st.sampled_from([False] * odds + [True]).flatmap(lambda bad: hostile if bad else valid)


FLOATS = [np.float32, np.float64]
BAD_DTYPES: list[Any] = [
    np.uint16,
    np.int8,
    np.int32,
    np.int64,
    np.uint64,
    np.bool_,
    np.complex64,
    np.complex128,
    object,
    ">f4",
    ">f8",
    np.longdouble,
]
# Mostly float32/float64, so that many examples get through validation and are compared.
dtypes = st.one_of(st.sampled_from(FLOATS), st.sampled_from(FLOATS), st.sampled_from(BAD_DTYPES))
shapes = st.lists(st.integers(0, 5), min_size=0, max_size=3).map(tuple)
LAYOUTS = ["C", "C", "C", "F", "strided", "reversed", "readonly", "unaligned", "broadcast", "transposed"]
layouts = st.sampled_from(LAYOUTS)
SPECIALS = [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 1e-300, 1e300, 1e-40, 3.4e38, -1e30]
NONFINITE = [np.nan, np.inf, -np.inf]


def values(shape: tuple[int, ...], seed: int, special: bool) -> np.ndarray:
    """float64 values spread over binades; `special` plants NaN, inf, zeros, subnormals, huge."""
    rng = np.random.default_rng(seed)
    v = np.asarray(rng.standard_normal(shape) * np.exp2(rng.integers(-20, 20, size=shape)))
    if special and v.size:
        flat = v.reshape(-1)
        where = rng.integers(0, flat.size, size=max(1, flat.size // 3))
        flat[where] = rng.choice(SPECIALS, size=where.size)
        if rng.integers(0, 2):
            flat[rng.integers(0, flat.size)] = rng.choice(NONFINITE)
    return v


def convert(v: np.ndarray, dtype: Any) -> np.ndarray:
    dt = np.dtype(dtype)
    with np.errstate(all="ignore"):
        if dt.kind in "iub":
            return np.nan_to_num(v, posinf=7, neginf=-7).clip(-100, 100).astype(dt)
        if dt.kind == "O":
            return v.astype(object)
        return v.astype(dt)


def laid_out(a: np.ndarray, layout: str) -> np.ndarray:
    """`a`'s values (and shape) in a given memory layout; writeable unless the layout says not."""
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "transposed" and a.ndim >= 2:
        return np.ascontiguousarray(a.T).T
    if layout == "strided" and a.ndim >= 1:
        return np.repeat(a, 2, axis=-1)[..., ::2]
    if layout == "reversed" and a.ndim >= 1:
        return np.ascontiguousarray(a[::-1])[::-1]
    if layout == "readonly":
        out = np.array(a, copy=True)
        out.flags.writeable = False
        return out
    if layout == "unaligned" and a.dtype.itemsize > 1 and a.dtype.kind != "O":
        raw = np.zeros(a.nbytes + a.dtype.itemsize, np.uint8)
        out = raw[1 : 1 + a.nbytes].view(a.dtype).reshape(a.shape)
        out[...] = a
        return out
    if layout == "broadcast" and a.size:
        return np.broadcast_to(a.reshape(-1)[:1].reshape((1,) * a.ndim), a.shape)
    return np.array(a, order="C", copy=True)  # (np.ascontiguousarray makes 0-d arrays 1-d)


@dataclass
class ArraySpec:
    dtype: Any
    shape: tuple[int, ...]
    layout: str
    seed: int
    special: bool

    def build(self) -> np.ndarray:
        return laid_out(convert(values(self.shape, self.seed, self.special), self.dtype), self.layout)


@st.composite
def array_like(draw: st.DrawFn, dtype: Any, shape: tuple[int, ...]) -> ArraySpec:
    """An array of (dtype, shape) in C order; now and then one of the three is something else."""
    fault = draw(st.sampled_from(["none"] * 12 + ["dtype", "shape", "layout", "layout"]))
    return ArraySpec(
        dtype=draw(dtypes) if fault == "dtype" else dtype,
        shape=draw(shapes) if fault == "shape" else shape,
        layout=draw(layouts) if fault == "layout" else "C",
        seed=draw(st.integers(0, 2**32 - 1)),
        special=draw(st.sampled_from([False] * 3 + [True])),
    )


# Hyper-parameters: valid values most of the time, else anything.
HOSTILE_REALS = [
    -1.0,
    -5e-324,
    float("nan"),
    float("inf"),
    -float("inf"),
    10**400,
    -(10**400),
    True,
    np.True_,
    "0.1",
    None,
    [0.1],
    0.1j,
    np.array([0.5]),
    object(),
]
valid_reals = st.one_of(
    st.floats(0.0, 10.0),
    st.sampled_from([0, 1, 2, 5e-324, 1e-300, 1e-45, 1e-10, 1e300, 1.7976931348623157e308]),
    st.integers(0, 10**6),
    st.sampled_from([np.float32(0.1), np.float64(0.25), np.int64(3), np.float16(0.5)]),
)
reals = mostly(valid_reals, st.sampled_from(HOSTILE_REALS), odds=15)
flags = mostly(st.one_of(st.booleans(), st.just(np.bool_(True))), st.sampled_from([0, 1, None, "True", 1.0]), odds=15)
steps = mostly(
    st.one_of(st.integers(1, 50), st.integers(1, 2**63 - 2), st.just(np.int64(3))),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64, True, 1.0, "1", None, np.uint8(2), np.int32(-3)]),
)
nonfinite_modes = mostly(
    st.sampled_from(["propagate", "skip", "raise"]), st.sampled_from(["ignore", "", None, 1, b"skip", "SKIP"])
)
grad_scales = mostly(
    st.one_of(st.none(), st.floats(1e-3, 1e6), st.sampled_from([1, 65536, 0.1, 1e-45, 3e38])),
    st.sampled_from([0, -1.0, 1e39, 1e-46, float("nan"), float("inf"), True, "2", 10**400]),
)
duplicate_modes = mostly(st.sampled_from(["sum", "sequential"]), st.sampled_from(["max", "", None, 1]))

OPTION_NAMES = ("lr", "lr_decay", "weight_decay", "eps")
FLAG_NAMES = ("maximize", "decoupled_weight_decay", "eps_inside_sqrt")


@st.composite
def options(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword options of update / sparse_update: each present or left at its default."""
    out: dict[str, Any] = {}
    for name in OPTION_NAMES:
        if draw(st.booleans()):
            out[name] = draw(reals)
    for name in FLAG_NAMES:
        if draw(st.booleans()):
            out[name] = draw(flags)
    if draw(st.booleans()):
        out["nonfinite"] = draw(nonfinite_modes)
    if draw(st.booleans()):
        out["grad_scale"] = draw(grad_scales)
    return out


class Snapshot:
    """The bytes of every array given (views included); check() asserts none changed."""

    def __init__(self, *arrays: Any) -> None:
        self.arrays = [a for a in arrays if isinstance(a, np.ndarray) and a.dtype.kind != "O"]
        self.before = [a.tobytes(order="A") for a in self.arrays]

    def check(self) -> None:
        for i, (a, b) in enumerate(zip(self.arrays, self.before)):
            assert a.tobytes(order="A") == b, f"array #{i} ({a.dtype}{list(a.shape)}) was modified by a failed call"


def same_bits(actual: np.ndarray, expected: np.ndarray) -> bool:
    if actual.dtype != expected.dtype or actual.shape != expected.shape:
        return False
    a, e = np.ascontiguousarray(actual).ravel(), np.ascontiguousarray(expected).ravel()
    uint = {4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return bool(((a.view(uint) == e.view(uint)) | (np.isnan(a) & np.isnan(e))).all())


class Counter:
    """How many examples ended in an accepted call (compared) and in a clean exception."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
