"""``python -m adagrad info``: what :func:`adagrad.cpu_info` reports, for people."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np

from . import _core

__all__ = ["describe", "processor"]

# cpu_info() keys shown with a label, in this order; any other key the core adds is shown as-is after them.
LABELS = {
    "version": "version",
    "isa": "kernel in use",
    "available": "available here",
    "compiled": "compiled in",
    "threads": "threads",
    "pool_threads": "pool threads",
    "pool_refusal": "pool refused",
    "thread_team": "thread team",
    "stalls": "stalled steps",
    "stall_back_off": "on one thread for",
    "parallel_threshold": "parallel from",
    "arch": "architecture",
    "compiler": "compiler",
    "build_flags": "build flags",
    "errors": "errors",
}
NOTES = {
    "isa": "force another with ADAGRAD_ISA=<name> or adagrad.set_isa(name)",
    "threads": "ADAGRAD_NUM_THREADS=<n> or adagrad.set_num_threads(n)",
    "thread_team": "own: adagrad's pool; openmp: torch's OpenMP team, once adagrad.torch is imported",
    "pool_threads": "threads the own pool has started, the caller's included (1 before the first parallel step)",
    "pool_refusal": "why the system refused a worker thread; the pool runs on the ones it has",
    "stalls": "parallel steps a busy CPU made slower than one thread; steps then run on one thread a while",
    "stall_back_off": "seconds of that back-off still to run",
    "parallel_threshold": "elements in one step; smaller steps run on the calling thread",
    "errors": "settings that are wrong: a step raises until they are fixed",
}


def show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) if value else "none"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def describe(info: dict[str, Any]) -> str:
    """Aligned lines ``label  value  (note)`` for every key of ``info`` (a ``cpu_info()``),
    then the Python side: the interpreter, NumPy and where the native module was loaded from."""
    rows = [(LABELS.get(key, key), show(info[key]), NOTES.get(key, "")) for key in sorted(info, key=_order)]
    if "build_flags" not in info:
        rows.append((LABELS["build_flags"], "not reported by this build's native module", ""))
    rows += [
        ("processor", processor(), ""),
        ("python", f"{platform.python_implementation()} {platform.python_version()}", ""),
        ("numpy", np.__version__, ""),
        ("native module", str(_core.__file__), ""),
    ]
    width = max(len(label) for label, _, _ in rows)
    lines = [f"{label.ljust(width)}  {value}" + (f"  ({note})" if note else "") for label, value, note in rows]
    return "\n".join(lines)


def processor() -> str:
    """The CPU's model name, with its family and model numbers where Linux reports them (the same
    name covers several generations: on a VM "AMD EPYC" may be Zen 3 or Zen 4)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break  # the first CPU's block is enough
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields['model']})"
    return name


def _order(key: str) -> tuple[int, str]:
    known = list(LABELS)
    return (known.index(key), "") if key in known else (len(known), key)
