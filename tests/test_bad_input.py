"""Bad input: a clear TypeError or ValueError naming what is wrong, and nothing written.

Every case feeds one bad input to ``adagrad.update`` or to ``adagrad.Adagrad`` (its constructor or
its ``step``) and asserts three things:

1. the exception type (TypeError for a wrong type or dtype, ValueError for a wrong value, shape,
   memory layout, aliasing or structure);
2. a message fragment naming the offending argument ("grad", "state_sum", "lr", "params[9]",
   "'fc.weight'", "param group 1", ...);
3. that every array involved - params, grads, state sums and step counts - is bitwise unchanged.

The optimizer cases run a ten-tensor step whose bad input sits in the LAST tensor, after nine valid
ones, in each of the three ways to give params (a list, a dict name -> array, a list of param
groups): an implementation that wrote before validating everything would be caught.


"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import adagrad

NAN, INF = float("nan"), float("inf")
LONGDOUBLE_IS_DOUBLE = np.dtype(np.longdouble).itemsize == 8


# --------------------------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------------------------- #


class Re(str):
    """A message pattern already written as a regex (plain strings are matched literally)."""


def pattern(fragment: str) -> str:
    return str(fragment) if isinstance(fragment, Re) else re.escape(fragment)


def rand(shape: tuple[int, ...], dtype: Any = np.float64, order: str = "C", seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal(shape)
    return np.array(values, dtype=dtype, order=order)


def arrays_in(obj: Any) -> list[np.ndarray]:
    """Every ndarray inside nested lists, tuples and dicts."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [a for item in obj for a in arrays_in(item)]
    return []


class Snapshot:
    """The exact bytes (and dtype, shape) of every array given; ``check()`` asserts none changed."""

    def __init__(self, *objs: Any) -> None:
        self.arrays = arrays_in(list(objs))
        self.before = [self._bits(a) for a in self.arrays]

    @staticmethod
    def _bits(a: np.ndarray) -> tuple[str, tuple[int, ...], bytes]:
        return a.dtype.str, a.shape, a.tobytes(order="A")

    def check(self) -> None:
        for i, (a, before) in enumerate(zip(self.arrays, self.before)):
            assert self._bits(a) == before, f"array #{i} ({a.dtype}{list(a.shape)}) changed"


# Variants of an array with the same values but one thing wrong.
def fortran(a: np.ndarray) -> np.ndarray:
    return np.asfortranarray(a)


def transposed(a: np.ndarray) -> np.ndarray:
    """a.T of a C-contiguous array: F-contiguous, same shape and values as ``a``."""
    return np.ascontiguousarray(a.T).T


def strided(a: np.ndarray) -> np.ndarray:
    """A non-contiguous view (every other element) with ``a``'s shape and values."""
    return np.repeat(a, 2, axis=-1)[..., ::2]


def reversed_rows(a: np.ndarray) -> np.ndarray:
    """A negative-stride view: contiguous in neither order."""
    return np.ascontiguousarray(a[::-1])[::-1]


