"""Loading a checkpoint written by a native optimizer's ``save`` into a reference optimizer.

The file is read by :func:`adagrad._checkpoint.read` (the native package's reader, which needs
nothing native); everything in it is then checked against the optimizer here before anything is
restored: all or nothing. A group option or step option the file lacks (a file written before the
option existed) keeps the optimizer's value, the clip options their defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .checks import step_options

if TYPE_CHECKING:
    from .base import ReferenceOptimizer

__all__ = ["load"]

_STEP_DEFAULTS: dict[str, Any] = {
    "grad_scale": None,
    "max_grad_norm": None,
    "norm_type": 2.0,
    "clip_norm_per_tensor": None,
    "clip_value": None,
}
_STEP_LIMIT = 2**63 - 2


def _member(members: dict[str, np.ndarray], name: str, current: np.ndarray, what: str, path: str) -> np.ndarray:
    saved = members.get(name)
    if saved is None:
        raise ValueError(f"{path}: checkpoint has no {what}")
    if current.dtype.name == "bfloat16" and saved.dtype == np.dtype("V2"):
        saved = saved.view(current.dtype)  # a .npy header has no name for ml_dtypes' bfloat16: raw bits
    if saved.dtype != current.dtype or saved.shape != current.shape:
        raise ValueError(
            f"{path}: checkpoint {what} is {saved.dtype}{list(saved.shape)}, "
            f"this optimizer's is {current.dtype}{list(current.shape)}"
        )
    return saved


def load(opt: ReferenceOptimizer, path: Any) -> None:
    """Restore the checkpoint at `path` into `opt` (same rule, same params); all or nothing."""
    from .._checkpoint import expected_members, meta_limit, read  # lazily: only a load needs the reader

    path, meta, members = read(
        path, opt.CHECKPOINT_FORMAT, meta_limit(opt), lambda m: expected_members(opt, m), opt.SIGNED_STATE_NAMES
    )
    groups = meta["param_groups"]
    if not all(isinstance(g, dict) for g in groups):
        raise ValueError(f"{path}: checkpoint param groups must be objects")
    options = opt._checked_groups(groups, f"{path}: checkpoint ")
    attributes = {name: meta.get(name, _STEP_DEFAULTS.get(name)) for name in opt.STEP_OPTION_NAMES}
    step_options(*attributes.values())

    layouts = opt._layouts
    count = sum(len(layout.keys) for layout in layouts)
    steps = members.get("steps")
    if steps is None or steps.dtype != np.int64 or steps.shape != (count,):
        raise ValueError(f"{path}: checkpoint step counts must be int64[{count}]")
    if steps.size and (steps.min() < 0 or steps.max() > _STEP_LIMIT):
        raise ValueError(f"{path}: checkpoint step counts must be from 0 to 2**63 - 2")

    expected = {"meta", "steps"}
    restore: list[tuple[np.ndarray, Any]] = []
    counts: list[tuple[Any, int, int]] = []
    j = 0
    for index, (saved, group, layout) in enumerate(zip(groups, opt.param_groups, layouts)):
        if saved.get("keys") != layout.keys:
            raise ValueError(
                f"{path}: checkpoint param group {index} holds params {saved.get('keys')!r}, expected {layout.keys!r}"
            )
        for i, param in enumerate(group["params"]):
            name = layout.labels[i]
            entries = [(f"{state}_{j}", f"{state} of {name}", layout.states[state][i]) for state in opt.STATE_NAMES]
            if meta["params"]:
                entries.append((f"param_{j}", f"param {name}", param))
            for member, what, destination in entries:
                expected.add(member)
                if not destination.flags.writeable:
                    raise ValueError(f"{path}: cannot restore into the read-only {what}")
                restore.append((destination, _member(members, member, destination, what, path)))
            counts.append((layout, i, int(steps[j])))
            j += 1
    unknown = sorted(set(members) - expected)
    if unknown:
        raise ValueError(f"{path}: checkpoint has unexpected member {unknown[0]!r}")
    opt._restore(options, restore, counts, attributes)
