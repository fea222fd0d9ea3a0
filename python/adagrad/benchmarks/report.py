"""Turning timings into rows, a table, JSON and a plot."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

import adagrad
from adagrad._info import processor

from . import fbgemm, tf_raw_ops
from .cases import RULE_PASSES, Case, HalfCase, RuleCase, SparseCase, SparseHalfCase, SparseRuleCase, TrainingCase


def _rows(
    common: dict[str, Any], elements: float, bytes_moved: float, medians: dict[str, float], extra: Any = None
) -> list[dict[str, Any]]:
    """One row per implementation; `extra(seconds)` adds case-specific columns."""
    ours = medians["adagrad"]
    return [
        {
            **common,
            "impl": name,
            "median_s": seconds,
            "gelem_per_s": elements / seconds / 1e9,
            "gb_per_s": bytes_moved / seconds / 1e9,
            "adagrad_speedup": seconds / ours,  # > 1: adagrad is that many times faster
            **(extra(seconds) if extra else {}),
        }
        for name, seconds in medians.items()
    ]


def rows_for(case: Case, threads: int, medians: dict[str, float]) -> list[dict[str, Any]]:
    common = {
        "case": case.name,
        "note": case.note,
        "dtype": case.dtype if isinstance(case.dtype, str) else np.dtype(case.dtype).name,
        **({"state_dtype": case.state or case.dtype} if isinstance(case, HalfCase) else {}),
        "tensors": len(case.shapes),
        "elements": case.elements,
        "threads": threads,
    }
    return _rows(common, case.elements, case.bytes_moved, medians)


def rule_rows_for(case: RuleCase, threads: int, medians: dict[str, float]) -> list[dict[str, Any]]:
    """A composite rule's dense case. Adagrad-DA's "ceiling" is derived: the stream pass's time
    (Adagrad's five passes) times `case.ceiling_scale` (7/5), the time of its seven passes at the
    stream pass's bandwidth; the stream pass keeps its own row, at its own bytes."""
    if "stream pass" in medians:
        medians = {"adagrad": medians["adagrad"], "ceiling": medians["stream pass"] * case.ceiling_scale, **medians}
    rows = rows_for(case, threads, medians)
    for r in rows:
        r["rule"] = case.rule
        if r["impl"] in ("stream pass", "plain adagrad"):  # five passes: Adagrad's bytes
            r["gb_per_s"] /= case.ceiling_scale
        if r["impl"] == "ceiling" and "stream pass" in medians:
            r["derived"] = f"stream pass x {case.ceiling_scale:g} (bytes: no native pass moves seven)"
    return rows


def sparse_rows_for(case: SparseCase, threads: int, medians: dict[str, float]) -> list[dict[str, Any]]:
    """Sparse cases are counted in unique rows touched per step (and their elements)."""
    unique = case.unique_rows()
    elements = unique * case.dim
    passes = RULE_PASSES[case.rule] if isinstance(case, SparseRuleCase) else 5  # over the touched elements
    common = {
        **({"rule": case.rule} if isinstance(case, SparseRuleCase) else {}),
        "case": case.name,
        "note": f"{case.k} Zipf(1.2) indices, {unique:.0f} unique rows",
        "rows": case.rows,
        "dim": case.dim,
        "dtype": case.dtype if isinstance(case, SparseHalfCase) else "float32",
        "tensors": 1,
        "elements": int(elements),
        "unique_rows": unique,
        "threads": threads,
    }
    return _rows(
        common,
        elements,
        elements * 4 * passes,
        medians,
        lambda s: {"ns_per_row": s / unique * 1e9, "ns_per_occurrence": s / case.k * 1e9, "occurrences": case.k},
    )


def training_rows_for(
    case: TrainingCase, threads: int, medians: dict[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    """medians: per impl, (seconds per training step, seconds inside optimizer.step per step)."""
    ours_step, ours_optimizer = medians["adagrad"]
    return [
        {
            "case": case.name,
            "note": case.note,
            "kind": "training",
            "dtype": "float32",
            "params": case.params,
            "threads": threads,
            "impl": name,
            "median_s": step,
            "steps_per_s": 1 / step,
            "optimizer_s": optimizer,
            "optimizer_share": optimizer / step,
            "adagrad_speedup": step / ours_step,  # whole training step; > 1: adagrad's is faster
            # optimizer.step alone; NaN where it runs inside a compiled graph, unclocked
            "adagrad_optimizer_speedup": optimizer / ours_optimizer if ours_optimizer else float("nan"),
        }
        for name, (step, optimizer) in medians.items()
    ]


def format_training_table(rows: list[dict[str, Any]]) -> str:
    return _format(
        rows,
        _leading(26, 20, "step")
        + [
            ("steps/s", 9, lambda r: f"{r['steps_per_s']:.1f}"),
            ("opt.step", 11, lambda r: _duration(r["optimizer_s"])),
            ("share", 7, lambda r: f"{r['optimizer_share']:.0%}"),
            ("adagrad x step", 16, lambda r: f"{r['adagrad_speedup']:.2f}"),
            ("x opt.step", 12, lambda r: f"{r['adagrad_optimizer_speedup']:.2f}"),
        ],
    )


def _duration(seconds: float) -> str:
    return f"{seconds * 1e6:8.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:8.2f} ms"


def _format(rows: list[dict[str, Any]], columns: list[tuple[str, int, Any]]) -> str:
    """A text table: each column a title, a width and a formatter of one row (left-aligned if the
    width is negative)."""
    header = "".join(f"{title:<{-w}}" if w < 0 else f"{title:>{w}}" for title, w, _ in columns)
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append("".join(f"{cell(r):<{-w}}" if w < 0 else f"{cell(r):>{w}}" for _, w, cell in columns))
    return "\n".join(lines)


def _leading(impl_width: int, case_width: int, time: str = "median") -> list[tuple[str, int, Any]]:
    return [
        ("case", -case_width, lambda r: r["case"]),
        ("thr ", 5, lambda r: f"{r['threads']} "),
        ("impl", -impl_width, lambda r: r["impl"]),
        (time, 11, lambda r: _duration(r["median_s"])),
    ]


def format_table(rows: list[dict[str, Any]]) -> str:
    return _format(
        rows,
        _leading(18, 14)
        + [
            ("Gelem/s", 9, lambda r: f"{r['gelem_per_s']:.2f}"),
            ("GB/s", 7, lambda r: f"{r['gb_per_s']:.1f}"),
            ("adagrad x", 10, lambda r: f"{r['adagrad_speedup']:.2f}"),
        ],
    )


def format_sparse_table(rows: list[dict[str, Any]]) -> str:
    """Sparse cases: time per step, per occurrence (index) and per unique row touched."""
    return _format(
        rows,
        _leading(28, 19)
        + [
            ("ns/occ", 8, lambda r: f"{r['ns_per_occurrence']:.1f}"),
            ("ns/row", 8, lambda r: f"{r['ns_per_row']:.1f}"),
            ("adagrad x", 10, lambda r: f"{r['adagrad_speedup']:.2f}"),
        ],
    )


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "adagrad": adagrad.__version__,
        **adagrad.cpu_info(),
        "cpus": len(os.sched_getaffinity(0)),
        "processor": processor(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    peer = fbgemm.load()
    info["fbgemm"] = peer if isinstance(peer, str) else f"fbgemm-gpu-cpu {peer.version}"
    info["tensorflow"] = tf_raw_ops.describe()
    return info


def write_json(path: Path, rows: list[dict[str, Any]], targets: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({"machine": machine(), "rows": rows, "targets": targets}, indent=1) + "\n")


def plot(path: Path, rows: list[dict[str, Any]]) -> bool:
    """Throughput vs size of the one-tensor float32 cases, one line per implementation and threads."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    single = [
        r
        for r in rows
        if r.get("tensors") == 1 and r["dtype"] == "float32" and r["elements"] >= 4096 and "unique_rows" not in r
    ]
    if not single:
        return False  # e.g. only training or sparse cases were run
    fig, ax = plt.subplots(figsize=(8, 5))
    palette = plt.get_cmap("tab10")
    for colour, impl in enumerate(dict.fromkeys(r["impl"] for r in single)):
        for threads in sorted({r["threads"] for r in single}):
            points = sorted(
                (r["elements"], r["gelem_per_s"]) for r in single if r["impl"] == impl and r["threads"] == threads
            )
            if points:
                style = "-" if threads > 1 else "--"  # one colour per implementation
                ax.plot(
                    *zip(*points),
                    style,
                    marker="o",
                    color=palette(colour % 10),
                    linewidth=2.5 if impl == "adagrad" else 1.2,
                    label=f"{impl} ({threads} thr)",
                )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("elements in the tensor (float32)")
    ax.set_ylabel("Gelem/s (higher is better)")
    ax.set_title("One Adagrad step over one tensor")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
