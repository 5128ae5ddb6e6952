"""The distillation report: teacher and student speed measured in the same run on the same features, and the
distillation.png beside the training report.

Speed: teacher and student are timed in pairs on the same batch, one right after the other, the order swapped
from pair to pair, so a busy shared machine (whose load swings over seconds) slows both sides of a pair alike.
Throughput runs every feature in length-sorted batches of eval_batch_size (each side: examples / the sum of its
batch times), reported for the round of the median speed-up; latency runs single features the same way (median
milliseconds per side, and the median of the paired ratios). An ensemble teacher is timed as a whole: each example
goes through every teacher.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from bertkit.engine import run_model
from bertkit.runtime import Runtime
from bertkit.tasks.base import Feature, Task
from bertkit.training.report import _pyplot


def _seconds(task: Task, models: Sequence[nn.Module], features: Sequence[Feature], runtime: Runtime) -> float:
    t0 = time.perf_counter()
    for model in models:
        run_model(task, model, features, len(features), runtime.device, runtime.autocast)
    return time.perf_counter() - t0


def _paired(task: Task, sides: dict[str, list[nn.Module]], batches: Sequence[Sequence[Feature]],
            runtime: Runtime) -> dict[str, float]:  # fmt: skip
    """Seconds per side over the batches, timed in teacher/student pairs whose order alternates."""
    total = dict.fromkeys(sides, 0.0)
    names = list(sides)
    for k, batch in enumerate(batches):
        for name in names if k % 2 == 0 else names[::-1]:
            total[name] += _seconds(task, sides[name], batch, runtime)
    return total


def measure_speed(task: Task, teachers: Sequence[nn.Module], student: nn.Module, features: Sequence[Feature],
                  batch_size: int, runtime: Runtime, rounds: int = 3,
                  latency_examples: int = 100) -> dict[str, Any]:  # fmt: skip
    """{"teacher": {examples_per_second, latency_ms_p50}, "student": {...}, "speedup", "latency_speedup", ...}."""
    sides = {"teacher": list(teachers), "student": [student]}
    ordered = sorted(features, key=lambda f: len(f["input_ids"]))
    batches = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    _paired(task, sides, batches[:2], runtime)  # warm-up: first calls pay for allocations and kernel choices
    per_round = sorted((_paired(task, sides, batches, runtime) for _ in range(rounds)),
                       key=lambda r: r["teacher"] / r["student"])  # fmt: skip
    middle = per_round[len(per_round) // 2]  # the round of the median speed-up
    singles = [[f] for f in features[:latency_examples]]
    latency = [_paired(task, sides, [one], runtime) for one in singles]
    out: dict[str, Any] = {
        name: {
            "examples_per_second": round(len(features) / middle[name], 2),
            "latency_ms_p50": round(statistics.median(t[name] for t in latency) * 1000, 3)
            if latency
            else None,
        }
        for name in sides
    }
    out["speedup"] = round(middle["teacher"] / middle["student"], 3)
    if latency:
        out["latency_speedup"] = round(statistics.median(t["teacher"] / t["student"] for t in latency), 3)
    out.update(features=len(features), batch_size=batch_size, rounds=rounds,
               latency_examples=len(latency), device=str(runtime.device))  # fmt: skip
    return out


def plot_distillation(report: dict[str, Any], main_metric: str, path: str | Path) -> Path | None:
    """Teacher vs student: the main dev metric, throughput and parameters, one bar pair each."""
    plt = _pyplot()
    if plt is None:
        return None
    speed = report["speed"]
    panels = [
        (main_metric, report["teacher"].get(main_metric, 0.0), report["student"].get(main_metric, 0.0)),
        ("examples / s", speed["teacher"]["examples_per_second"], speed["student"]["examples_per_second"]),
        ("parameters (M)", report["parameters"]["teacher"] / 1e6, report["parameters"]["student"] / 1e6),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, (title, teacher, student) in zip(axes, panels, strict=True):
        bars = ax.bar(["teacher", "student"], [teacher, student], color=["tab:gray", "tab:blue"])
        ax.bar_label(bars, fmt="%.3g")
        ax.set_title(title)
    fig.suptitle(
        f"retained {report['retained']:.1%} of the teacher's {main_metric}, {report['speedup']:.2f}x faster"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
