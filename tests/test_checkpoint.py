"""Checkpoints: Adagrad.save / Adagrad.load.

1. Resuming from a checkpoint is bitwise the same training as never stopping (every params
   structure, dtype, sparse and row-wise state, with and without the params in the file).
2. load refuses a checkpoint that does not fit (count, keys, shapes, dtypes, version, options,
   damaged files) with a clear error, and then nothing at all has changed.
3. save is atomic: a failure mid-write leaves the previous file and no temporary file; a writer
   process killed (SIGKILL) at random moments always leaves a complete checkpoint on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import adagrad
from adagrad import _checkpoint
from conftest import assert_same_bits

# --------------------------------------------------------------------------------------------
# Models: (params builder, optimizer builder, grads of step k)


Model = tuple[dict[str, np.ndarray], adagrad.Adagrad]


def dense_groups(dtype: type) -> Callable[..., Model]:
    def build(seed: int, cls: type = adagrad.Adagrad) -> Model:
        rng = np.random.default_rng(seed)
        params = {
            "a": rng.standard_normal((5, 3)).astype(dtype),
            "b": np.asfortranarray(rng.standard_normal((4, 2)).astype(dtype)),
            "c": np.array(rng.standard_normal(), dtype=dtype),  # 0-d
            "e": np.zeros(0, dtype),  # empty
        }
        opt = cls(
            [
                {"params": {"a": params["a"], "b": params["b"]}, "lr_decay": 0.3, "initial_accumulator_value": 0.2},
                {"params": [params["c"], params["e"]], "weight_decay": 0.1, "decoupled_weight_decay": True},
            ],
            lr=0.1,
        )
        return params, opt

    return build


def sparse_model(seed: int, cls: type = adagrad.Adagrad) -> Model:
    rng = np.random.default_rng(seed)
    params = {"emb": rng.standard_normal((30, 4)).astype(np.float32), "rw": rng.standard_normal((20, 3))}
    opt = cls(
        [
            {"params": {"emb": params["emb"]}, "duplicates": "sequential"},
            {"params": {"rw": params["rw"]}, "rowwise": True},
        ],
        lr=0.2,
        nonfinite="skip",
        grad_scale=4.0,
    )
    return params, opt


def list_model(seed: int, cls: type = adagrad.Adagrad) -> Model:
    rng = np.random.default_rng(seed)
    params = {"0": rng.standard_normal(9).astype(np.float32), "1": rng.standard_normal(6)}
    return params, cls(list(params.values()), lr=np.float32(0.05), eps=1e-3, eps_inside_sqrt=True)


def grads_like(opt: adagrad.Adagrad, k: int) -> Any:
    """Grads of step k for any of the models above: mirrors the params structure."""
    rng = np.random.default_rng(1000 + k)
    per_group = []
    for group in opt.param_groups:
        grads = []
        for p in group["params"]:
            if group["rowwise"] or (p.ndim == 2 and p.shape[0] >= 20):
                ids = rng.integers(0, p.shape[0], size=7)
                grads.append(adagrad.SparseGrad(ids, rng.standard_normal((7, p.shape[1])).astype(p.dtype)))
            else:
                g = rng.standard_normal(p.shape).astype(p.dtype)
                grads.append(np.asfortranarray(g) if p.flags.f_contiguous and not p.flags.c_contiguous else g)
        names = group.get("param_names")
        per_group.append(dict(zip(names, grads)) if names else grads)
    if not opt._as_groups:
        return per_group[0]
    return per_group


MODELS = [
    pytest.param(dense_groups(np.float32), id="groups-f32"),
    pytest.param(dense_groups(np.float64), id="groups-f64"),
    pytest.param(sparse_model, id="sparse-rowwise-skip-scaled"),
    pytest.param(list_model, id="list"),
]


def assert_same_training_state(
    pa: dict[str, np.ndarray], a: adagrad.Adagrad, pb: dict[str, np.ndarray], b: Any
) -> None:
    for name in pa:
        assert_same_bits(pa[name], pb[name])
    assert list(a.state) == list(b.state)
    for key in a.state:
        assert_same_bits(a.state[key]["sum"], b.state[key]["sum"])
        assert int(a.state[key]["step"]) == int(b.state[key]["step"]), key
    for ga, gb in zip(a.param_groups, b.param_groups):
        assert {k: v for k, v in ga.items() if k != "params"} == {k: v for k, v in gb.items() if k != "params"}
    assert (a.nonfinite, a.grad_scale) == (b.nonfinite, b.grad_scale)


@pytest.mark.parametrize("with_params", [True, False], ids=["params-in-file", "params-restored-by-user"])
@pytest.mark.parametrize("build", MODELS)
def test_resuming_is_bitwise_the_same_as_never_stopping(build: Any, with_params: bool, tmp_path: Path) -> None:
    params, opt = build(0)
    for k in range(1, 4):
        opt.step(grads_like(opt, k))
    opt.param_groups[0]["lr"] = 0.07  # a schedule changed an option: the checkpoint keeps it
    path = tmp_path / "opt.npz"
    opt.save(path, params=with_params)
    saved_params = {name: p.copy() for name, p in params.items()}
    for k in range(4, 8):  # the run that never stopped
        opt.step(grads_like(opt, k))

    resumed_params, resumed = build(1)  # other values everywhere
    if not with_params:
        for name, p in resumed_params.items():
            np.copyto(p, saved_params[name])
    resumed.load(path)
    for k in range(4, 8):
        resumed.step(grads_like(resumed, k))
    assert_same_training_state(params, opt, resumed_params, resumed)


@pytest.mark.parametrize("build", MODELS)
def test_the_reference_optimizer_loads_a_native_checkpoint(build: Any, tmp_path: Path) -> None:
    params, opt = build(0)
    opt.step(grads_like(opt, 1))
    opt.save(tmp_path / "opt.npz", params=True)
    ref_params, ref = build(1, adagrad.reference.Adagrad)
    ref.load(tmp_path / "opt.npz")
    for k in (2, 3):
        opt.step(grads_like(opt, k))
        ref.step(grads_like(ref, k))
    assert_same_training_state(params, opt, ref_params, ref)


def test_the_file_is_a_plain_npz_without_pickles(tmp_path: Path) -> None:
    params, opt = dense_groups(np.float32)(0)
    opt.step(grads_like(opt, 1))
    opt.save(tmp_path / "c.npz", params=True)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as f:
        assert sorted(f.files) == sorted(
            ["meta", "steps"] + [f"sum_{j}" for j in range(4)] + [f"param_{j}" for j in range(4)]
        )
        meta = json.loads(str(f["meta"][()]))
        assert (meta["format"], meta["version"], meta["params"]) == ("adagrad.Adagrad checkpoint", 3, True)
        assert [g["keys"] for g in meta["param_groups"]] == [["a", "b"], [2, 3]]
        assert f["steps"].tolist() == [1, 1, 1, 1]
        assert_same_bits(f["sum_1"], opt.state["b"]["sum"])
        assert_same_bits(f["param_2"], params["c"])
        assert f["param_1"].flags.f_contiguous


TRANSFORMS = ("maximize", "state_dtype", "stochastic_rounding", "seed")


@pytest.mark.parametrize("version", [2, 3])
def test_a_checkpoint_written_before_the_rules_had_the_transforms_loads_with_their_defaults(
    version: int, tmp_path: Path
) -> None:
    """A version 2 file of a composite rule holds no maximize, state_dtype, stochastic_rounding or
    seed: it loads with their defaults and continues bit for bit. A version 3 file must hold them."""
    w = np.linspace(-1, 1, 7)
    opt = adagrad.ProximalAdagrad([w], lr=0.1, l1=0.01)
    opt.step([np.full(7, 0.3)])
    opt.save(tmp_path / "c.npz", params=True)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as f:
        members = {name: f[name] for name in f.files}
    meta = json.loads(str(members["meta"][()]))
    for name in TRANSFORMS:
        del meta["param_groups"][0][name]
    meta["version"] = version
    members["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "old.npz", **members)
    resumed = adagrad.ProximalAdagrad([np.linspace(-1, 1, 7)], lr=0.5, maximize=True)
    if version == 3:
        with pytest.raises(ValueError, match="has no 'maximize'"):
            resumed.load(tmp_path / "old.npz")
        return
    resumed.load(tmp_path / "old.npz")
    assert {name: resumed.param_groups[0][name] for name in TRANSFORMS} == {
        "maximize": False,
        "state_dtype": None,
        "stochastic_rounding": False,
        "seed": 0,
    }
    assert resumed.param_groups[0]["lr"] == 0.1
    opt.step([np.full(7, 0.2)])
    resumed.step([np.full(7, 0.2)])
    assert_same_bits(resumed.param_groups[0]["params"][0], w)


# --------------------------------------------------------------------------------------------
# 2. Refused checkpoints: nothing changes.


def rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrites a checkpoint with `change` applied to its members (meta as a dict)."""
    with np.load(path, allow_pickle=False) as f:
        members: dict[str, Any] = {name: f[name] for name in f.files}
    members["meta"] = json.loads(str(members["meta"][()]))
    change(members)
    if isinstance(members.get("meta"), dict):
        members["meta"] = np.array(json.dumps(members["meta"]))
    with open(path, "wb") as file:
        np.savez(file, **members)


