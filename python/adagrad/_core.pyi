"""Typing for the native module. Use the public API in ``adagrad`` instead of calling these."""

from collections.abc import Sequence
from typing import Any

import numpy as np

__version__: str

class NonFiniteGradError(ValueError): ...

def cpu_info() -> dict[str, Any]: ...
def set_isa(name: str) -> None: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def check_options(
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
    decoupled_weight_decay: bool,
    eps_inside_sqrt: bool,
) -> None: ...
def check_step_options(nonfinite: str, grad_scale: float | None) -> None: ...
def check_clip_options(
    max_grad_norm: float | None,
    norm_type: float | str,
    clip_norm_per_tensor: float | None,
    clip_value: float | None,
) -> None: ...
def check_params(params: Sequence[np.ndarray], labels: Sequence[str]) -> None: ...
def check_rule_options(rule: str, lr: float, l1: float, l2: float) -> None: ...
def check_decay_options(
    lr: float, accumulator_decay_step: int, accumulator_decay_rate: float, initial_accumulator_value: float
) -> None: ...
def decay_update(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    decay_counts: np.ndarray,
    step: int,
    lr: float,
    accumulator_decay_step: int,
    accumulator_decay_rate: float,
    initial_accumulator_value: float,
    nonfinite: str = "propagate",
) -> bool: ...
def sparse_decay_update(
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    state: np.ndarray,
    decay_counts: np.ndarray,
    step: int,
    lr: float,
    accumulator_decay_step: int,
    accumulator_decay_rate: float,
    initial_accumulator_value: float,
    duplicates: str,
    nonfinite: str = "propagate",
) -> bool: ...
def proximal_update(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    lr: float,
    l1: float,
    l2: float,
    nonfinite: str = "propagate",
) -> bool: ...
def da_update(
    param: np.ndarray,
    grad: np.ndarray,
    grad_sum: np.ndarray,
    state_sum: np.ndarray,
    step: int,
    lr: float,
    l1: float,
    l2: float,
    nonfinite: str = "propagate",
) -> bool: ...
def sparse_proximal_update(
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    state: np.ndarray,
    lr: float,
    l1: float,
    l2: float,
    duplicates: str,
    nonfinite: str = "propagate",
) -> bool: ...
def sparse_da_update(
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    grad_sum: np.ndarray,
    state: np.ndarray,
    step: int,
    lr: float,
    l1: float,
    l2: float,
    duplicates: str,
    nonfinite: str = "propagate",
) -> bool: ...
def update(
    param: np.ndarray,
    grad: np.ndarray,
    state_sum: np.ndarray,
    step: int,
    lr: float,
    lr_decay: float,
    weight_decay: float,
    eps: float,
    maximize: bool,
    decoupled_weight_decay: bool,
    eps_inside_sqrt: bool,
    nonfinite: str = "propagate",
    grad_scale: float | None = None,
    max_grad_norm: float | None = None,
    norm_type: float | str = 2.0,
    clip_norm_per_tensor: float | None = None,
    clip_value: float | None = None,
    sr_seed: int | None = None,
) -> bool: ...
def step(
    groups: list[tuple[Any, ...]],
    nonfinite: str = "propagate",
    grad_scale: float | None = None,
    max_grad_norm: float | None = None,
    norm_type: float | str = 2.0,
    clip_norm_per_tensor: float | None = None,
    clip_value: float | None = None,
) -> bool | tuple[bool, float]: ...
def sparse_update(
    table: np.ndarray,
    indices: np.ndarray,
    values: np.ndarray,
    state: np.ndarray,
    step: int,
    lr: float,
    lr_decay: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    eps_inside_sqrt: bool,
    decoupled_weight_decay: bool,
    duplicates: str,
    nonfinite: str = "propagate",
    grad_scale: float | None = None,
    max_grad_norm: float | None = None,
    norm_type: float | str = 2.0,
    clip_norm_per_tensor: float | None = None,
    clip_value: float | None = None,
    sr_seed: int | None = None,
) -> bool: ...
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
