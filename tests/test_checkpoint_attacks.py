"""Checkpoints under attack (issue 27, item 4): each reproducer of the issue, as a table.

1. ``load`` interrupted (KeyboardInterrupt raised, or SIGINT delivered) at each member it reads and
   each state it builds: the optimizer as it was, bit for bit; SIGINT while the new state goes in:
   the load completes, then the interrupt is raised.
2. A hostile archive (a zip bomb member, a non-``.npy`` member, a name twice, nested JSON, a
   negative or NaN sum, a header or data that lies) is a ValueError naming the member, nothing is
   decompressed beyond the expected sizes, and the optimizer is as it was, bit for bit.
3. ``save`` keeps the target's permission bits, follows a symlink, writes to file objects,
   refuses a missing folder and a state ``load`` would refuse.
4. Hyper-parameters of any type the constructor accepts (0-d arrays, NumPy scalars, torch
   tensors, Fraction, Decimal) are plain numbers from construction on, so they save and load.
"""

from __future__ import annotations

import decimal
import io
import json
import os
import signal
import stat
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from contextlib import nullcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import adagrad
from adagrad import _archive, _checkpoint
from conftest import assert_same_bits

# --------------------------------------------------------------------------------------------
# A small trained optimizer, its checkpoint, and what "as it was" means.


def build(seed: int = 0) -> tuple[dict[str, np.ndarray], adagrad.Adagrad]:
    rng = np.random.default_rng(seed)
    params = {"a": rng.standard_normal((5, 3)).astype(np.float32), "b": rng.standard_normal(4)}
    return params, adagrad.Adagrad(params, lr=0.1, lr_decay=0.01)


