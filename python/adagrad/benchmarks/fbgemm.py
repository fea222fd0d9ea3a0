"""FBGEMM's sparse Adagrad, as a benchmark peer, when ``fbgemm-gpu-cpu`` is installed.

FBGEMM (the kernels behind TorchRec's embedding training) exposes its JIT row kernels
(``GenerateSparseAdaGrad``) to C++ only, and its wheel ships no headers: ``fbgemm_shim.cpp`` declares
the one entry point from FBGEMM's public API and is compiled here, once per process, against the
installed ``fbgemm.so`` with the system's C++ compiler. Without fbgemm-gpu-cpu, torch or a compiler,
:func:`load` says why and the bench runs without these peers.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np

SHIM = Path(__file__).with_name("fbgemm_shim.cpp")


class Fbgemm:
    """ctypes handle on the compiled shim: FBGEMM's sparse Adagrad over float32 tables, int64 ids."""

    def __init__(self, library: ctypes.CDLL, version: str) -> None:
        self.version = version
        self._lib = library
        library.adagrad_fbgemm_kernel.restype = ctypes.c_void_p
        library.adagrad_fbgemm_kernel.argtypes = [ctypes.c_int, ctypes.c_int]
        library.adagrad_fbgemm_free.argtypes = [ctypes.c_void_p]
        library.adagrad_fbgemm_run.restype = ctypes.c_int
        library.adagrad_fbgemm_run.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
        library.adagrad_fbgemm_run.argtypes += [ctypes.c_void_p] * 4 + [ctypes.c_float, ctypes.c_float]
        self._kernels: dict[tuple[int, bool], int] = {}

    def step(
        self,
        table: np.ndarray,
        indices: np.ndarray,
        values: np.ndarray,
        state: np.ndarray,
        lr: float,
        eps: float,
    ) -> None:
        """One FBGEMM sparse Adagrad call: every occurrence in input order (state (R,): row-wise)."""
        dim = table.shape[1]
        rowwise = state.ndim == 1
        assert table.dtype == values.dtype == state.dtype == np.float32 and indices.dtype == np.int64
        assert table.flags.c_contiguous and values.flags.c_contiguous and values.shape == (indices.size, dim)
        kernel = self._kernels.get((dim, rowwise))
        if kernel is None:
            kernel = self._kernels[(dim, rowwise)] = self._lib.adagrad_fbgemm_kernel(dim, int(rowwise))
        done = self._lib.adagrad_fbgemm_run(
            kernel,
            indices.size,
            table.size,
            table.ctypes.data,
            values.ctypes.data,
            state.ctypes.data,
            indices.ctypes.data,
            eps,
            -lr,  # FBGEMM adds lr * g / (sqrt(h) + eps)
        )
        if done != indices.size:
            raise RuntimeError(f"FBGEMM's sparse Adagrad stopped after {done} of {indices.size} rows")


def import_module(name: str) -> ModuleType:
    """A module of fbgemm_gpu. Its package warns at import about optional operators its CPU build
    leaves out (DeprecationWarning, "Failed to import ..."): nothing the peers use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module(name)


_loaded: Fbgemm | str | None = None


def load() -> Fbgemm | str:
    """The FBGEMM peer, or the reason it is not available (cached for the process)."""
    global _loaded
    if _loaded is None:
        _loaded = _load()
    return _loaded


def _load() -> Fbgemm | str:
    try:
        import torch  # noqa: F401  (loads libc10 and libtorch, which fbgemm.so needs)

        fbgemm_gpu = import_module("fbgemm_gpu")
    except ImportError as error:
        return f"fbgemm-gpu-cpu is not installed ({error})"
    library = Path(str(fbgemm_gpu.__file__)).with_name("fbgemm.so")
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not library.exists() or compiler is None:
        return f"FBGEMM's {library.name} or a C++ compiler is missing"
    out = Path(tempfile.mkdtemp(prefix="adagrad-fbgemm-")) / "fbgemm_shim.so"
    command = [compiler, "-O2", "-std=c++17", "-shared", "-fPIC", str(SHIM), "-o", str(out), str(library)]
    command += [f"-Wl,-rpath,{library.parent}"]
    built = subprocess.run(command, capture_output=True, text=True, check=False)
    if built.returncode != 0:
        return f"the FBGEMM shim did not compile: {built.stderr.strip()[:500]}"
    return Fbgemm(ctypes.CDLL(str(out)), getattr(fbgemm_gpu, "__version__", "unknown"))
