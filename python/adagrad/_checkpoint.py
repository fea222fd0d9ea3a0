"""Checkpoint files of the NumPy optimizers: ``save`` (atomic) and ``load`` (all or nothing).

A checkpoint is a NumPy ``.npz`` archive (a zip of ``.npy`` files, no pickles) with the members

- ``meta``: a 0-d str array, JSON: format name (one per optimizer class: "adagrad.Adagrad
  checkpoint", ...) and version, the adagrad version that wrote it, the step options (Adagrad:
  ``nonfinite``, ``grad_scale``, the clip options), whether params are included, and per param
  group its hyper-parameters and param keys (flat indices or names);
- ``steps``: int64, the step count of every param, in the order of the groups and their params;
- ``<state>_<j>``: each state array of the j-th param (same order), by the optimizer's state
  names: ``sum_<j>`` for Adagrad and Proximal Adagrad, ``grad_sum_<j>`` and ``sum_<j>`` for
  Adagrad-DA;
- ``param_<j>``: the j-th param itself, only when saved with ``params=True``.

The optimizer describes itself (its option, state and format names, its checks): this module
imports none of them. Reading (:func:`read`) needs nothing native: the reference optimizers use it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .optim import Optimizer

# 2: the clip options (a version 1 file has none: no clipping); 3: every rule's groups hold the
# transforms (maximize, state_dtype, stochastic_rounding, seed): an older file's group lacking one
# loads with its default.
VERSION = 3
READS = (1, 2, 3)
_CLIP_DEFAULTS: dict[str, Any] = {
    "max_grad_norm": None,
    "norm_type": 2.0,
    "clip_norm_per_tensor": None,
    "clip_value": None,
}
_STEP_LIMIT = 2**63 - 2  # what the native step accepts as a count of updates done


def _json_value(value: Any) -> Any:
    """A hyper-parameter as JSON keeps it exactly: bools, ints, floats (shortest repr), strs."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)  # the double the native code reads; JSON round-trips it exactly
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"cannot save hyper-parameter value {value!r} of type {type(value).__name__}")


def _step_options(opt: Optimizer, saved: dict[str, Any]) -> dict[str, Any]:
    """The optimizer's step options as saved: a version 1 file has no clip options (none: no clip)."""
    return {name: saved.get(name, _CLIP_DEFAULTS.get(name)) for name in opt.STEP_OPTION_NAMES}


def _step_option_json(name: str, value: Any) -> Any:
    # JSON has no infinity: the inf norm is saved as "inf", which norm_type also takes.
    if name == "norm_type" and (value == "inf" or float(value) == float("inf")):
        return "inf"
    return _json_value(value)


def _meta(opt: Optimizer, params: bool) -> dict[str, Any]:
    from ._core import __version__  # here, not at the top: reading a checkpoint needs nothing native

    return {
        "format": opt.CHECKPOINT_FORMAT,
        "version": VERSION,
        "adagrad_version": __version__,
        "params": params,
        **{name: _step_option_json(name, getattr(opt, name)) for name in opt.STEP_OPTION_NAMES},
        "param_groups": [
            {**{name: _json_value(group[name]) for name in opt.GROUP_OPTION_NAMES}, "keys": list(layout.keys)}
            for group, layout in zip(opt.param_groups, opt._layouts)
        ],
    }


def save(opt: Optimizer, path: Any, *, params: bool = False) -> None:
    if not isinstance(params, (bool, np.bool_)):
        raise TypeError(f"params must be a bool, got {type(params).__name__}")
    opt._check_step_options({name: getattr(opt, name) for name in opt.STEP_OPTION_NAMES})  # what load() would refuse
    path = os.fsdecode(os.fspath(path))
    if not path:
        raise ValueError("the checkpoint path is empty")
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "the checkpoint path is a folder", path)
    arrays: dict[str, np.ndarray] = {
        "meta": np.array(json.dumps(_meta(opt, bool(params)), allow_nan=False)),
        "steps": np.concatenate([layout.steps for layout in opt._layouts]).astype(np.int64),
    }
    j = 0
    for group, layout in zip(opt.param_groups, opt._layouts):
        for i, param in enumerate(group["params"]):
            for name in opt.STATE_NAMES:
                arrays[f"{name}_{j}"] = layout.states[name][i]
            if params:
                arrays[f"param_{j}"] = param
            j += 1
    _write_atomically(path, arrays)


