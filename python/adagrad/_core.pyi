"""Typing for the native module. Use the public API in ``adagrad`` instead of calling these."""

from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np

__version__: str

class NonFiniteGradError(ValueError): ...

# The four runtime controls are public (adagrad.cpu_info, ...). Their docstrings here are what the
# docs site's API page shows (mkdocstrings reads this stub; the compiled functions cannot be
# inspected); tests/test_docs.py holds each summary line to the compiled function's own.
def cpu_info() -> dict[str, Any]:
    """Which kernel runs and what this CPU offers.

    Returns a dict: ``isa`` (the kernels in use: ``baseline``, ``avx2``, ``avx512`` or ``neon``),
    ``available`` (those this CPU can run), ``compiled`` (those in this build), ``threads`` (as
    :func:`get_num_threads`), ``thread_team`` (``own``: adagrad's pool; ``openmp``: torch's team,
    which ``adagrad.torch``'s optimizers use once it is imported), ``parallel_threshold`` (elements
    in one call from which it is split across threads), ``pool_threads`` (threads the own pool has
    started, the caller's included), ``pool_refusal`` (why the system refused a worker thread, or
    None), ``arch``, ``compiler``, ``build_flags`` (the build type and flags, then each ISA kernel
    file's own), ``version`` and ``errors`` (messages for a bad ``ADAGRAD_ISA`` /
    ``ADAGRAD_NUM_THREADS``, whose key is then None: it never raises). ``python -m adagrad info``
    prints it.

    Examples:
        >>> import adagrad
        >>> info = adagrad.cpu_info()
        >>> info["isa"] in info["available"]
        True
    """

def set_isa(name: str) -> None:
    """Force the kernels of one instruction set (a name from cpu_info()['available']).

    As the environment variable ``ADAGRAD_ISA`` does at start-up. An unknown name, or one this CPU
    lacks, raises ``ValueError``. Results are the same bits on every ISA; only the speed differs.

    Examples:
        >>> import adagrad
        >>> adagrad.set_isa("baseline"); adagrad.cpu_info()["isa"]
        'baseline'
        >>> adagrad.set_isa(adagrad.cpu_info()["available"][-1])
    """

def get_num_threads() -> int:
    """Threads one update may use.

    Default: the CPUs this process may use, or ``ADAGRAD_NUM_THREADS``. Under ``adagrad.torch``, the
    smaller of this and ``torch.get_num_threads()``.
    """

def set_num_threads(n: int) -> None:
    """Set the threads one update may use (>= 1).

    Results do not depend on the thread count. Inside a torch training loop see the docs' PyTorch
    page, "Threads in a training loop".

    Examples:
        >>> import adagrad
        >>> n = adagrad.get_num_threads()
        >>> adagrad.set_num_threads(1); adagrad.get_num_threads()
        1
        >>> adagrad.set_num_threads(n)
    """

def _fail_task(index: int) -> None: ...
def _last_thread_team() -> str: ...

class Record(TypedDict, total=False):
    """One param group's (or one call's) update, as _core.step reads it (cpp/bindings/register_step.cpp)."""

    rule: str  # a rule's kernel name (adagrad.rules)
    options: dict[str, Any]  # the rule's options, maximize, duplicates, stochastic_rounding, seed
    params: list[np.ndarray] | tuple[np.ndarray, ...]
    grads: list[Any] | tuple[Any, ...] | None  # None, an array or (indices, values) per param
    states: dict[str, list[np.ndarray]]  # each of the rule's states by name, one array per param
    steps: np.ndarray  # int64: updates done per param (incremented), or:
    step: int  # the 1-based number of this update (the single-call functions)
    labels: list[str] | None  # names of the params in messages; None: the functions' argument names
    first_stream: int
    torch_vector_width: int

def check_options(rule: str, options: dict[str, Any]) -> None: ...
def check_step_options(step_options: dict[str, Any]) -> None: ...
def check_params(params: Sequence[np.ndarray], labels: Sequence[str]) -> None: ...
def rules() -> dict[str, dict[str, Any]]: ...
def step(records: list[Record], step_options: dict[str, Any] | None = None) -> bool | tuple[bool, float]: ...
def sparse_stream_ceiling(table: np.ndarray, indices: np.ndarray, values: np.ndarray, state: np.ndarray) -> None: ...
def sparse_floor(
    table: np.ndarray, rows: np.ndarray, values: np.ndarray, state: np.ndarray, read_values: bool
) -> None: ...
def stream_ceiling(params: Sequence[np.ndarray], grads: Sequence[np.ndarray], sums: Sequence[np.ndarray]) -> None: ...
def _grad_norms(
    grads: Sequence[np.ndarray], norm_type: float | str = 2.0, grad_scale: float | None = None
) -> tuple[list[float], float]: ...
def _stochastic_round(x: np.ndarray, out: np.ndarray, index0: int, seed: int, stream: int, step: int) -> None: ...
def _plan_tasks(sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray, int]: ...
def _use_openmp_team(on: bool) -> bool: ...