def train(params: dict[str, np.ndarray], opt: adagrad.Adagrad, steps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        opt.step({name: rng.standard_normal(p.shape).astype(p.dtype) for name, p in params.items()})


def snapshot(params: dict[str, np.ndarray], opt: Any) -> Any:
    """Every bit of the optimizer a load could change, and the identity of its state objects."""
    return (
        {name: p.tobytes() for name, p in params.items()},
        {
            key: ({n: a.tobytes() for n, a in entry.items() if n != "step"}, int(entry["step"]))
            for key, entry in opt.state.items()
        },
        [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups],
        (opt.nonfinite, opt.grad_scale, opt.max_grad_norm),
        id(opt.state),
        [id(group) for group in opt.param_groups],
    )


@pytest.fixture(autouse=True)
def python_sigint_handler() -> Any:
    """Python's own SIGINT handler (KeyboardInterrupt), whatever the process inherited: one started
    in the background by a shell inherits SIGINT ignored, and Python then installs no handler."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def trained(tmp_path: Path) -> tuple[dict[str, np.ndarray], adagrad.Adagrad, Path]:
    """An optimizer two steps in, and a checkpoint (params included) of another at step 5."""
    other_params, other = build(1)
    train(other_params, other, 5, seed=1)
    other.param_groups[0]["lr"] = 0.3
    path = tmp_path / "c.npz"
    other.save(path, params=True)
    params, opt = build()
    train(params, opt, 2, seed=2)
    return params, opt, path


# --------------------------------------------------------------------------------------------
# 1. Interrupted loads.

MEMBERS = ["meta", "steps", "sum_0", "param_0", "sum_1", "param_1"]  # the order load reads them


def interrupt_at(k: int, how: str) -> Callable[..., Any]:
    original = _archive.Archive.read
    calls = []

    def read(self: _archive.Archive, name: str, *args: Any) -> np.ndarray:
        calls.append(name)
        if len(calls) == k + 1:
            if how == "raise":
                raise KeyboardInterrupt
            signal.raise_signal(signal.SIGINT)  # Python raises it at its next check
        return original(self, name, *args)

    return read


@pytest.mark.parametrize("how", ["raise", "sigint"])
@pytest.mark.parametrize("k", range(len(MEMBERS)), ids=MEMBERS)
def test_an_interrupt_while_reading_any_member_leaves_the_optimizer_as_it_was(
    trained: Any, monkeypatch: pytest.MonkeyPatch, k: int, how: str
) -> None:
    params, opt, path = trained
    before = snapshot(params, opt)
    monkeypatch.setattr(_archive.Archive, "read", interrupt_at(k, how))
    with pytest.raises(KeyboardInterrupt):
        opt.load(path)
    assert snapshot(params, opt) == before
    monkeypatch.undo()
    opt.load(path)  # and a load after it is whole
    assert int(opt.state["a"]["step"]) == 5 and opt.param_groups[0]["lr"] == 0.3


@pytest.mark.parametrize("k", range(2), ids=["sum_0", "sum_1"])
def test_an_interrupt_while_building_any_new_state_leaves_the_optimizer_as_it_was(
    trained: Any, monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    from adagrad import _memory

    params, opt, path = trained
    before = snapshot(params, opt)
    original, calls = _memory.full_like_at_same_line_offset, []

    def allocate(*args: Any) -> np.ndarray:
        calls.append(args)
        if len(calls) == k + 1:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(_memory, "full_like_at_same_line_offset", allocate)
    with pytest.raises(KeyboardInterrupt):
        opt.load(path)
    assert len(calls) == k + 1
    assert snapshot(params, opt) == before


@pytest.mark.parametrize("k", range(2), ids=["param_0", "param_1"])
def test_sigint_while_the_new_state_goes_in_comes_after_a_complete_load(
    trained: Any, monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    params, opt, path = trained
    control_params, control = build()
    control.load(path)
    original, calls = _checkpoint.restore_param, []

    def restore(destination: np.ndarray, source: np.ndarray) -> None:
        calls.append(1)
        if len(calls) == k + 1:
            signal.raise_signal(signal.SIGINT)
        original(destination, source)

    monkeypatch.setattr(_checkpoint, "restore_param", restore)
    with pytest.raises(KeyboardInterrupt):
        opt.load(path)
    assert snapshot(params, opt)[:4] == snapshot(control_params, control)[:4]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# A SIGINT can land between open() and the with-statement that would close the file (Python's own
# window for asynchronous exceptions): the file object is then closed by the garbage collector.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_sigint_from_outside_at_any_moment_leaves_the_old_state_or_the_new(tmp_path: Path) -> None:
    """The issue's reproducer: a SIGINT sent by another thread at 40 moments spread over a load."""
    rng = np.random.default_rng(3)
    params = {f"p{i}": rng.standard_normal((100, 100)).astype(np.float32) for i in range(6)}
    opt = adagrad.Adagrad(params, lr=0.1)
    opt.save(tmp_path / "old.npz", params=True)
    train(params, opt, 3, seed=3)
    opt.save(tmp_path / "new.npz", params=True)
    opt.load(tmp_path / "old.npz")
    old = snapshot(params, opt)[:4]
    started = time.perf_counter()
    opt.load(tmp_path / "new.npz")
    took = time.perf_counter() - started
    new = snapshot(params, opt)[:4]
    assert old != new
    outcomes = []
    for delay in np.linspace(0, 1.5 * took, 40):
        opt.load(tmp_path / "old.npz")
        timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
        loaded = False
        try:
            timer.start()
            opt.load(tmp_path / "new.npz")
            loaded = True
            timer.join()
            time.sleep(0.01)  # a SIGINT sent after the load lands here, not in the next iteration
        except KeyboardInterrupt:
            pass
        finally:
            timer.join()
        outcomes.append("loaded" if loaded else "interrupted")
        assert snapshot(params, opt)[:4] in (old, new), f"a mix after a SIGINT {delay * 1e3:.2f} ms into a load"
    assert "interrupted" in outcomes


# --------------------------------------------------------------------------------------------
# 2. Hostile archives.


def npy(array: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, array, version=version, allow_pickle=False)
    return out.getvalue()


def members_of(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def rewrite(path: Path, members: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in members:
            archive.writestr(name, data)


def replace(
    name: str, data: bytes | Callable[[], bytes]
) -> Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]]:
    return lambda members: [(n, (data() if callable(data) else data) if n == name else d) for n, d in members]


def bomb_npy() -> bytes:
    """A float32 .npy of 16 MiB of zeros (16 KiB deflated); made only when a case runs."""
    return npy(np.zeros(4 << 20, np.float32))


def with_meta(change: Callable[[dict[str, Any]], Any]) -> Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]]:
    def spoil(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        meta = json.loads(str(np.load(io.BytesIO(dict(members)["meta.npy"]))[()]))
        change(meta)
        return replace("meta.npy", npy(np.array(json.dumps(meta))))(members)

    return spoil


def nested(depth: int) -> Any:
    value: Any = 0.1
    for _ in range(depth):
        value = [value]
    return value


def spoiled_sum(values: list[float]) -> bytes:
    array = np.ones((5, 3), np.float32)
    array.ravel()[: len(values)] = values
    return npy(array)


ATTACKS = [
    pytest.param(
        replace("sum_0.npy", bomb_npy),
        "member 'sum_0.npy' is 16777344 bytes uncompressed, more than the 10070 it can take",
        id="bomb-state",
    ),
    pytest.param(lambda m: m + [("extra.npy", bomb_npy())], "unexpected member 'extra'", id="bomb-extra"),
    pytest.param(
        lambda m: [("meta.npy", bomb_npy())] + [x for x in m if x[0] != "meta.npy"],
        "member 'meta.npy' is 16777344 bytes uncompressed",
        id="bomb-meta",
    ),
    pytest.param(lambda m: m + [("notes.txt", b"hello")], "member 'notes.txt' is not an .npy array", id="not-npy"),
    pytest.param(
        lambda m: [(n[:-4] if n == "sum_0.npy" else n, d) for n, d in m],
        "member 'sum_0' is not an .npy array",
        id="no-npy-suffix",
    ),
    pytest.param(
        lambda m: m + [("sum_0.npy", spoiled_sum([9.0]))], "member 'sum_0.npy' appears more than once", id="twice"
    ),
    pytest.param(
        replace("meta.npy", npy(np.array("[" * 20_000 + "]" * 20_000))),
        "its 'meta' nests 20000 deep, a checkpoint's at most 8",
        id="nested-json",
    ),
    pytest.param(
        with_meta(lambda meta: meta["param_groups"][0].update(lr=nested(40))),
        "its 'meta' nests 43 deep",
        id="nested-json-in-a-group",
    ),
    pytest.param(
        replace("sum_0.npy", spoiled_sum([-1.0])),
        "state sum of 'a' holds a value below 0; it must be >= 0 (member 'sum_0.npy')",
        id="negative",
    ),
    pytest.param(replace("sum_0.npy", spoiled_sum([-np.inf])), "state sum of 'a' holds a value below 0", id="-inf"),
    pytest.param(
        replace("sum_1.npy", npy(np.array([1.0, np.nan, 1, 1]))),
        "state sum of 'b' holds NaN; it must be >= 0 (member 'sum_1.npy')",
        id="nan",
    ),
    pytest.param(replace("sum_0.npy", spoiled_sum([-0.0, np.nan])), "state sum of 'a' holds NaN", id="nan-after-0"),
    pytest.param(
        replace("sum_0.npy", spoiled_sum([])[:-4]),
        "member 'sum_0.npy' holds 56 bytes of data, its header says 60",
        id="short-data",
    ),
    pytest.param(
        replace("sum_0.npy", spoiled_sum([]) + b"\0"),
        "member 'sum_0.npy' holds 61 bytes of data, its header says 60",
        id="long-data",
    ),
    pytest.param(
        replace("sum_0.npy", npy(np.ones((5, 3), np.float32), version=(3, 0))),
        "member 'sum_0.npy' has .npy format version (3, 0)",
        id="npy-version-3",
    ),
    pytest.param(
        replace("sum_0.npy", b"\x93NUMPY\x01\x00\xff\x00" + b"{" * 255),
        "member 'sum_0.npy' has no valid .npy header",
        id="bad-header",
    ),
    pytest.param(
        replace("steps.npy", npy(np.array([5, -3], np.int64))), "step counts must be from 0 to 2**63 - 2", id="steps"
    ),
]


@pytest.mark.parametrize("spoil, message", ATTACKS)
@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"])
def test_a_hostile_archive_is_refused_naming_the_member_and_nothing_changes(
    trained: Any, spoil: Any, message: str, method: int
) -> None:
    params, opt, path = trained
    with pytest.warns(UserWarning, match="Duplicate name") if "more than once" in message else nullcontext():
        rewrite(path, spoil(members_of(path)), method)
    before = snapshot(params, opt)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as raised:
            opt.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message in str(raised.value)
    assert str(path) in str(raised.value)
    assert peak < 4 << 20, f"{peak} bytes allocated by a refused load"  # a bomb is never inflated
    assert snapshot(params, opt) == before


def test_a_method_numpy_never_writes_is_refused(trained: Any) -> None:
    params, opt, path = trained
    rewrite(path, members_of(path), zipfile.ZIP_BZIP2)
    before = snapshot(params, opt)
    with pytest.raises(ValueError, match=r"member 'meta\.npy' is compressed by method 12, not stored or deflated"):
        opt.load(path)
    assert snapshot(params, opt) == before


def test_an_infinite_sum_of_squares_loads(trained: Any) -> None:
    """+inf is what a 16-bit sum of squares reaches in ordinary training (a float16 grad of 256)."""
    _params, opt, path = trained
    rewrite(path, replace("sum_0.npy", spoiled_sum([np.inf]))(members_of(path)))
    opt.load(path)
    assert np.isposinf(opt.state["a"]["sum"].ravel()[0])


@pytest.mark.parametrize(
    "cls, member, values, message",
    [
        pytest.param(adagrad.AdagradDA, "grad_sum_0", [np.nan], "grad sum of 'a' holds NaN", id="da-grad-sum-nan"),
        pytest.param(adagrad.AdagradDA, "sum_0", [-2.0], "state sum of 'a' holds a value below 0", id="da-sum"),
        pytest.param(adagrad.ProximalAdagrad, "sum_0", [np.nan], "state sum of 'a' holds NaN", id="proximal"),
        pytest.param(adagrad.Ftrl, "n_0", [-2.0], "n of 'a' holds a value below 0", id="ftrl-n"),
        pytest.param(adagrad.Ftrl, "z_0", [np.nan], "z of 'a' holds NaN", id="ftrl-z-nan"),
    ],
)
def test_each_rule_refuses_impossible_sums(
    tmp_path: Path, cls: type, member: str, values: list[float], message: str
) -> None:
    params = {"a": np.ones((5, 3), np.float32)}
    opt = cls(params, lr=0.1)
    path = tmp_path / "c.npz"
    opt.save(path)
    rewrite(path, replace(f"{member}.npy", spoiled_sum(values))(members_of(path)))
    with pytest.raises(ValueError, match=message):
        opt.load(path)


def test_negative_decay_counts_are_refused(tmp_path: Path) -> None:
    params = {"a": np.ones((5, 3), np.float32)}
    opt = adagrad.AdagradDecay(params, lr=0.1)
    path = tmp_path / "c.npz"
    opt.save(path)
    rewrite(path, replace("decay_count_0.npy", npy(np.array([0, 1, -1, 0, 0], np.int64)))(members_of(path)))
    with pytest.raises(ValueError, match="decay count of 'a' holds a value below 0"):
        opt.load(path)


# --------------------------------------------------------------------------------------------
# 3. save: permissions, symlinks, file objects, folders.


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o604, 0o400])
def test_save_keeps_the_permission_bits_of_the_file_it_replaces(tmp_path: Path, mode: int) -> None:
    params, opt = build()
    path = tmp_path / "c.npz"
    opt.save(path)
    os.chmod(path, mode)
    train(params, opt, 1, seed=3)
    opt.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    _, fresh = build()
    fresh.load(path)
    assert int(fresh.state["a"]["step"]) == 1