def meta_change(fn: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda m: fn(m["meta"])


def set_in_group(index: int, name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return meta_change(lambda meta: meta["param_groups"][index].__setitem__(name, value))


SPOILED = [
    pytest.param(
        meta_change(lambda m: m.update(version=4)),
        ValueError,
        "version 4 (written by a newer adagrad)",
        id="newer-version",
    ),
    pytest.param(
        meta_change(lambda m: m.update(version=0)),
        ValueError,
        "format version 0; this adagrad reads versions 1, 2",
        id="old-version",
    ),
    pytest.param(
        meta_change(lambda m: m.update(version="1")), ValueError, "format version must be an int", id="version-str"
    ),
    pytest.param(
        meta_change(lambda m: m.update(format="torch")),
        ValueError,
        "is not an adagrad checkpoint (format 'torch'",
        id="format",
    ),
    pytest.param(lambda m: m.pop("meta"), ValueError, "no 'meta' member", id="no-meta"),
    pytest.param(
        lambda m: m.update(meta=np.array("{not json")), ValueError, "its 'meta' is not JSON", id="meta-not-json"
    ),
    pytest.param(lambda m: m.update(meta=np.zeros(3)), ValueError, "no 'meta' member", id="meta-not-str"),
    pytest.param(meta_change(lambda m: m.pop("param_groups")), ValueError, "no valid 'param_groups'", id="no-groups"),
    pytest.param(
        meta_change(lambda m: m["param_groups"].pop()),
        ValueError,
        "has 1 param groups, this optimizer 2",
        id="group-count",
    ),
    pytest.param(
        set_in_group(0, "keys", ["a", "z"]), ValueError, "holds params ['a', 'z'], this optimizer ['a', 'b']", id="keys"
    ),
    pytest.param(set_in_group(1, "keys", [2]), ValueError, "holds params [2], this optimizer [2, 3]", id="key-count"),
    pytest.param(set_in_group(0, "lr", -1.0), ValueError, "lr must be a finite number >= 0", id="lr-negative"),
    pytest.param(set_in_group(0, "lr", "0.1"), TypeError, "lr must be a real number, got str", id="lr-str"),
    pytest.param(set_in_group(1, "maximize", 1), TypeError, "maximize must be a bool", id="maximize-int"),
    pytest.param(
        set_in_group(0, "rowwise", True), ValueError, "has rowwise=True, this optimizer rowwise=False", id="rowwise"
    ),
    pytest.param(
        set_in_group(0, "duplicates", "max"), ValueError, "duplicates must be 'sum' or 'sequential'", id="duplicates"
    ),
    pytest.param(meta_change(lambda m: m["param_groups"][0].pop("eps")), ValueError, "has no 'eps'", id="no-eps"),
    pytest.param(meta_change(lambda m: m.update(nonfinite="ignore")), ValueError, "nonfinite must be", id="nonfinite"),
    pytest.param(
        meta_change(lambda m: m.update(grad_scale=-1.0)),
        ValueError,
        "grad_scale must be a finite number > 0",
        id="grad-scale",
    ),
    pytest.param(
        meta_change(lambda m: m.update(params=True)), ValueError, "checkpoint has no param 'a'", id="params-claimed"
    ),
    pytest.param(lambda m: m.pop("sum_1"), ValueError, "checkpoint has no state sum of 'b'", id="missing-sum"),
    pytest.param(lambda m: m.update(sum_9=np.zeros(2)), ValueError, "unexpected member 'sum_9'", id="extra-member"),
    pytest.param(
        lambda m: m.update(sum_0=m["sum_0"].T.copy()),
        ValueError,
        "state sum of 'a' is float32[3, 5], this optimizer's is float32[5, 3]",
        id="sum-shape",
    ),
    pytest.param(
        lambda m: m.update(sum_0=m["sum_0"].astype(np.float64)),
        ValueError,
        "state sum of 'a' is float64[5, 3]",
        id="sum-dtype",
    ),
    pytest.param(
        lambda m: m.update(sum_2=m["sum_2"].reshape(1)),
        ValueError,
        "state sum of params[2] is float32[1], this optimizer's is float32[]",
        id="0d-vs-1d",
    ),
    pytest.param(
        lambda m: m.update(steps=m["steps"].astype(np.int32)),
        ValueError,
        "step counts are int32[4], expected int64[4]",
        id="steps-dtype",
    ),
    pytest.param(
        lambda m: m.update(steps=m["steps"][:3]),
        ValueError,
        "step counts are int64[3], expected int64[4]",
        id="steps-count",
    ),
    pytest.param(
        lambda m: m.update(steps=np.array([1, -1, 1, 1])),
        ValueError,
        "step counts must be from 0 to 2**63 - 2",
        id="steps-negative",
    ),
    pytest.param(
        lambda m: m.update(steps=np.array([1, 2**63 - 1, 1, 1])),
        ValueError,
        "step counts must be from 0",
        id="steps-huge",
    ),
]


def snapshot(params: dict[str, np.ndarray], opt: adagrad.Adagrad) -> Any:
    return (
        [(k, p.tobytes(order="A")) for k, p in params.items()],
        [(k, s["sum"].tobytes(), int(s["step"])) for k, s in opt.state.items()],
        repr([{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]),
        (opt.nonfinite, opt.grad_scale),
    )


@pytest.fixture
def trained(tmp_path: Path) -> tuple[dict[str, np.ndarray], adagrad.Adagrad, Path]:
    """A saved checkpoint of a stepped optimizer; the optimizer then moved on (so a load would show)."""
    params, opt = dense_groups(np.float32)(0)
    opt.step(grads_like(opt, 1))
    path = tmp_path / "opt.npz"
    opt.save(path)
    opt.step(grads_like(opt, 2))
    return params, opt, path


@pytest.mark.parametrize("spoil, error, message", SPOILED)
def test_a_checkpoint_that_does_not_fit_is_refused_and_nothing_changes(
    trained: tuple[dict[str, np.ndarray], adagrad.Adagrad, Path], spoil: Any, error: type, message: str
) -> None:
    params, opt, path = trained
    rewrite(path, spoil)
    before = snapshot(params, opt)
    with pytest.raises(error) as raised:
        opt.load(path)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)
    assert snapshot(params, opt) == before


def damage_truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def damage_flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 64] = bytes(64)  # inside the first arrays
    path.write_bytes(bytes(data))


def damage_npy(path: Path) -> None:
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


def damage_pickle(path: Path) -> None:
    with open(path, "wb") as f:
        np.savez(f, meta=np.array([{"format": "adagrad.Adagrad checkpoint"}], dtype=object))


DAMAGED = [
    pytest.param(damage_truncate, "not a readable adagrad checkpoint", id="truncated"),
    pytest.param(lambda p: p.write_bytes(b""), "not a readable adagrad checkpoint", id="empty"),
    pytest.param(lambda p: p.write_bytes(os.urandom(3000)), "not a readable adagrad checkpoint", id="random-bytes"),
    pytest.param(damage_npy, "holds a single array, not an .npz archive", id="npy"),
    pytest.param(damage_pickle, r"holds pickled \(object\) data, which a checkpoint never does", id="pickled-object"),
    pytest.param(lambda p: p.write_text("{}"), "not a readable adagrad checkpoint", id="text"),
]


@pytest.mark.parametrize("damage, message", DAMAGED)
def test_a_damaged_file_is_a_clear_value_error_and_nothing_changes(
    trained: tuple[dict[str, np.ndarray], adagrad.Adagrad, Path], damage: Any, message: str
) -> None:
    params, opt, path = trained
    damage(path)
    before = snapshot(params, opt)
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        opt.load(path)
    assert snapshot(params, opt) == before


def test_loading_into_a_different_optimizer_is_refused(tmp_path: Path) -> None:
    _, opt = dense_groups(np.float32)(0)
    opt.save(tmp_path / "a.npz")
    params, other = list_model(0)
    before = snapshot(params, other)
    with pytest.raises(ValueError, match="has 2 param groups, this optimizer 1"):
        other.load(tmp_path / "a.npz")
    _, f64 = dense_groups(np.float64)(0)
    with pytest.raises(ValueError, match=r"state sum of 'a' is float32\[5, 3\], this optimizer's is float64\[5, 3\]"):
        f64.load(tmp_path / "a.npz")
    assert snapshot(params, other) == before


def test_a_read_only_param_is_refused_before_anything_is_restored(tmp_path: Path) -> None:
    params, opt = dense_groups(np.float32)(0)
    opt.save(tmp_path / "a.npz", params=True)
    opt.step(grads_like(opt, 1))
    params["c"].flags.writeable = False
    before = snapshot(params, opt)
    with pytest.raises(ValueError, match="read-only"):
        opt.load(tmp_path / "a.npz")
    assert snapshot(params, opt) == before


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    _, opt = list_model(0)
    with pytest.raises(FileNotFoundError):
        opt.load(tmp_path / "nothing.npz")


# --------------------------------------------------------------------------------------------
# 3. Atomic writes.


def test_save_leaves_no_temporary_file_and_replaces_the_old_one(tmp_path: Path) -> None:
    _, opt = list_model(0)
    path = tmp_path / "opt.npz"
    opt.save(path)
    opt.step(grads_like(opt, 1))
    opt.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opt.npz"]
    _, fresh = list_model(0)
    fresh.load(path)
    assert int(fresh.state[0]["step"]) == 1


def test_a_failure_while_writing_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, opt = list_model(0)
    path = tmp_path / "opt.npz"
    opt.save(path)
    good = path.read_bytes()

    def failing_savez(file: Any, **arrays: Any) -> None:
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(_checkpoint.np, "savez", failing_savez)
    opt.step(grads_like(opt, 1))
    with pytest.raises(OSError, match="disk full"):
        opt.save(path)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["opt.npz"]


def test_save_into_a_missing_folder_fails_cleanly(tmp_path: Path) -> None:
    """The error names the path asked for, not the hidden temporary file beside it."""
    _, opt = list_model(0)
    target = tmp_path / "no" / "opt.npz"
    with pytest.raises(FileNotFoundError, match=f"cannot write a checkpoint to {target}") as caught:
        opt.save(target)
    assert caught.value.filename == str(target) and ".tmp" not in str(caught.value)
    assert f"its folder {tmp_path / 'no'} does not exist (save creates none" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_save_params_flag_must_be_a_bool(bad: Any, tmp_path: Path) -> None:
    _, opt = list_model(0)
    with pytest.raises(TypeError, match="params must be a bool"):
        opt.save(tmp_path / "x.npz", params=bad)
    assert list(tmp_path.iterdir()) == []


# The writer process of the kill test. It resumes from the checkpoint on disk, then steps and saves
# (with the params) in a loop until it is killed. KILL_MODEL is exec'd here too, so that the test can
# recompute the uninterrupted trajectory.
KILL_MODEL = textwrap.dedent(
    """
    import numpy as np
    import adagrad

    def make():
        params = {"w": np.zeros(200_000, np.float32), "b": np.zeros(50_000, np.float64)}
        opt = adagrad.Adagrad(
            [{"params": {"w": params["w"]}, "lr_decay": 0.01}, {"params": {"b": params["b"]}, "lr": 0.05}], lr=0.1
        )
        return params, opt

    BASE = np.random.default_rng(0).standard_normal(250_000)

    def grads(k):
        g = np.roll(BASE, 7 * k) * (1 + k % 5)
        return [{"w": g[:200_000].astype(np.float32)}, {"b": g[200_000:]}]
    """
)
KILL_WRITER = KILL_MODEL + textwrap.dedent(
    """
    import sys
    path = sys.argv[1]
    params, opt = make()
    opt.load(path)
    k = int(opt.state["w"]["step"])
    print("ready", k, flush=True)
    while True:
        k += 1
        opt.step(grads(k))
        opt.save(path, params=True)
    """
)
KILLS = 12


def digest(params: dict[str, np.ndarray], opt: adagrad.Adagrad) -> str:
    h = hashlib.sha256()
    for name in sorted(params):
        h.update(params[name].tobytes())
        h.update(opt.state[name]["sum"].tobytes())
        h.update(opt.state[name]["step"].tobytes())
    return h.hexdigest()


def test_a_writer_killed_at_random_moments_always_leaves_a_complete_checkpoint(tmp_path: Path) -> None:
    model: dict[str, Any] = {}
    exec(compile(KILL_MODEL, "kill_model", "exec"), model)
    path = tmp_path / "ckpt.npz"
    params, opt = model["make"]()
    opt.save(path, params=True)  # step 0: a checkpoint exists before the first writer starts

    trajectory = [digest(params, opt)]  # digest of the uninterrupted run after k steps

    def expected(k: int) -> str:
        while len(trajectory) <= k:
            opt.step(model["grads"](len(trajectory)))
            trajectory.append(digest(params, opt))
        return trajectory[k]

    rng = np.random.default_rng(2024)  # the kill moments (the writer's speed still varies)
    loads, seen, interrupted = 0, [0], 0
    start = time.monotonic()
    for _ in range(KILLS):
        writer = subprocess.Popen(
            [sys.executable, "-c", KILL_WRITER, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert writer.stdout is not None
        ready = writer.stdout.readline().split()
        assert ready and ready[0] == "ready", writer.communicate()[1]
        loads += 1  # the writer loaded what the previous one left
        assert int(ready[1]) == seen[-1]
        time.sleep(rng.uniform(0.0, 0.06))
        os.kill(writer.pid, signal.SIGKILL)
        writer.communicate()
        assert writer.returncode == -signal.SIGKILL
        leftovers = [p for p in tmp_path.iterdir() if p.name != "ckpt.npz"]
        interrupted += len(leftovers)  # a kill between creating the temporary file and the rename
        for p in leftovers:
            assert p.name.startswith(".ckpt.npz.") and p.name.endswith(".tmp")
            p.unlink()

        got_params, got = model["make"]()
        got.load(path)  # must always load
        loads += 1
        k = int(got.state["w"]["step"])
        assert k >= seen[-1]  # never an older checkpoint than the last one seen
        assert int(got.state["b"]["step"]) == k
        assert digest(got_params, got) == expected(k), f"checkpoint of step {k} is not the state after {k} steps"
        seen.append(k)
    elapsed = time.monotonic() - start
    print(
        f"\nkill test: {KILLS} kills, {loads} loads (all complete), {interrupted} kills mid-write, "
        f"checkpoints reached step {seen[-1]}, {elapsed:.1f} s"
    )
    assert seen[-1] > 0  # the writers made progress
    assert interrupted >= KILLS // 4  # many kills landed while a checkpoint was being written
