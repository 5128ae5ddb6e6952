"""The distillation report: teacher and student speed measured in the same run on the same features, and the
distillation.png beside the training report.

Speed: rounds alternate teacher and student (so a busy shared machine slows both alike); each reports the median
round. Throughput runs every feature in length-sorted batches of eval_batch_size; latency runs single features
one at a time. An ensemble teacher is timed as a whole: each example goes through every teacher.
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


def _throughput(task: Task, models: Sequence[nn.Module], features: Sequence[Feature], batch_size: int,
                runtime: Runtime) -> float:  # fmt: skip
    t0 = time.perf_counter()
    for model in models:
        run_model(task, model, features, batch_size, runtime.device, runtime.autocast)
    return len(features) / (time.perf_counter() - t0)


def _latency_ms(task: Task, models: Sequence[nn.Module], feature: Feature, runtime: Runtime) -> float:
    t0 = time.perf_counter()
    for model in models:
        run_model(task, model, [feature], 1, runtime.device, runtime.autocast)
    return (time.perf_counter() - t0) * 1000


def measure_speed(task: Task, teachers: Sequence[nn.Module], student: nn.Module, features: Sequence[Feature],
                  batch_size: int, runtime: Runtime, rounds: int = 3,
                  latency_examples: int = 100) -> dict[str, Any]:  # fmt: skip
    """{"teacher": {examples_per_second, latency_ms}, "student": {...}, "speedup", "latency_speedup", ...}."""
    sides = {"teacher": list(teachers), "student": [student]}
    for models in sides.values():  # warm-up: first calls pay for allocations and kernel choices
        run_model(task, models[0], features[: batch_size * 2], batch_size, runtime.device, runtime.autocast)
    speed: dict[str, list[float]] = {"teacher": [], "student": []}
    for _ in range(rounds):
        for name, models in sides.items():
            speed[name].append(_throughput(task, models, features, batch_size, runtime))
    latency: dict[str, list[float]] = {"teacher": [], "student": []}
    for feature in features[:latency_examples]:
        for name, models in sides.items():
            latency[name].append(_latency_ms(task, models, feature, runtime))
    out: dict[str, Any] = {
        name: {
            "examples_per_second": round(statistics.median(speed[name]), 2),
            "latency_ms_p50": round(statistics.median(latency[name]), 3) if latency[name] else None,
        }
        for name in sides
    }
    out["speedup"] = round(out["student"]["examples_per_second"] / out["teacher"]["examples_per_second"], 3)
    if latency["teacher"]:
        out["latency_speedup"] = round(out["teacher"]["latency_ms_p50"] / out["student"]["latency_ms_p50"], 3)
    out.update(features=len(features), batch_size=batch_size, rounds=rounds,
               latency_examples=len(latency["student"]), device=str(runtime.device))  # fmt: skip
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