def _write_atomically(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Temporary file in the destination's folder, flush + fsync, rename over path, fsync folder."""
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(8)}.tmp")
    # O_EXCL: never follow or reuse an existing file; 0o666 minus the umask, like open(path, "wb").
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as error:  # name the path asked for, not the hidden temporary file
        raise type(error)(error.errno, f"cannot write a checkpoint to {path}: {error.strerror}", path) from None
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **arrays)  # type: ignore[arg-type]  # numpy's stub types the keywords as allow_pickle's bool
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    """Makes the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the data itself is already synced
    finally:
        os.close(fd)


class _Invalid(ValueError):
    pass


def _read(path: str) -> dict[str, np.ndarray]:
    """Every member of the archive, read into memory; any damage is a ValueError naming the file."""
    with open(path, "rb") as file:  # a missing or unreadable file is an OSError, as for open()
        try:
            archive = np.load(file, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise _Invalid("it holds a single array, not an .npz archive")
            with archive:
                return {name: archive[name] for name in archive.files}
        except MemoryError:
            raise
        except _Invalid as error:
            raise ValueError(f"{path} is not an adagrad checkpoint: {error}") from None
        except Exception as error:
            # Not a zip, a truncated or corrupted one, a bad .npy header, a pickled object refused, ...
            # NumPy's own text for the last suggests allow_pickle, which would not make it a checkpoint.
            reason = (
                "it holds pickled (object) data, which a checkpoint never does"
                if "allow_pickle" in str(error)
                else f"{type(error).__name__}: {error}"
            )
            raise ValueError(f"{path} is not a readable adagrad checkpoint: {reason}") from None


def _meta_of(members: dict[str, np.ndarray], path: str, format_name: str) -> dict[str, Any]:
    raw = members.get("meta")
    if raw is None or raw.shape != () or raw.dtype.kind != "U":
        raise ValueError(f"{path} is not an adagrad checkpoint: no 'meta' member")
    try:
        meta = json.loads(str(raw[()]))
    except ValueError as error:
        raise ValueError(f"{path} is not an adagrad checkpoint: its 'meta' is not JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != format_name:
        raise ValueError(
            f"{path} is not an adagrad checkpoint "
            f"(format {meta.get('format') if isinstance(meta, dict) else None!r}, expected {format_name!r})"
        )
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{path}: checkpoint format version must be an int, got {version!r}")
    if version not in READS:
        newer = " (written by a newer adagrad)" if version > VERSION else ""
        raise ValueError(
            f"{path}: checkpoint format version {version}{newer}; this adagrad reads versions "
            + ", ".join(map(str, READS))
        )
    for name, kind in (("params", bool), ("param_groups", list), ("nonfinite", str)):
        if not isinstance(meta.get(name), kind):
            raise ValueError(f"{path}: checkpoint 'meta' has no valid {name!r}")
    return meta


def _check_array(what: str, saved: np.ndarray | None, current: np.ndarray, path: str) -> np.ndarray:
    if saved is None:
        raise ValueError(f"{path}: checkpoint has no {what}")
    if current.dtype.name == "bfloat16" and saved.dtype == np.dtype("V2"):
        saved = saved.view(current.dtype)  # NumPy's .npy header has no name for ml_dtypes' dtype: raw bits
    if saved.dtype != current.dtype or saved.shape != current.shape:
        raise ValueError(
            f"{path}: checkpoint {what} is {saved.dtype}{list(saved.shape)}, "
            f"this optimizer's is {current.dtype}{list(current.shape)}"
        )
    return saved


def read(path: Any, format_name: str) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """(the path as a str, the checked 'meta', every member) of a checkpoint of `format_name`."""
    path = os.fsdecode(os.fspath(path))
    members = _read(path)
    return path, _meta_of(members, path, format_name), members


def load(opt: Optimizer, path: Any) -> None:
    path, meta, members = read(path, opt.CHECKPOINT_FORMAT)

    # 1. Check everything; nothing is modified before all checks pass.
    saved_groups = meta["param_groups"]
    if len(saved_groups) != len(opt.param_groups):
        raise ValueError(
            f"{path}: checkpoint has {len(saved_groups)} param groups, this optimizer {len(opt.param_groups)}"
        )
    step_options = _step_options(opt, meta)
    try:
        opt._check_step_options(step_options)
    except (TypeError, ValueError) as error:
        raise type(error)(f"{path}: checkpoint {error}") from None
    expected = {"meta", "steps"}
    restore: list[tuple[np.ndarray, np.ndarray]] = []  # (destination, source)
    options: list[dict[str, Any]] = []
    n_params = sum(len(layout.keys) for layout in opt._layouts)
    steps = members.get("steps")
    if steps is None or steps.dtype != np.int64 or steps.shape != (n_params,):
        shown = "none" if steps is None else f"{steps.dtype}{list(steps.shape)}"
        raise ValueError(f"{path}: checkpoint step counts are {shown}, expected int64[{n_params}]")
    if steps.size and (steps.min() < 0 or steps.max() > _STEP_LIMIT):
        raise ValueError(f"{path}: checkpoint step counts must be from 0 to 2**63 - 2")
    j = 0
    for index, (saved, group, layout) in enumerate(zip(saved_groups, opt.param_groups, opt._layouts)):
        where = f"{path}: checkpoint param group {index}: "
        if not isinstance(saved, dict) or saved.get("keys") != layout.keys:
            held = saved.get("keys") if isinstance(saved, dict) else saved
            raise ValueError(f"{where}holds params {held!r}, this optimizer {layout.keys!r}")
        if meta["version"] < 3:
            saved = {**opt.TRANSFORM_DEFAULTS, **saved}
        missing = [name for name in opt.GROUP_OPTION_NAMES if name not in saved]
        if missing:
            raise ValueError(f"{where}has no {missing[0]!r}")
        chosen = {name: saved[name] for name in opt.GROUP_OPTION_NAMES}
        opt._check_group({**group, **chosen}, where)
        for fixed in opt.SHAPE_OPTION_NAMES:
            if chosen[fixed] != group[fixed]:
                raise ValueError(f"{where}has {fixed}={chosen[fixed]}, this optimizer {fixed}={group[fixed]}")
        options.append(chosen)
        for i, param in enumerate(group["params"]):
            name = layout.labels[i]
            entries = [
                (
                    f"{state}_{j}",
                    f"{'state sum' if state == 'sum' else state.replace('_', ' ')} of {name}",
                    layout.states[state][i],
                )
                for state in opt.STATE_NAMES
            ]
            if meta["params"]:
                entries.append((f"param_{j}", f"param {name}", param))
            for member, what, destination in entries:
                expected.add(member)
                restore.append((destination, _check_array(what, members.get(member), destination, path)))
            j += 1
    unknown = sorted(set(members) - expected)
    if unknown:
        raise ValueError(f"{path}: checkpoint has unexpected member {unknown[0]!r}")
    for destination, _ in restore:
        if not destination.flags.writeable:
            raise ValueError(f"{path}: cannot restore into a read-only array of this optimizer")

    # 2. Apply: same dtypes and shapes, nothing left that can fail.
    for destination, source in restore:
        np.copyto(destination, source)
    j = 0
    for group, layout, chosen in zip(opt.param_groups, opt._layouts, options):
        group.update(chosen)
        layout.steps[...] = steps[j : j + len(layout.keys)]
        j += len(layout.keys)
    for name, value in step_options.items():
        setattr(opt, name, value)
