"""Checkpoint files of the NumPy optimizers: ``save`` (atomic) and ``load`` (all or nothing).

A checkpoint is a NumPy ``.npz`` archive (a zip of ``.npy`` files, no pickles) with the members

- ``meta``: a 0-d str array, JSON: format name (one per optimizer class: "adagrad.Adagrad
  checkpoint", ...) and version, the adagrad version that wrote it, the step options (Adagrad:
  ``nonfinite``, ``grad_scale``, the clip options), whether params are included, and per param
  group its hyper-parameters and param keys (flat indices or names);
- ``steps``: int64, the step count of every param, in the order of the groups and their params;
- ``<state>_<j>``: each state array of the j-th param (same order), by the optimizer's state
  names: ``sum_<j>`` for Adagrad and Proximal Adagrad, ``grad_sum_<j>`` and ``sum_<j>`` for
  Adagrad-DA, ``n_<j>`` and ``z_<j>`` for FTRL-Proximal;
- ``param_<j>``: the j-th param itself, only when saved with ``params=True``.

The optimizer describes itself (its option, state and format names, its checks): this module
imports none of them. Reading (:func:`read`) needs nothing native: the reference optimizers use it.

Reading treats the file as hostile (:mod:`adagrad._archive`): member names, sizes (before any
decompression, against bounds derived from the optimizer's shapes), headers, the meta's JSON depth
and the states' values are checked. Loading builds the new state completely beside the old one and
swaps it in at once (:func:`load`); saving keeps the target's mode and follows a symlink
(:func:`_write_atomically`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

import numpy as np

# Only inside functions: reading a checkpoint (the reference optimizers' load) imports nothing of
# the package at module level.
if TYPE_CHECKING:
    from . import _archive
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
    from ._plain import is_plain, plain

    value = plain(value)  # a value set on a group after construction (a scheduler's numpy scalar)
    if not is_plain(value):
        raise TypeError(f"cannot save hyper-parameter value {value!r} of type {type(value).__name__}")
    return value


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


def save(opt: Optimizer, target: Any, *, params: bool = False) -> None:
    if not isinstance(params, (bool, np.bool_)):
        raise TypeError(f"params must be a bool, got {type(params).__name__}")
    from ._replaced_state import adopt_replaced_state

    if opt.state.replaced:  # arrays put in opt.state by hand are what is saved
        adopt_replaced_state(opt)
    opt._check_step_options({name: getattr(opt, name) for name in opt.STEP_OPTION_NAMES})  # what load() would refuse
    if not hasattr(target, "write"):
        target = os.fsdecode(os.fspath(target))
        if not target:
            raise ValueError("the checkpoint path is empty")
        if os.path.isdir(target):
            raise IsADirectoryError(errno.EISDIR, "the checkpoint path is a folder", target)
    arrays: dict[str, np.ndarray] = {
        "meta": np.array(json.dumps(_meta(opt, bool(params)), allow_nan=False)),
        "steps": np.concatenate([layout.steps for layout in opt._layouts]).astype(np.int64),
    }
    for member, what, array in _members(opt, bool(params)):
        if not member.startswith("param_"):
            _check_values(f"cannot save {target}: ", what, member, array, opt.SIGNED_STATE_NAMES)  # as load()
        arrays[member] = array
    if isinstance(target, str):
        _write_atomically(target, arrays)
    else:
        np.savez(target, **arrays)  # type: ignore[arg-type]  # numpy's stub types the keywords as allow_pickle's bool


def _write_atomically(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Temporary file in the destination's folder, flush + fsync, rename over path, fsync folder.

    A symlink at `path` is followed: the file it points to is replaced (the link stays). An
    existing file keeps its permission bits; a new one gets 0o666 minus the umask."""
    real = os.path.realpath(path)
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        given_folder = os.path.dirname(os.path.abspath(path))
        raise FileNotFoundError(
            errno.ENOENT,
            f"cannot write a checkpoint to {path}: its folder {given_folder} does not exist "
            "(save creates none: os.makedirs(folder, exist_ok=True) first)",
            path,
        )
    try:
        mode: int | None = stat.S_IMODE(os.stat(real).st_mode)
    except FileNotFoundError:
        mode = None
    temporary = os.path.join(folder, f".{os.path.basename(real)}.{secrets.token_hex(8)}.tmp")
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
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, real)
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


# -- reading ------------------------------------------------------------------------------------

Expected = Callable[[dict[str, Any]], dict[str, tuple[str, np.ndarray]]]


def _what(state: str, label: str) -> str:
    return f"{'state sum' if state == 'sum' else state.replace('_', ' ')} of {label}"


