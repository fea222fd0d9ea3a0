"""Reading a checkpoint archive (a NumPy ``.npz``: a zip of ``.npy`` members) as if an attacker
wrote it: nothing is decompressed before the member's size is known to fit what is expected of it.

- every member name appears once and names an ``.npy`` array (``<name>.npy``);
- members are stored or deflated (what ``np.savez`` and ``np.savez_compressed`` write), never
  encrypted;
- a member's uncompressed size (the zip's directory states it, and the zip reader never returns
  more) is checked against a bound the caller derives from the expected shape and dtype *before*
  any byte of it is decompressed; then its ``.npy`` header is checked against the expectation,
  then exactly its data is read;
- the JSON ``meta`` is parsed only when its nesting is at most :data:`JSON_DEPTH` deep.

Every refusal is an :class:`Invalid` (a ValueError) whose message names the member; the caller
prefixes the file's name.
"""

from __future__ import annotations

import contextlib
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np

__all__ = ["JSON_DEPTH", "Archive", "Invalid", "bound", "json_depth", "parse_json"]

# A .npy file: magic (6 bytes), version (2), header length (2 in version 1, 4 in version 2), the
# header (NumPy's np.load refuses one over 10,000 bytes), then the data.
_PREFIX = 10
HEADER_LIMIT = 10_000
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
JSON_DEPTH = 8  # the meta of a checkpoint nests 4 deep: {param_groups: [{keys: [...]}]}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")

# Given a member's (header dtype, header shape): raises the caller's error unless it is as expected.
Accept = Callable[[np.dtype[Any], tuple[int, ...]], None]


class Invalid(ValueError):
    """What is wrong with the archive, without the file's name."""


def bound(nbytes: int) -> int:
    """The most bytes an ``.npy`` member holding `nbytes` of data can take, header included."""
    return _PREFIX + HEADER_LIMIT + nbytes


def json_depth(text: str) -> int:
    """How deep the JSON `text` nests its arrays and objects (strings skipped); no recursion."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_json(text: str) -> Any:
    """``json.loads(text)`` when it nests at most JSON_DEPTH deep; Invalid otherwise."""
    depth = json_depth(text)
    if depth > JSON_DEPTH:
        raise Invalid(f"its 'meta' nests {depth} deep, a checkpoint's at most {JSON_DEPTH}")
    try:
        return json.loads(text)
    except ValueError as error:
        raise Invalid(f"its 'meta' is not JSON ({error})") from None


class Archive:
    """An open ``.npz``: its members' names checked, nothing decompressed yet."""

    def __init__(self, file: IO[bytes]) -> None:
        at = file.tell()
        start = file.read(6)
        file.seek(at)
        if start == b"\x93NUMPY":
            raise Invalid("it holds a single array, not an .npz archive")
        try:
            self._zip = zipfile.ZipFile(file)
        except MemoryError:
            raise
        except Exception as error:  # BadZipFile mostly; struct and decoding errors in odd ones
            raise Invalid(f"not a readable zip archive: {type(error).__name__}: {error}") from None
        self.members: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                raise Invalid(f"member {name!r} is not an .npy array")
            key = name[: -len(".npy")]
            if key in self.members:
                raise Invalid(f"member {name!r} appears more than once")
            if info.compress_type not in _METHODS:
                raise Invalid(f"member {name!r} is compressed by method {info.compress_type}, not stored or deflated")
            if info.flag_bits & 0x1:
                raise Invalid(f"member {name!r} is encrypted")
            self.members[key] = info

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    def check_size(self, name: str, limit: int) -> None:
        """Invalid when member `name` would decompress to more than `limit` bytes."""
        size = self.members[name].file_size
        if size > limit:
            raise Invalid(f"member '{name}.npy' is {size} bytes uncompressed, more than the {limit} it can take")

    def read(self, name: str, limit: int, accept: Accept) -> np.ndarray:
        """Member `name` (no ``.npy``): at most `limit` bytes, its header as `accept` wants it."""
        self.check_size(name, limit)
        with _unreadable(name):
            stream = self._zip.open(self.members[name])
        with stream:
            dtype, shape, fortran = _header(stream, name)
            accept(dtype, shape)  # the caller's own error, as it is
            nbytes = dtype.itemsize * int(np.prod(shape, dtype=np.int64))
            with _unreadable(name):
                data = stream.read(nbytes + 1)  # one byte more: a longer member is damaged
        if len(data) != nbytes:
            raise Invalid(f"member '{name}.npy' holds {len(data)} bytes of data, its header says {nbytes}")
        # Read-only (a view of the bytes read): the caller copies it where it belongs.
        return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")


@contextlib.contextmanager
def _unreadable(name: str) -> Iterator[None]:
    """Any error of the zip reader (a bad CRC, deflate data, a truncated file, ...) as an Invalid."""
    try:
        yield
    except MemoryError:
        raise
    except Exception as error:
        raise Invalid(f"member '{name}.npy' is not readable: {type(error).__name__}: {error}") from None


def _header(stream: IO[bytes], name: str) -> tuple[np.dtype[Any], tuple[int, ...], bool]:
    """(dtype, shape, fortran order) of an ``.npy`` header; Invalid for pickled (object) data."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream, max_header_size=HEADER_LIMIT)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream, max_header_size=HEADER_LIMIT)
        else:
            raise Invalid(f"member '{name}.npy' has .npy format version {version}, not 1.0 or 2.0")
    except Invalid:
        raise
    except Exception as error:  # NumPy's reasons: a bad magic string, header, dtype, ...
        raise Invalid(f"member '{name}.npy' has no valid .npy header: {type(error).__name__}: {error}") from None
    if dtype.hasobject:
        raise Invalid("it holds pickled (object) data, which a checkpoint never does")
    return dtype, tuple(int(n) for n in shape), bool(fortran)