def unaligned(a: np.ndarray) -> np.ndarray:
    raw = np.zeros(a.nbytes + a.itemsize, np.uint8)
    out = raw[1 : 1 + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


BAD_DTYPES = [
    pytest.param(np.uint16, id="uint16"),
    pytest.param(np.int32, id="int32"),
    pytest.param(np.int64, id="int64"),
    pytest.param(np.complex64, id="complex64"),
    pytest.param(np.complex128, id="complex128"),
    pytest.param(np.bool_, id="bool"),
    pytest.param(object, id="object"),
    pytest.param(">f4", id="big-endian-f4"),
    pytest.param(">f8", id="big-endian-f8"),
    pytest.param(
        np.longdouble, id="longdouble", marks=pytest.mark.skipif(LONGDOUBLE_IS_DOUBLE, reason="longdouble is float64")
    ),
]


# Hyper-parameters: (name, bad value, exception, message fragment without the "where" prefix).
def _hyper_cases() -> list[Any]:
    cases = []
    for name in ("lr", "eps", "weight_decay", "lr_decay"):
        for value, vid in ((-1.0, "negative"), (NAN, "nan"), (INF, "inf"), (-INF, "-inf")):
            message = f"{name} must be a finite number >= 0"
            cases.append(pytest.param(name, value, ValueError, message, id=f"{name}-{vid}"))
    cases += [
        pytest.param("lr", -5e-324, ValueError, "lr must be a finite number >= 0", id="lr-tiny-negative"),
        pytest.param("lr", np.float64(-0.5), ValueError, "lr must be a finite number >= 0", id="lr-np-negative"),
        pytest.param("eps", np.float32(NAN), ValueError, "eps must be a finite number >= 0", id="eps-np-nan"),
        pytest.param("lr", "0.1", TypeError, "lr must be a real number, got str", id="lr-str"),
        pytest.param("lr", None, TypeError, "lr must be a real number, got NoneType", id="lr-None"),
        pytest.param("lr", True, TypeError, "lr must be a real number, got bool", id="lr-True"),
        pytest.param("lr", np.True_, TypeError, "lr must be a real number, got bool", id="lr-np-True"),
        pytest.param("lr", 0.1j, TypeError, "lr must be a real number, got complex", id="lr-complex"),
        pytest.param("lr", [0.1], TypeError, "lr must be a real number, got list", id="lr-list"),
        pytest.param("eps", "1e-10", TypeError, "eps must be a real number, got str", id="eps-str"),
        pytest.param("weight_decay", None, TypeError, "weight_decay must be a real number", id="weight_decay-None"),
        pytest.param("lr_decay", False, TypeError, "lr_decay must be a real number, got bool", id="lr_decay-False"),
        pytest.param("maximize", 1, TypeError, "maximize must be a bool, got int", id="maximize-1"),
        pytest.param("maximize", "yes", TypeError, "maximize must be a bool, got str", id="maximize-yes"),
        pytest.param("maximize", None, TypeError, "maximize must be a bool, got NoneType", id="maximize-None"),
        pytest.param("decoupled_weight_decay", 0, TypeError, "decoupled_weight_decay must be a bool", id="decoupled-0"),
        pytest.param("eps_inside_sqrt", "no", TypeError, "eps_inside_sqrt must be a bool, got str", id="eps_inside-no"),
        pytest.param(
            "lr",
            10**400,
            ValueError,
            "lr must be a finite number >= 0",
            id="lr-int-beyond-double",
        ),
    ]
    return cases


HYPER_CASES = _hyper_cases()

INITIAL_CASES = [
    pytest.param(-1.0, ValueError, "initial_accumulator_value must be a finite number >= 0", id="negative"),
    pytest.param(NAN, ValueError, "initial_accumulator_value must be a finite number >= 0", id="nan"),
    pytest.param(INF, ValueError, "initial_accumulator_value must be a finite number >= 0", id="inf"),
    pytest.param(-INF, ValueError, "initial_accumulator_value must be a finite number >= 0", id="-inf"),
    pytest.param("0", TypeError, "initial_accumulator_value must be a real number, got str", id="str"),
    pytest.param(None, TypeError, "initial_accumulator_value must be a real number, got NoneType", id="None"),
    pytest.param(True, TypeError, "initial_accumulator_value must be a real number, got bool", id="True"),
    pytest.param(
        10**400,
        ValueError,
        "initial_accumulator_value must be a finite number >= 0",
        id="int-beyond-double",
    ),
]


# --------------------------------------------------------------------------------------------- #
# adagrad.update
# --------------------------------------------------------------------------------------------- #

Triple = tuple[Any, Any, Any]


def triple(dtype: Any = np.float64, order: str = "C") -> Triple:
    """A valid (param, grad, state_sum) of shape (3, 4)."""
    return rand((3, 4), dtype, order, 1), rand((3, 4), dtype, order, 2), np.abs(rand((3, 4), dtype, order, 3))


def overlapping(first: slice, second: slice) -> tuple[np.ndarray, np.ndarray]:
    """Two (3, 4) views of one buffer of 24 doubles."""
    buf = rand((24,), seed=4)
    return buf[first].reshape(3, 4), buf[second].reshape(3, 4)


def _p_overlaps_g() -> Triple:
    p, g = overlapping(slice(6, 18), slice(0, 12))
    return p, g, triple()[2]


def _g_overlaps_s() -> Triple:
    s, g = overlapping(slice(0, 12), slice(8, 20))
    np.abs(s, out=s)  # a state sum is >= 0; in place, so g still overlaps it
    return triple()[0], g, s


def _p_overlaps_s() -> Triple:
    p, s = overlapping(slice(0, 12), slice(4, 16))
    return p, triple()[1], s


def _same(which: str) -> Callable[[], Triple]:
    def build() -> Triple:
        p, g, s = triple()
        return {"grad is param": (p, p, s), "grad is state_sum": (p, s, s), "state_sum is param": (p, g, p)}[which]

    return build


def _replace(role: int, fn: Callable[[np.ndarray], Any], dtype: Any = np.float64) -> Callable[[], Triple]:
    def build() -> Triple:
        arrays = list(triple(dtype))
        arrays[role] = fn(arrays[role])
        return arrays[0], arrays[1], arrays[2]

    return build


PARAM, GRAD, SUM = 0, 1, 2
ROLE_NAMES = {PARAM: "param", GRAD: "grad", SUM: "state_sum"}


def _update_array_cases() -> list[Any]:
    cases = []
    for role, name in ROLE_NAMES.items():
        for dt in BAD_DTYPES:
            cases.append(
                pytest.param(
                    _replace(role, lambda a, d=dt.values[0]: a.astype(d)),
                    TypeError,
                    f"{name} must have dtype float32, float64, float16 or bfloat16 (native byte order)",
                    id=f"{name}-{dt.id}",
                    marks=dt.marks,
                )
            )
        cases += [
            pytest.param(
                _replace(role, lambda a: a.tolist()),
                TypeError,
                f"{name} must be a numpy.ndarray of float32, float64, float16 or bfloat16, got list",
                id=f"{name}-list",
            ),
            pytest.param(
                _replace(role, lambda a: 0.5),
                TypeError,
                f"{name} must be a numpy.ndarray of float32, float64, float16 or bfloat16, got float",
                id=f"{name}-scalar",
            ),
            pytest.param(
                _replace(role, lambda a: None),
                TypeError,
                f"{name} must be a numpy.ndarray of float32, float64, float16 or bfloat16, got NoneType",
                id=f"{name}-None",
            ),
            pytest.param(_replace(role, strided), ValueError, f"{name} must be contiguous", id=f"{name}-strided"),
            pytest.param(
                _replace(role, reversed_rows), ValueError, f"{name} must be contiguous", id=f"{name}-negative-strides"
            ),
            pytest.param(_replace(role, unaligned), ValueError, f"{name} is not aligned", id=f"{name}-unaligned"),
        ]
    for role in (GRAD, SUM):
        name = ROLE_NAMES[role]
        cases += [
            pytest.param(
                _replace(role, lambda a: a.astype(np.float32)),
                TypeError,
                f"{name} has dtype float32 but param has float64; they must match",
                id=f"{name}-f32-param-f64",
            ),
            pytest.param(
                _replace(role, lambda a: a.astype(np.float64), np.float32),
                TypeError,
                f"{name} has dtype float64 but param has float32; they must match",
                id=f"{name}-f64-param-f32",
            ),
            pytest.param(
                _replace(role, lambda a: np.ascontiguousarray(a.T)),
                ValueError,
                f"{name} has shape (4, 3) but param has (3, 4); they must match",
                id=f"{name}-shape-transposed",
            ),
            pytest.param(
                _replace(role, lambda a: a.ravel()),
                ValueError,
                f"{name} has shape (12,) but param has (3, 4)",
                id=f"{name}-shape-flat",
            ),
            pytest.param(
                _replace(role, lambda a: a[None]),
                ValueError,
                f"{name} has shape (1, 3, 4) but param has (3, 4)",
                id=f"{name}-shape-extra-dim",
            ),
            pytest.param(
                _replace(role, lambda a: a[:2]),
                ValueError,
                f"{name} has shape (2, 4) but param has (3, 4)",
                id=f"{name}-shape-shorter",
            ),
            pytest.param(
                _replace(role, fortran),
                ValueError,
                f"{name} is in Fortran order but param is in C order; they must match",
                id=f"{name}-fortran",
            ),
            pytest.param(
                _replace(role, transposed),
                ValueError,
                f"{name} is in Fortran order but param is in C order",
                id=f"{name}-a.T-of-C",
            ),
        ]
    cases += [
        pytest.param(
            lambda: (fortran(triple()[0]),) + triple()[1:],
            ValueError,
            "grad is in C order but param is in Fortran order",
            id="param-fortran-others-C",
        ),
        pytest.param(_replace(PARAM, readonly), ValueError, "param is read-only", id="param-readonly"),
        pytest.param(_replace(SUM, readonly), ValueError, "state_sum is read-only", id="state_sum-readonly"),
        pytest.param(_same("grad is param"), ValueError, "param and grad share memory", id="grad-is-param"),
        pytest.param(_same("grad is state_sum"), ValueError, "state_sum and grad share memory", id="grad-is-state_sum"),
        pytest.param(
            _same("state_sum is param"),
            ValueError,
            Re(r"(param and state_sum|state_sum and param) share memory"),
            id="state_sum-is-param",
        ),
        pytest.param(_p_overlaps_g, ValueError, "param and grad share memory", id="grad-view-overlaps-param"),
        pytest.param(_g_overlaps_s, ValueError, "state_sum and grad share memory", id="grad-view-overlaps-state_sum"),
        pytest.param(_p_overlaps_s, ValueError, "param and state_sum share memory", id="state_sum-view-overlaps-param"),
    ]
    return cases


@pytest.mark.parametrize(("build", "error", "message"), _update_array_cases())
def test_update_rejects_bad_array(build: Callable[[], Triple], error: type, message: str) -> None:
    param, grad, state_sum = build()
    snapshot = Snapshot(param, grad, state_sum)
    with pytest.raises(error, match=pattern(message)):
        adagrad.update(param, grad, state_sum, step=1, lr=0.1, weight_decay=0.01)
    snapshot.check()


STEP_CASES = [
    pytest.param(0, ValueError, "step must be >= 1", id="zero"),
    pytest.param(-1, ValueError, "step must be >= 1", id="negative"),
    pytest.param(np.int64(0), ValueError, "step must be >= 1", id="np-zero"),
    pytest.param(1.5, TypeError, "step must be an int, got float", id="float"),
    pytest.param(1.0, TypeError, "step must be an int, got float", id="integral-float"),
    pytest.param(np.float64(1.0), TypeError, "step must be an int, got float64", id="np-float"),
    pytest.param(True, TypeError, "step must be an int, got bool", id="True"),
    pytest.param(np.True_, TypeError, "step must be an int, got bool", id="np-True"),
    pytest.param("1", TypeError, "step must be an int, got str", id="str"),
    pytest.param(None, TypeError, "step must be an int, got NoneType", id="None"),
    pytest.param(
        2**63,
        ValueError,
        "step",
        id="beyond-int64",
    ),
]


@pytest.mark.parametrize(("step", "error", "message"), STEP_CASES)
def test_update_rejects_bad_step(step: Any, error: type, message: str) -> None:
    param, grad, state_sum = triple()
    snapshot = Snapshot(param, grad, state_sum)
    with pytest.raises(error, match="^" + pattern(message)):
        adagrad.update(param, grad, state_sum, step=step)
    snapshot.check()


@pytest.mark.parametrize(("name", "value", "error", "message"), HYPER_CASES)
def test_update_rejects_bad_option(name: str, value: Any, error: type, message: str) -> None:
    param, grad, state_sum = triple()
    snapshot = Snapshot(param, grad, state_sum)
    with pytest.raises(error, match="^" + pattern(message)):
        adagrad.update(param, grad, state_sum, step=1, **{name: value})
    snapshot.check()


VALID_UPDATE_CASES = [
    pytest.param(lambda: (lambda p, g, s: (p, readonly(g), s))(*triple()), {}, id="readonly-grad"),
    pytest.param(lambda: triple(np.float32), {}, id="float32"),
    pytest.param(lambda: triple(order="F"), {}, id="all-fortran"),
    pytest.param(
        lambda: (lambda p, g, s: (fortran(p), transposed(g), fortran(s)))(*triple()), {}, id="a.T-with-fortran"
    ),
    pytest.param(lambda: tuple(np.zeros((0, 3)) for _ in range(3)), {}, id="empty"),
    pytest.param(
        triple, {"step": np.int64(3), "lr": np.float32(0.5), "lr_decay": 1, "maximize": np.True_}, id="numpy-scalars"
    ),
    pytest.param(triple, {"lr": 0, "eps": 0.0, "weight_decay": -0.0, "lr_decay": 0}, id="zeros"),
]


@pytest.mark.parametrize(("build", "options"), VALID_UPDATE_CASES)
def test_update_accepts_valid_counterparts(build: Callable[[], Triple], options: dict[str, Any]) -> None:
    """The checks are not over-eager: these are fine, and give the reference's bits."""
    param, grad, state_sum = build()
    options = {"step": 1, **options}
    expected_param, expected_sum = np.array(param, copy=True), np.array(state_sum, copy=True)
    grad_before = Snapshot(grad)
    adagrad.update(param, grad, state_sum, **options)
    adagrad.reference.update(expected_param, np.array(grad), expected_sum, **{k: v for k, v in options.items()})
    assert param.tobytes(order="A") == expected_param.tobytes(order="A")
    assert state_sum.tobytes(order="A") == expected_sum.tobytes(order="A")
    grad_before.check()


# --------------------------------------------------------------------------------------------- #
# adagrad.Adagrad: constructor
# --------------------------------------------------------------------------------------------- #


def two() -> list[np.ndarray]:
    return [rand((3, 4), seed=5), rand((5,), np.float32, seed=6)]


def _replace_param(fn: Callable[[np.ndarray], Any]) -> Callable[[], Any]:
    return lambda: (lambda a, b: [a, fn(b)])(*two())


def _buffer_views() -> tuple[np.ndarray, np.ndarray]:
    buf = rand((20,), seed=7)
    return buf[:10], buf[5:15]


def _ctor_cases() -> list[Any]:
    cases = [
        pytest.param(list, ValueError, "the optimizer got an empty parameter list", id="empty-list"),
        pytest.param(tuple, ValueError, "the optimizer got an empty parameter list", id="empty-tuple"),
        pytest.param(
            dict,
            ValueError,
            "empty",
            id="empty-dict",
        ),
        pytest.param(lambda: two()[0], TypeError, "params must be a list or dict of arrays", id="single-ndarray"),
        pytest.param(lambda: None, TypeError, "params must be a list or dict of arrays", id="None"),
        pytest.param(lambda: "w", TypeError, "got str", id="str"),
        pytest.param(
            lambda: {"params": two()}, TypeError, "a single param group must be wrapped in a list", id="unwrapped-group"
        ),
        pytest.param(
            lambda: [two()[0], {"params": [two()[1]]}],
            TypeError,
            "params mixes arrays and param-group dicts",
            id="mixed-arrays-and-groups",
        ),
        pytest.param(
            lambda: [{"params": two()[0]}],
            TypeError,
            "a group's 'params' must be a list or dict of arrays, got a single ndarray",
            id="group-ndarray",
        ),
        pytest.param(
            lambda: [{"params": None}],
            TypeError,
            "a group's 'params' must be a list or dict of arrays",
            id="group-params-None",
        ),
        pytest.param(
            _replace_param(lambda b: b.tolist()),
            TypeError,
            "param params[1] must be a numpy.ndarray of float32, float64, float16 or bfloat16, got list",
            id="list-param",
        ),
        pytest.param(
            _replace_param(lambda b: None),
            TypeError,
            "param params[1] must be a numpy.ndarray of float32, float64, float16 or bfloat16, got NoneType",
            id="None-param",
        ),
        pytest.param(_replace_param(readonly), ValueError, "param params[1] is read-only", id="readonly-param"),
        pytest.param(_replace_param(strided), ValueError, "param params[1] must be contiguous", id="strided-param"),
        pytest.param(_replace_param(unaligned), ValueError, "param params[1] is not aligned", id="unaligned-param"),
        pytest.param(
            lambda: list(_buffer_views()),
            ValueError,
            "param params[0] and param params[1] share memory",
            id="params-share-memory",
        ),
        pytest.param(
            lambda: (lambda a: [a, a])(two()[0]),
            ValueError,
            "duplicate param: params[0] and params[1] are the same array",
            id="same-array-twice",
        ),
        pytest.param(
            lambda: (lambda a, b: [a, b, a])(*two()),
            ValueError,
            "duplicate param: params[0] and params[2] are the same array",
            id="same-array-again-later",
        ),
        pytest.param(
            lambda: (lambda a: [{"params": [a]}, {"params": [a]}])(two()[0]),
            ValueError,
            "duplicate param: params[0] and params[1] are the same array",
            id="same-array-two-groups",
        ),
        pytest.param(
            lambda: (lambda a, b: {"a": a, "b": b})(*_buffer_views()),
            ValueError,
            "param 'a' and param 'b' share memory",
            id="dict-params-share-memory",
        ),
        pytest.param(
            lambda: (lambda a, b: {"embed": a, "fc.weight": b.astype(np.int32)})(*two()),
            TypeError,
            "param 'fc.weight' must have dtype float32, float64, float16 or bfloat16",
            id="dict-bad-dtype",
        ),
        pytest.param(
            lambda: (lambda a, b: {"embed": a, "fc.weight": readonly(b)})(*two()),
            ValueError,
            "param 'fc.weight' is read-only",
            id="dict-readonly",
        ),
        pytest.param(
            lambda: (lambda a, b: {"embed": a, 1: b})(*two()),
            TypeError,
            "param names must be str, got int: 1",
            id="dict-non-str-name",
        ),
        pytest.param(
            lambda: (lambda a, b: [{"params": [a]}, {"params": [b], "momentum": 0.9}])(*two()),
            TypeError,
            "param group 1: unknown option 'momentum'",
            id="group-unknown-option",
        ),
        pytest.param(
            lambda: (lambda a, b: [{"params": [a], "betas": (0.9, 0.99)}, {"params": [b]}])(*two()),
            TypeError,
            "param group 0: unknown option 'betas'",
            id="group0-unknown-option",
        ),
        pytest.param(
            lambda: (lambda a, b: [{"params": {"w": a}}, {"params": {"w": b}}])(*two()),
            ValueError,
            "param name 'w' appears in more than one param group",
            id="groups-duplicate-name",
        ),
        pytest.param(
            lambda: (lambda a, b: [{"params": [a]}, {"params": [b.astype(np.int32)]}])(*two()),
            TypeError,
            "param params[1] must have dtype float32, float64, float16 or bfloat16",
            id="group1-bad-dtype",
        ),
    ]
    for dt in BAD_DTYPES:
        cases.append(
            pytest.param(
                _replace_param(lambda b, d=dt.values[0]: b.astype(d)),
                TypeError,
                "param params[1] must have dtype float32, float64, float16 or bfloat16 (native byte order)",
                id=f"param-{dt.id}",
                marks=dt.marks,
            )
        )
    return cases


@pytest.mark.parametrize(("build", "error", "message"), _ctor_cases())
def test_constructor_rejects_bad_params(build: Callable[[], Any], error: type, message: str) -> None:
    params = build()
    snapshot = Snapshot(params)
    with pytest.raises(error, match=pattern(message)):
        adagrad.Adagrad(params)
    if snapshot.arrays:
        snapshot.check()


@pytest.mark.parametrize(("name", "value", "error", "message"), HYPER_CASES)
def test_constructor_rejects_bad_option(name: str, value: Any, error: type, message: str) -> None:
    params = two()
    snapshot = Snapshot(params)
    with pytest.raises(error, match="^" + pattern(message)):
        adagrad.Adagrad(params, **{name: value})
    snapshot.check()


@pytest.mark.parametrize(("name", "value", "error", "message"), HYPER_CASES)
def test_constructor_rejects_bad_group_option(name: str, value: Any, error: type, message: str) -> None:
    a, b = two()
    snapshot = Snapshot(a, b)
    with pytest.raises(error, match="^" + pattern("param group 1: " + message)):
        adagrad.Adagrad([{"params": [a]}, {"params": [b], name: value}])
    snapshot.check()


@pytest.mark.parametrize(("value", "error", "message"), INITIAL_CASES)
@pytest.mark.parametrize("where", ["default", "group 1"])
def test_constructor_rejects_bad_initial_accumulator_value(value: Any, error: type, message: str, where: str) -> None:
    a, b = two()
    snapshot = Snapshot(a, b)
    with pytest.raises(error, match=pattern(message)) as info:
        if where == "default":
            adagrad.Adagrad([a, b], initial_accumulator_value=value)
        else:
            adagrad.Adagrad([{"params": [a]}, {"params": [b], "initial_accumulator_value": value}])
    assert str(info.value).startswith("" if where == "default" else "param group 1: ")
    snapshot.check()


# --------------------------------------------------------------------------------------------- #
# adagrad.Adagrad.step over ten tensors
# --------------------------------------------------------------------------------------------- #

# The ten params: shape, dtype, order. 0, 1 and 9 alike, so a grad may alias across them.
SPECS = [
    ((3, 4), np.float64, "C"),
    ((3, 4), np.float64, "C"),
    ((5,), np.float32, "C"),
    ((2, 3), np.float32, "F"),
    ((), np.float64, "C"),
    ((7,), np.float64, "C"),
    ((4, 4), np.float32, "C"),
    ((2, 2, 3), np.float64, "C"),
    ((0,), np.float32, "C"),
    ((3, 4), np.float64, "C"),
]
NAMES = [
    "embed",
    "l0.weight",
    "l0.bias",
    "l1.weight",
    "l1.scale",
    "l1.bias",
    "l2.weight",
    "l2.kernel",
    "l2.empty",
    "fc.weight",
]
LAYOUTS = ["list", "dict", "groups"]
SPLIT = 6  # groups layout: params 0..5 in group 0, 6..9 in group 1


@dataclass
class Setup:
    """An optimizer over the ten params, one valid step already taken."""

    layout: str
    params: list[np.ndarray]
    buf9: np.ndarray  # params[9] is buf9[6:18] viewed as (3, 4)
    opt: adagrad.Adagrad

    @property
    def keys(self) -> list[Any]:
        return NAMES if self.layout == "dict" else list(range(10))

    def label(self, i: int) -> str:
        return repr(NAMES[i]) if self.layout == "dict" else f"params[{i}]"

    @property
    def last_group(self) -> int:
        return 1 if self.layout == "groups" else 0

    def sum(self, i: int) -> np.ndarray:
        return self.opt.state[self.keys[i]]["sum"]

    def count(self, i: int) -> np.ndarray:
        return self.opt.state[self.keys[i]]["step"]

    def grads(self, seed: int) -> list[Any]:
        return [rand(shape, dtype, order, seed * 100 + i) for i, (shape, dtype, order) in enumerate(SPECS)]

    def pack(self, flat: list[Any]) -> Any:
        if self.layout == "list":
            return flat
        if self.layout == "dict":
            return dict(zip(NAMES, flat))
        return [flat[:SPLIT], flat[SPLIT:]]

    def snapshot(self, *extra: Any) -> Snapshot:
        state = [self.sum(i) for i in range(10)] + [self.count(i) for i in range(10)]
        return Snapshot(self.params, state, *extra)


def make_setup(layout: str) -> Setup:
    params = [rand(shape, dtype, order, i) for i, (shape, dtype, order) in enumerate(SPECS)]
    buf9 = rand((24,), seed=9)
    params[9] = buf9[6:18].reshape(3, 4)
    if layout == "list":
        given: Any = params
    elif layout == "dict":
        given = dict(zip(NAMES, params))
    else:
        given = [{"params": params[:SPLIT]}, {"params": params[SPLIT:], "lr": 0.1, "initial_accumulator_value": 0.5}]
    setup = Setup(layout, params, buf9, adagrad.Adagrad(given, lr=0.05, weight_decay=0.01))
    before = Snapshot(params)
    setup.opt.step(setup.pack(setup.grads(seed=1)))
    with pytest.raises(AssertionError):
        before.check()  # the warm-up step wrote
    assert all(int(setup.count(i)) == 1 for i in range(10))
    return setup


@pytest.fixture(params=LAYOUTS)
def setup(request: pytest.FixtureRequest) -> Setup:
    return make_setup(request.param)


Mutation = Callable[[Setup, list[Any]], None]


def grad(i: int, fn: Callable[[np.ndarray, Setup], Any]) -> Mutation:
    """Replace grads[i] by fn(grads[i], setup)."""

    def mutate(su: Setup, grads: list[Any]) -> None:
        grads[i] = fn(grads[i], su)

    return mutate


def last(fn: Callable[[np.ndarray], Any]) -> Mutation:
    return grad(9, lambda g, su: fn(g))


def make_readonly(get: Callable[[Setup], np.ndarray]) -> Mutation:
    """Make one of the optimizer's own arrays read-only after construction (the grads stay valid)."""

    def mutate(su: Setup, grads: list[Any]) -> None:
        readonly(get(su))

    return mutate


def _step_tensor_cases() -> list[Any]:
    """(mutation of the valid flat grads / of the setup, exception, message with {name} = label of
    tensor 9, {first}, {second}, {l3} = labels of tensors 0, 1, 3)."""
    cases = []
    for dt in BAD_DTYPES:
        cases.append(
            pytest.param(
                last(lambda g, d=dt.values[0]: g.astype(d)),
                TypeError,
                "grad of {name} must have dtype float32, float64, float16 or bfloat16 (native byte order)",
                id=f"grad-{dt.id}",
                marks=dt.marks,
            )
        )
    cases += [
        pytest.param(
            last(lambda g: g.astype(np.float32)),
            TypeError,
            "grad of {name} has dtype float32 but param {name} has float64; they must match",
            id="grad-f32",
        ),
        pytest.param(
            last(lambda g: g.tolist()),
            TypeError,
            "grad of {name} must be a numpy.ndarray of float32, float64, float16 or bfloat16, got list",
            id="grad-list",
        ),
        pytest.param(
            last(lambda g: 0.5),
            TypeError,
            "grad of {name} must be a numpy.ndarray of float32, float64, float16 or bfloat16, got float",
            id="grad-scalar",
        ),
        pytest.param(
            last(lambda g: np.ascontiguousarray(g.T)),
            ValueError,
            "grad of {name} has shape (4, 3) but param {name} has (3, 4); they must match",
            id="grad-shape",
        ),
        pytest.param(
            last(lambda g: g.ravel()),
            ValueError,
            "grad of {name} has shape (12,) but param {name} has (3, 4)",
            id="grad-shape-flat",
        ),
        pytest.param(
            last(fortran),
            ValueError,
            "grad of {name} is in Fortran order but param {name} is in C order",
            id="grad-fortran",
        ),
        pytest.param(
            last(transposed),
            ValueError,
            "grad of {name} is in Fortran order but param {name} is in C order",
            id="grad-a.T-of-C",
        ),
        pytest.param(
            grad(3, lambda g, su: np.ascontiguousarray(g)),
            ValueError,
            "grad of {l3} is in C order but param {l3} is in Fortran order",
            id="grad3-C-param-F",
        ),
        pytest.param(last(strided), ValueError, "grad of {name} must be contiguous", id="grad-strided"),
        pytest.param(last(reversed_rows), ValueError, "grad of {name} must be contiguous", id="grad-negative-strides"),
        pytest.param(last(unaligned), ValueError, "grad of {name} is not aligned", id="grad-unaligned"),
        pytest.param(
            grad(9, lambda g, su: su.params[9]),
            ValueError,
            "param {name} and grad of {name} share memory",
            id="grad-is-param",
        ),
        pytest.param(
            grad(9, lambda g, su: su.sum(9)),
            ValueError,
            "state sum of {name} and grad of {name} share memory",
            id="grad-is-state-sum",
        ),
        pytest.param(
            grad(9, lambda g, su: su.buf9[:12].reshape(3, 4)),
            ValueError,
            "param {name} and grad of {name} share memory",
            id="grad-view-overlaps-param-head",
        ),
        pytest.param(
            grad(9, lambda g, su: su.buf9[12:].reshape(3, 4)),
            ValueError,
            "param {name} and grad of {name} share memory",
            id="grad-view-overlaps-param-tail",
        ),
        pytest.param(
            grad(9, lambda g, su: su.params[0]),
            ValueError,
            "param {first} and grad of {name} share memory",
            id="grad9-is-param0",
        ),
        pytest.param(
            grad(9, lambda g, su: su.sum(0)),
            ValueError,
            "state sum of {first} and grad of {name} share memory",
            id="grad9-is-state-sum0",
        ),
        pytest.param(
            grad(1, lambda g, su: su.params[0]),
            ValueError,
            "param {first} and grad of {second} share memory",
            id="grad1-is-param0",
        ),
        pytest.param(
            grad(1, lambda g, su: su.sum(0)),
            ValueError,
            "state sum of {first} and grad of {second} share memory",
            id="grad1-is-state-sum0",
        ),
        pytest.param(
            make_readonly(lambda su: su.params[9]), ValueError, "param {name} is read-only", id="param-readonly"
        ),
        pytest.param(
            make_readonly(lambda su: su.sum(9)), ValueError, "state sum of {name} is read-only", id="state-sum-readonly"
        ),
    ]
    return cases


def _set_count(value: int) -> Mutation:
    def mutate(su: Setup, grads: list[Any]) -> None:
        su.count(9)[...] = value

    return mutate


STEP_TENSOR_CASES = _step_tensor_cases() + [
    pytest.param(_set_count(-1), ValueError, "step count of param {name} is out of range", id="step-count-negative"),
    pytest.param(
        _set_count(np.iinfo(np.int64).max),
        ValueError,
        "step count of param {name} is out of range",
        id="step-count-at-max",
    ),
]


@pytest.mark.parametrize(("mutate", "error", "message"), STEP_TENSOR_CASES)
def test_step_rejects_bad_tensor_all_or_nothing(setup: Setup, mutate: Mutation, error: type, message: str) -> None:
    grads = setup.grads(seed=2)
    mutate(setup, grads)
    snapshot = setup.snapshot(grads)
    text = message.format(name=setup.label(9), first=setup.label(0), second=setup.label(1), l3=setup.label(3))
    with pytest.raises(error, match=pattern(text)):
        setup.opt.step(setup.pack(grads))
    snapshot.check()


@pytest.mark.parametrize(("name", "value", "error", "message"), HYPER_CASES)
def test_step_rejects_option_set_after_construction(
    setup: Setup, name: str, value: Any, error: type, message: str
) -> None:
    setup.opt.param_groups[setup.last_group][name] = value
    grads = setup.grads(seed=2)
    snapshot = setup.snapshot(grads)
    with pytest.raises(error, match="^" + pattern(f"param group {setup.last_group}: {message}")):
        setup.opt.step(setup.pack(grads))
    snapshot.check()


StructureFn = Callable[[Setup, list[Any]], Any]

STRUCTURE_CASES = [
    # list params: grads must be a list/tuple of exactly ten.
    pytest.param(
        "list",
        lambda su, g: g[:9],
        ValueError,
        "param group 0: expected 10 gradients (one per param, None to skip), got 9",
        id="list-too-few",
    ),
    pytest.param(
        "list",
        lambda su, g: g + [g[0].copy()],
        ValueError,
        "param group 0: expected 10 gradients (one per param, None to skip), got 11",
        id="list-too-many",
    ),
    pytest.param("list", lambda su, g: [], ValueError, "param group 0: expected 10 gradients", id="list-empty"),
    pytest.param(
        "list",
        lambda su, g: dict(enumerate(g)),
        TypeError,
        "grads must be a list of arrays like the params, got a dict",
        id="list-given-dict",
    ),
    pytest.param(
        "list",
        lambda su, g: dict(zip(NAMES, g)),
        TypeError,
        "grads must be a list of arrays like the params, got a dict",
        id="list-given-named-dict",
    ),
    pytest.param(
        "list",
        lambda su, g: g[9],
        TypeError,
        "param group 0: grads must be a list or tuple, got ndarray",
        id="list-given-ndarray",
    ),
    pytest.param(
        "list",
        lambda su, g: None,
        TypeError,
        "param group 0: grads must be a list or tuple, got NoneType",
        id="list-given-None",
    ),
    pytest.param(
        "list",
        lambda su, g: (x for x in g),
        TypeError,
        "param group 0: grads must be a list or tuple, got generator",
        id="list-given-generator",
    ),
    pytest.param(
        "list",
        lambda su, g: [g[:SPLIT], g[SPLIT:]],
        ValueError,
        "param group 0: expected 10 gradients",
        id="list-given-groups",
    ),
    # dict params: grads must be a dict with exactly the same names.
    pytest.param(
        "dict",
        lambda su, g: g,
        TypeError,
        "grads must be a dict name -> array like the params, got list",
        id="dict-given-list",
    ),
    pytest.param(
        "dict",
        lambda su, g: g[9],
        TypeError,
        "grads must be a dict name -> array like the params, got ndarray",
        id="dict-given-ndarray",
    ),
    pytest.param(
        "dict",
        lambda su, g: None,
        TypeError,
        "grads must be a dict name -> array like the params, got NoneType",
        id="dict-given-None",
    ),
    pytest.param(
        "dict",
        lambda su, g: dict(zip(NAMES[:9], g)),
        ValueError,
        "grads has no entry for 'fc.weight' (use None to skip a param)",
        id="dict-missing-key",
    ),
    pytest.param("dict", lambda su, g: {}, ValueError, "grads has no entry for 'embed'", id="dict-empty"),
    pytest.param(
        "dict",
        lambda su, g: {**dict(zip(NAMES, g)), "fc.bias": g[9].copy()},
        ValueError,
        "grads has an entry 'fc.bias' that is not a param of this optimizer",
        id="dict-extra-key",
    ),
    pytest.param(
        "dict",
        lambda su, g: {**dict(zip(NAMES[:9], g)), "fc.weigth": g[9]},
        ValueError,
        "grads has no entry for 'fc.weight'",
        id="dict-misspelt-key",
    ),
    pytest.param(
        "dict", lambda su, g: dict(enumerate(g)), ValueError, "grads has no entry for 'embed'", id="dict-int-keys"
    ),
    # groups: grads must be a list with one list per group.
    pytest.param(
        "groups",
        lambda su, g: [g[:SPLIT]],
        ValueError,
        "grads must have one entry per param group: expected 2, got 1",
        id="groups-too-few",
    ),
    pytest.param(
        "groups",
        lambda su, g: [g[:SPLIT], g[SPLIT:], []],
        ValueError,
        "grads must have one entry per param group: expected 2, got 3",
        id="groups-too-many",
    ),
    pytest.param(
        "groups",
        lambda su, g: g,
        ValueError,
        "grads must have one entry per param group: expected 2, got 10",
        id="groups-given-flat-list",
    ),
    pytest.param(
        "groups",
        lambda su, g: {0: g[:SPLIT], 1: g[SPLIT:]},
        TypeError,
        "grads must be a list with one entry per param group, got dict",
        id="groups-given-dict",
    ),
    pytest.param(
        "groups",
        lambda su, g: g[9],
        TypeError,
        "grads must be a list with one entry per param group, got ndarray",
        id="groups-given-ndarray",
    ),
    pytest.param(
        "groups",
        lambda su, g: [g[:SPLIT], g[SPLIT:-1]],
        ValueError,
        "param group 1: expected 4 gradients (one per param, None to skip), got 3",
        id="group1-too-few",
    ),
    pytest.param(
        "groups",
        lambda su, g: [g[: SPLIT - 1], g[SPLIT:]],
        ValueError,
        "param group 0: expected 6 gradients (one per param, None to skip), got 5",
        id="group0-too-few",
    ),
    pytest.param(
        "groups",
        lambda su, g: [g[:SPLIT], dict(enumerate(g[SPLIT:]))],
        TypeError,
        "grads[1] must be a list of arrays like the params, got a dict",
        id="group1-given-dict",
    ),
    pytest.param(
        "groups",
        lambda su, g: [g[:SPLIT], g[9]],
        TypeError,
        "param group 1: grads must be a list or tuple, got ndarray",
        id="group1-given-ndarray",
    ),
    pytest.param(
        "groups",
        lambda su, g: [g[SPLIT:], g[:SPLIT]],
        ValueError,
        "param group 0: expected 6 gradients",
        id="groups-swapped",
    ),
]


@pytest.mark.parametrize(("layout", "structure", "error", "message"), STRUCTURE_CASES)
def test_step_rejects_grads_not_matching_params(layout: str, structure: StructureFn, error: type, message: str) -> None:
    setup = make_setup(layout)
    grads = setup.grads(seed=2)
    bad = structure(setup, grads)
    snapshot = setup.snapshot(grads)
    with pytest.raises(error, match=pattern(message)):
        setup.opt.step(bad)
    snapshot.check()


VALID_STEP_CASES = [
    pytest.param(lambda su, g: [readonly(x) for x in g], id="readonly-grads"),
    pytest.param(lambda su, g: g[:1] + [g[0]] + g[2:], id="same-grad-for-two-params"),
    pytest.param(lambda su, g: g[:3] + [transposed(g[3])] + g[4:], id="a.T-grad-for-fortran-param"),
    pytest.param(lambda su, g: [None if i % 2 else x for i, x in enumerate(g)], id="None-skips"),
]


@pytest.mark.parametrize("change", VALID_STEP_CASES)
def test_step_accepts_valid_counterparts(setup: Setup, change: Callable[[Setup, list[Any]], list[Any]]) -> None:
    """The checks are not over-eager: these steps succeed, updating exactly the tensors with a grad."""
    grads = change(setup, setup.grads(seed=2))
    before = [p.copy() for p in setup.params]
    setup.opt.step(setup.pack(grads))
    for i, (p, g) in enumerate(zip(setup.params, grads)):
        written = g is not None
        assert int(setup.count(i)) == 1 + written
        if written and p.size:
            assert p.tobytes() != before[i].tobytes(), f"{setup.label(i)} was not updated"
        if not written:
            assert p.tobytes() == before[i].tobytes()


def test_step_accepts_tuple_grads() -> None:
    setup = make_setup("list")
    setup.opt.step(tuple(setup.grads(seed=2)))
    assert all(int(setup.count(i)) == 2 for i in range(10))


def test_step_accepts_dict_grads_in_any_order() -> None:
    setup = make_setup("dict")
    grads = setup.grads(seed=2)
    setup.opt.step(dict(reversed(list(zip(NAMES, grads)))))
    assert all(int(setup.count(i)) == 2 for i in range(10))


def test_fortran_param_with_fortran_grad_is_valid() -> None:
    """a.T of a C-contiguous array is F-contiguous: valid where the param (and so its sum) is F too."""
    param = fortran(rand((3, 4), seed=11))
    opt = adagrad.Adagrad([param])
    assert opt.state[0]["sum"].flags.f_contiguous
    opt.step([transposed(rand((3, 4), seed=12))])
    assert int(opt.state[0]["step"]) == 1
    assert not math.isnan(float(param.sum()))