def _members(opt: Any, params: bool) -> Iterator[tuple[str, str, np.ndarray]]:
    """(member, what it is, the optimizer's array) of each state, and each param with `params`."""
    j = 0
    for group, layout in zip(opt.param_groups, opt._layouts):
        for i, param in enumerate(group["params"]):
            for state in opt.STATE_NAMES:
                yield f"{state}_{j}", _what(state, layout.labels[i]), layout.states[state][i]
            if params:
                yield f"param_{j}", f"param {layout.labels[i]}", param
            j += 1


def expected_members(opt: Any, meta: dict[str, Any]) -> dict[str, tuple[str, np.ndarray]]:
    """What a checkpoint of `opt` holds besides ``meta``: member -> (what it is, an array like it)."""
    count = sum(len(layout.keys) for layout in opt._layouts)
    expected = {"steps": ("step counts", np.zeros(count, np.int64))}
    expected.update((member, (what, array)) for member, what, array in _members(opt, bool(meta["params"])))
    return expected


def meta_limit(opt: Any) -> int:
    """The most bytes the ``meta`` member of a checkpoint of `opt` can take: 4 per character of
    its JSON (NumPy's str), at most 2 KiB a group, 12 a character of a key (``\\uXXXX`` pairs)."""
    from . import _archive

    keys = [key for layout in opt._layouts for key in layout.keys]
    characters = 65536 + 2048 * len(opt._layouts) + sum(12 * len(str(key)) + 16 for key in keys)
    return _archive.bound(4 * characters)


def _check_values(
    where: str, what: str, member: str, array: np.ndarray, signed: tuple[str, ...], note: str = ""
) -> None:
    """A ValueError unless the values of a state can come from training: a sum of squares is >= 0
    (+inf included: a 16-bit one overflows), a signed state (a sum of grads: the optimizer's
    SIGNED_STATE_NAMES) is not NaN, a decay count is >= 0."""
    state = member.rsplit("_", 1)[0]
    if state in signed:
        if np.isnan(array).any():
            raise ValueError(f"{where}{what} holds NaN{note}")
    elif not np.all(array >= 0):
        kind = "NaN" if array.dtype.kind != "i" and np.isnan(array).any() else "a value below 0"
        raise ValueError(f"{where}{what} holds {kind}; it must be >= 0{note}")


def _name(source: Any) -> str:
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        return name if isinstance(name, str) else f"<{type(source).__name__}>"
    return os.fsdecode(os.fspath(source))


@contextlib.contextmanager
def _opened(source: Any, name: str) -> Iterator[IO[bytes]]:
    if hasattr(source, "read"):
        yield source
    else:
        with open(name, "rb") as file:  # a missing or unreadable file is an OSError, as for open()
            yield file


