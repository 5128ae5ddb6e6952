"""What a run leaves to read: metrics.jsonl while it trains; metrics.json and PNG plots at the end.

matplotlib (the 'report' extra) is imported only here, only when plotting.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

logger = logging.getLogger(__name__)

METRICS_LOG = "metrics.jsonl"
METRICS = "metrics.json"


class MetricsLog:
    """Appends one JSON object per line to output_dir/metrics.jsonl ("type": "train" or "eval")."""

    def __init__(self, output_dir: str | Path, resume_step: int = 0, enabled: bool = True):
        self.path = Path(output_dir) / METRICS_LOG
        self.enabled = enabled
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [r for r in read_log(self.path) if r.get("step", 0) <= resume_step] if resume_step else []
        # On resume, records written after the checkpoint are dropped: the resumed run writes them again.
        with self.path.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def read_log(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill; the resumed run rewrites it
    return records


def write_metrics(output_dir: str | Path, metrics: dict[str, Any]) -> Path:
    path = Path(output_dir) / METRICS
    path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return path


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed, so no report plots; pip install 'bertkit[report]'")
        return None
    return plt


def plot_learning_curves(records: Sequence[dict], main_metric: str, path: str | Path) -> Path | None:
    """Training loss and learning rate by step, and the dev metrics by step, in one PNG."""
    plt = _pyplot()
    if plt is None:
        return None
    train = [r for r in records if r.get("type") == "train"]
    evals = [r for r in records if r.get("type") == "eval"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps = [r["step"] for r in train]
        axes[0].plot(steps, [r["loss"] for r in train], label="train loss")
        axes[0].set_xlabel("step")
        axes[0].set_ylabel("loss")
        lr_axis = axes[0].twinx()
        lr_axis.plot(steps, [r["lr"] for r in train], color="tab:gray", linestyle=":", label="lr")
        lr_axis.set_ylabel("learning rate")
    if evals:
        steps = [r["step"] for r in evals]
        keys = [k for k in evals[-1] if isinstance(evals[-1][k], float) and k not in ("epoch", "seconds")]
        for key in sorted(keys, key=lambda k: k != main_metric):
            axes[1].plot(
                steps,
                [r.get(key, np.nan) for r in evals],
                marker="o",
                label=key,
                linewidth=2 if key == main_metric else 1,
            )
        axes[1].set_xlabel("step")
        axes[1].set_ylabel("dev")
        axes[1].legend(fontsize="small")
    axes[0].set_title("training")
    axes[1].set_title(f"evaluation (main: {main_metric})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: str | Path) -> Path | None:
    """Confusion matrix (rows true, columns predicted) with counts in the cells."""
    plt = _pyplot()
    if plt is None:
        return None
    n = len(labels)
    size = max(4.0, 0.6 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = matrix.max() if matrix.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(int(matrix[i, j])),
                ha="center",
                va="center",
                color="white" if matrix[i, j] > top / 2 else "black",
            )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_report(
    output_dir: str | Path, task: Any, predictions: Sequence[dict] | None, examples: Sequence[Any] | None
) -> list[Path]:
    """learning_curves.png from metrics.jsonl, and confusion_matrix.png when the task gives one."""
    out = Path(output_dir)
    written = []
    curves = plot_learning_curves(read_log(out / METRICS_LOG), task.main_metric, out / "learning_curves.png")
    if curves:
        written.append(curves)
    if predictions is not None and examples:
        matrix = task.confusion(predictions, examples)
        if matrix is not None:
            path = plot_confusion(matrix, list(task.labels), out / "confusion_matrix.png")
            if path:
                written.append(path)
    return written


class LossWindow:
    """Mean loss and speed over the steps since the last log line (the loss is summed on the device: no sync)."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), device=device)
        self.steps, self.examples, self.seconds = 0, 0, 0.0

    def add(self, loss: Tensor, examples: int, seconds: float) -> None:
        self.loss += loss
        self.steps += 1
        self.examples += examples
        self.seconds += seconds

    def record(self, state: Any, lr: float) -> dict[str, Any]:  # state: a TrainState
        """The log record of the window (then empty); raises for a loss that is not finite."""
        mean_loss = float(self.loss) / self.steps
        if not math.isfinite(mean_loss):
            raise ValueError(
                f"the training loss is {mean_loss} at step {state.step}: lower --lr, keep --max-grad-norm, "
                "or train in fp32"
            )
        record = {"type": "train", "step": state.step, "epoch": state.epoch, "loss": mean_loss, "lr": lr,
                  "examples_per_second": self.examples / max(self.seconds, 1e-9)}  # fmt: skip
        self.loss.zero_()
        self.steps, self.examples, self.seconds = 0, 0, 0.0
        return record