def test_a_new_checkpoint_gets_the_umask_mode(tmp_path: Path) -> None:
    umask = os.umask(0o027)
    try:
        build()[1].save(tmp_path / "c.npz")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "c.npz").st_mode) == 0o640


def link_to_file(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "real.npz").write_bytes(b"old")
    os.chmod(tmp_path / "real.npz", 0o600)
    (tmp_path / "link.npz").symlink_to("real.npz")
    return tmp_path / "link.npz", tmp_path / "real.npz"


def dangling_link(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "link.npz").symlink_to("real.npz")
    return tmp_path / "link.npz", tmp_path / "real.npz"


def chain_of_links(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "real.npz").write_bytes(b"old")
    (tmp_path / "mid.npz").symlink_to("sub/real.npz")
    (tmp_path / "link.npz").symlink_to("mid.npz")
    return tmp_path / "link.npz", tmp_path / "sub" / "real.npz"


def linked_folder(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to("real")
    return tmp_path / "alias" / "c.npz", tmp_path / "real" / "c.npz"


@pytest.mark.parametrize(
    "setup", [link_to_file, dangling_link, chain_of_links, linked_folder], ids=lambda f: f.__name__
)
def test_save_to_a_symlink_writes_the_file_it_points_to(tmp_path: Path, setup: Any) -> None:
    link, real = setup(tmp_path)
    mode = stat.S_IMODE(os.stat(real).st_mode) if real.exists() else None
    params, opt = build()
    train(params, opt, 3, seed=4)
    opt.save(link)
    assert os.path.islink(link) == (setup is not linked_folder)
    assert not real.is_symlink() and real.is_file()
    if mode is not None:
        assert stat.S_IMODE(os.stat(real).st_mode) == mode
    _, fresh = build()
    fresh.load(real)
    assert int(fresh.state["b"]["step"]) == 3
    assert sorted(p.name for p in real.parent.iterdir() if p.name.endswith(".tmp")) == []


@pytest.mark.parametrize("kind", ["bytesio", "file"])
@pytest.mark.parametrize("with_params", [True, False], ids=["params", "no-params"])
def test_save_and_load_take_file_objects(tmp_path: Path, kind: str, with_params: bool) -> None:
    params, opt = build()
    train(params, opt, 2, seed=5)
    if kind == "bytesio":
        buffer = io.BytesIO()
        opt.save(buffer, params=with_params)
        buffer.seek(0)
        fresh_params, fresh = build(9)
        fresh.load(buffer)
    else:
        with open(tmp_path / "c.npz", "wb") as file:
            opt.save(file, params=with_params)
        fresh_params, fresh = build(9)
        with open(tmp_path / "c.npz", "rb") as file:
            fresh.load(file)
    for key in opt.state:
        assert_same_bits(fresh.state[key]["sum"], opt.state[key]["sum"])
    assert np.array_equal(fresh_params["a"], params["a"]) == with_params


def test_save_into_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"its folder .* does not exist"):
        build()[1].save(tmp_path / "nowhere" / "c.npz")
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    "values, message", [([np.nan], "holds NaN"), ([-1.0], "holds a value below 0")], ids=["nan", "negative"]
)
def test_save_refuses_a_state_load_would_refuse(tmp_path: Path, values: list[float], message: str) -> None:
    _params, opt = build()
    opt.state["a"]["sum"].ravel()[: len(values)] = values
    with pytest.raises(ValueError, match=f"cannot save .*state sum of 'a' {message}"):
        opt.save(tmp_path / "c.npz")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# 4. Hyper-parameters of odd types.