def _accept(name: str, member: str, what: str, like: np.ndarray) -> _archive.Accept:
    def accept(dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
        if like.dtype.name == "bfloat16" and dtype == np.dtype("V2"):
            dtype = like.dtype  # NumPy's .npy header has no name for ml_dtypes' dtype: raw bits
        if dtype != like.dtype or shape != like.shape:
            saved, current = f"{dtype}{list(shape)}", f"{like.dtype}{list(like.shape)}"
            if what == "step counts":
                raise ValueError(f"{name}: checkpoint step counts are {saved}, expected {current} (member 'steps.npy')")
            raise ValueError(
                f"{name}: checkpoint {what} is {saved}, this optimizer's is {current} (member '{member}.npy')"
            )

    return accept


def _meta_accept(name: str) -> _archive.Accept:
    def accept(dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
        if dtype.kind != "U" or dtype.itemsize == 0 or shape != ():
            raise ValueError(f"{name} is not an adagrad checkpoint: no 'meta' member")

    return accept


def read(
    source: Any, format_name: str, limit: int, expected: Expected, signed: tuple[str, ...] = ()
) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """(the source's name, the checked 'meta', every other member, checked) of a checkpoint.

    `limit`: the most bytes ``meta`` may take; `expected(meta)` checks the meta against the
    optimizer and says which members must follow: member -> (what it is, an array like it). A
    member's size is checked before it is decompressed, its header before its data is read. `signed`:
    the states whose values may be below 0."""
    from . import _archive

    name = _name(source)
    with _opened(source, name) as file:
        try:
            with _archive.Archive(file) as archive:
                if "meta" not in archive.members:
                    raise ValueError(f"{name} is not an adagrad checkpoint: no 'meta' member")
                raw = archive.read("meta", limit, _meta_accept(name))
                meta = _meta_of(_archive.parse_json(str(raw[()])), name, format_name)
                wanted = expected(meta)
                unknown = sorted(set(archive.members) - set(wanted) - {"meta"})
                if unknown:
                    raise ValueError(f"{name}: checkpoint has unexpected member {unknown[0]!r}")
                for member, (what, like) in wanted.items():
                    if member not in archive.members:
                        if member == "steps":
                            raise ValueError(
                                f"{name}: checkpoint step counts are none, expected int64{list(like.shape)}"
                            )
                        raise ValueError(f"{name}: checkpoint has no {what} (member '{member}.npy')")
                for member, (_, like) in wanted.items():  # every size before any decompression
                    archive.check_size(member, _archive.bound(like.nbytes))
                members: dict[str, np.ndarray] = {}
                for member, (what, like) in wanted.items():
                    array = archive.read(member, _archive.bound(like.nbytes), _accept(name, member, what, like))
                    if array.dtype != like.dtype:
                        array = array.view(like.dtype)  # bfloat16 read as raw bits
                    if member.split("_")[0] not in ("steps", "param"):
                        note = f" (member '{member}.npy')"
                        _check_values(f"{name}: checkpoint ", what, member, array, signed, note)
                    members[member] = array
        except _archive.Invalid as error:
            raise ValueError(f"{name} is not a readable adagrad checkpoint: {error}") from None
    return name, meta, members


def _meta_of(meta: Any, path: str, format_name: str) -> dict[str, Any]:
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


# -- loading ------------------------------------------------------------------------------------


def _checked_meta(opt: Optimizer, path: str, meta: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(each group's options, the step options) of the file, checked against the optimizer."""
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
    options: list[dict[str, Any]] = []
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
    return options, step_options


def restore_param(destination: np.ndarray, source: np.ndarray) -> None:
    """One param's values from the file, in place (a seam: the tests signal here)."""
    np.copyto(destination, source)


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """SIGINT held back (on the main thread, where Python delivers it) until the block is done:
    its KeyboardInterrupt then comes after a complete load, never inside it."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield  # no KeyboardInterrupt here, or a handler installed outside Python that cannot be put back
        return
    held: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda *args: held.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held and callable(previous):
            previous(*held[0])


def load(opt: Optimizer, source: Any) -> None:
    from ._groups import GroupLayout
    from ._memory import full_like_at_same_line_offset
    from ._plain import plain

    checked: list[Any] = []  # the groups' options and the step options, once the meta is read

    def expected(meta: dict[str, Any]) -> dict[str, tuple[str, np.ndarray]]:
        checked.extend(_checked_meta(opt, path, meta))
        return expected_members(opt, meta)

    path = _name(source)
    path, meta, members = read(source, opt.CHECKPOINT_FORMAT, meta_limit(opt), expected, opt.SIGNED_STATE_NAMES)
    options, step_options = checked
    steps = members["steps"]
    if steps.size and (steps.min() < 0 or steps.max() > _STEP_LIMIT):
        raise ValueError(f"{path}: checkpoint step counts must be from 0 to 2**63 - 2")
    copies: list[tuple[np.ndarray, np.ndarray]] = []  # (param, its values in the file)
    if meta["params"]:
        for member, what, param in _members(opt, True):
            if member.startswith("param_"):
                if not param.flags.writeable:
                    raise ValueError(f"{path}: cannot restore into a read-only array of this optimizer ({what})")
                copies.append((param, members[member]))

    # The new state, complete, beside the old one: fresh arrays in the layouts of the current ones.
    groups: list[dict[str, Any]] = []
    layouts: list[GroupLayout] = []
    j = 0
    for group, layout, chosen in zip(opt.param_groups, opt._layouts, options):
        new_group = {**group, **{name: plain(value) for name, value in chosen.items()}}
        states: dict[str, list[np.ndarray]] = {name: [] for name in opt.STATE_NAMES}
        for i in range(len(layout.keys)):
            for name in opt.STATE_NAMES:
                fresh = full_like_at_same_line_offset(layout.states[name][i], 0)
                np.copyto(fresh, members[f"{name}_{j + i}"])
                states[name].append(fresh)
        new = GroupLayout(
            layout.keys,
            layout.by_name,
            layout.labels,
            states[opt.STATE_NAMES[0]],
            steps[j : j + len(layout.keys)].copy(),
            states,
            layout.first,
        )
        new.record = opt._record(new_group, new)
        groups.append(new_group)
        layouts.append(new)
        j += len(layout.keys)
    swap = {
        "_layouts": layouts,
        "state": opt._table(layouts),
        "param_groups": groups,
        "_step_options": {**opt._step_options, **{name: plain(value) for name, value in step_options.items()}},
    }

    # In: the params in place, then every attribute at once; SIGINT waits for the end.
    with _interrupts_deferred():
        for param, values in copies:
            restore_param(param, values)
        opt.__dict__.update(swap)
