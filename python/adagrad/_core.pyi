"""Typing for the native module. Use the public API in ``adagrad`` instead of calling these."""

from collections.abc import Sequence
from typing import Any, TypedDict

import numpy as np

__version__: str

class NonFiniteGradError(ValueError): ...

# The four runtime controls are public (adagrad.cpu_info, ...). Their docstrings are the compiled
# functions' (cpp/bindings/register_runtime.cpp), which the docs site's API page shows.
def cpu_info() -> dict[str, Any]:
    """Which kernel runs and what this CPU offers."""

def set_isa(name: str) -> None:
    """Force the kernels of one instruction set (a name from cpu_info()['available'])."""

def get_num_threads() -> int:
    """Threads one update may use."""

def set_num_threads(n: int) -> None:
    """Set the threads one update may use (>= 1)."""

def _fail_task(index: int) -> None: ...
def _reset_load_guard(keep_level: bool = False) -> None: ...
def _slow_workers(microseconds: int) -> None: ...
def _set_first_back_off(seconds: float) -> None: ...
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
