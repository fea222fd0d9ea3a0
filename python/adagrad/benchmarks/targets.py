"""The speed targets of the project (issue 4), checked against one run's rows."""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

Rows = list[dict[str, Any]]


def _median(rows: Rows, case: str, impl: str, threads: int) -> float | None:
    for r in rows:
        if r["case"] == case and r["impl"] == impl and r["threads"] == threads:
            return float(r["median_s"])
    return None


def _ratio(rows: Rows, case: str, slower: str, faster: str, threads: int) -> float | None:
    """How many times `faster` beats `slower` (time of slower / time of faster)."""
    a, b = _median(rows, case, slower, threads), _median(rows, case, faster, threads)
    return None if a is None or b is None else a / b


def evaluate(rows: Rows) -> list[dict[str, Any]]:
    most = max((r["threads"] for r in rows), default=1)
    checks: list[tuple[str, Callable[[], float | None], float, str]] = []
    for case in ("16M-f32", "resnet18-f32"):
        checks.append(
            (f"{case}: adagrad vs ceiling", partial(_ratio, rows, case, "ceiling", "adagrad", most), 0.95, ">=")
        )
        checks.append(
            (f"{case}: vs torch fused", partial(_ratio, rows, case, "torch fused", "adagrad", most), 1.0, ">=")
        )
    # Issue 17: clipping by the global norm fused into the step.
    for case in ("16M-f32", "resnet18-f32"):
        for threads in sorted({1, most}):
            checks.append(
                (
                    f"{case}: clipped step / plain step ({threads} thr)",
                    partial(_ratio, rows, case, "adagrad clipped", "adagrad", threads),
                    1.25,
                    "<=",
                )
            )
            checks.append(
                (
                    f"{case}: clipped vs torch clip+fused ({threads} thr)",
                    partial(_ratio, rows, case, "torch clip+fused", "adagrad clipped", threads),
                    1.25,
                    ">=",
                )
            )
    for case, goal in (("1M-f32", 1.3), ("64K-f32", 3.0), ("1000x1K-f32", 25.0)):
        checks.append(
            (f"{case}: vs torch fused", partial(_ratio, rows, case, "torch fused", "adagrad", most), goal, ">=")
        )
    checks.append(
        (
            "1K-f32: Adagrad.step (us per call)",
            lambda: None if (t := _median(rows, "1K-f32", "adagrad", 1)) is None else t * 1e6,
            3.0,
            "<=",
        )
    )
    for case in ("sparse-1Mx64", "sparse-1Mx128"):
        checks.append(
            (
                f"{case}: vs torch sparse (1 thread)",
                partial(_ratio, rows, case, "torch sparse", "adagrad", 1),
                20.0,
                ">=",
            )
        )
    checks.append(
        ("sparse-1Mx64: ns per unique row (1 thread)", lambda: _ns_per_row(rows, "sparse-1Mx64"), 150.0, "<=")
    )
    # Issue 13, as ratios against FBGEMM's JIT kernels in the same run (time of FBGEMM / ours).
    for case in ("sparse-1Mx64", "sparse-1Mx128"):
        for ours, theirs, goal, label in (
            ("adagrad sequential", "fbgemm sequential", 1.0, "sequential vs FBGEMM sequential"),
            ("adagrad", "fbgemm sequential", 1.0, "sum vs FBGEMM sequential"),
            ("adagrad", "fbgemm coalesced", 1 / 1.5, "sum vs FBGEMM on coalesced rows"),
            ("adagrad rowwise", "fbgemm rowwise sequential", 1.5, "rowwise sum vs FBGEMM rowwise"),
            ("adagrad rowwise sequential", "fbgemm rowwise sequential", 1.5, "rowwise seq. vs FBGEMM rowwise"),
        ):
            checks.append((f"{case}: {label}", partial(_ratio, rows, case, theirs, ours, 1), goal, ">="))
    if most > 1:
        checks.append(
            (
                f"sparse-1Mx64: sum, {most} threads vs 1",
                partial(_threads_speedup, rows, "sparse-1Mx64", most),
                1.6,
                ">=",
            )
        )
    for threads in sorted({1, most}):
        checks.append(
            (
                f"train-embbag-1Mx32: vs FBGEMM TBE ({threads} thr)",
                partial(_ratio, rows, "train-embbag-1Mx32", "fbgemm TBE", "adagrad", threads),
                1.5,
                ">=",
            )
        )
    if most > 1:
        for case in ("64K-f32", "1M-f32"):
            checks.append((f"{case}: {most} threads vs 1", partial(_threads_speedup, rows, case, most), 1.6, ">="))
    results = []
    for name, measure, goal, sense in checks:
        value = measure()
        met = None if value is None else (value >= goal if sense == ">=" else value <= goal)
        results.append({"target": name, "value": value, "goal": f"{sense} {goal}", "met": met})
    return results


def _ns_per_row(rows: Rows, case: str) -> float | None:
    for r in rows:
        if r["case"] == case and r["impl"] == "adagrad" and r["threads"] == 1:
            return float(r["ns_per_row"])
    return None


def _threads_speedup(rows: Rows, case: str, threads: int) -> float | None:
    one, many = _median(rows, case, "adagrad", 1), _median(rows, case, "adagrad", threads)
    return None if one is None or many is None else one / many


def format_targets(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        verdict = {True: "met", False: "NOT MET", None: "not measured"}[r["met"]]
        value = "-" if r["value"] is None else f"{r['value']:.2f}"
        lines.append(f"{r['target']:<56} {value:>8}  (goal {r['goal']})  {verdict}")
    return "\n".join(lines)