def torch_scalar(value: float, dtype: str) -> Any:
    torch = pytest.importorskip("torch")
    return torch.tensor(value, dtype=getattr(torch, dtype))


ODD_LR = [
    pytest.param(lambda: np.float32(0.1), id="float32"),
    pytest.param(lambda: np.float16(0.1), id="float16"),
    pytest.param(lambda: np.array(0.1), id="0-d-array"),
    pytest.param(lambda: np.array(0.1, np.float32), id="0-d-float32-array"),
    pytest.param(lambda: np.int64(1), id="int64"),
    pytest.param(lambda: np.array(2, np.uint8), id="0-d-uint8-array"),
    pytest.param(lambda: torch_scalar(0.1, "float32"), id="torch-float32"),
    pytest.param(lambda: torch_scalar(0.1, "float64"), id="torch-float64"),
    pytest.param(lambda: Fraction(1, 10), id="fraction"),
    pytest.param(lambda: decimal.Decimal("0.1"), id="decimal"),
]


def plain_of(value: Any) -> float:
    return float(value.item() if hasattr(value, "item") and not isinstance(value, np.generic) else value)


@pytest.mark.parametrize("make", ODD_LR)
@pytest.mark.parametrize("where", ["keyword", "group"])
def test_an_odd_hyper_parameter_type_is_a_plain_number_that_saves(tmp_path: Path, make: Any, where: str) -> None:
    value = make()
    expected = plain_of(value)
    params = {"a": np.ones(4, np.float32)}
    if where == "keyword":
        opt = adagrad.Adagrad(params, lr=value, eps=np.float32(1e-8), initial_accumulator_value=np.array(0.5))
    else:
        odd = {"eps": np.float32(1e-8), "initial_accumulator_value": np.array(0.5), "maximize": np.bool_(False)}
        opt = adagrad.Adagrad([{"params": params, "lr": value, **odd, "seed": np.uint64(3)}])
    group = opt.param_groups[0]
    assert type(group["lr"]) in (int, float) and group["lr"] == expected
    assert all(
        type(v) in (bool, int, float, str, type(None)) for k, v in group.items() if k not in ("params", "param_names")
    )
    grad = {"a": np.full(4, 0.25, np.float32)}
    opt.step(grad if where == "keyword" else [grad])
    opt.save(tmp_path / "c.npz")
    control_params = {"a": np.ones(4, np.float32)}
    control = adagrad.Adagrad(control_params, lr=expected, eps=float(np.float32(1e-8)), initial_accumulator_value=0.5)
    control.step(grad)
    assert_same_bits(params["a"], control_params["a"])  # the number the kernel reads is unchanged
    fresh = adagrad.Adagrad({"a": np.ones(4, np.float32)}, lr=1.0)
    fresh.load(tmp_path / "c.npz")
    assert fresh.param_groups[0]["lr"] == expected


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: np.array([0.1]), id="1-d-array"),
        pytest.param(lambda: [0.1], id="list"),
        pytest.param(lambda: np.array(0.1 + 0j), id="complex-array"),
        pytest.param(lambda: torch_scalar(0.1, "float32").reshape(1), id="torch-1-d"),
    ],
)
def test_a_hyper_parameter_that_is_not_a_number_is_refused_at_construction(make: Any) -> None:
    with pytest.raises(TypeError, match="lr must be a"):
        adagrad.Adagrad({"a": np.ones(4, np.float32)}, lr=make())


def test_values_set_after_construction_save_too(tmp_path: Path) -> None:
    _params, opt = build()
    opt.param_groups[0]["lr"] = np.float32(0.25)  # a scheduler's NumPy scalar
    opt.grad_scale = np.array(4.0)
    assert type(opt.grad_scale) is float
    opt.save(tmp_path / "c.npz")
    _, fresh = build()
    fresh.load(tmp_path / "c.npz")
    assert (fresh.param_groups[0]["lr"], fresh.grad_scale) == (0.25, 4.0)
