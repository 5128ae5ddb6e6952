"""Checkpoints: resumable training state written atomically; and the run's model folder (engine.save_folder).

A resumable checkpoint is output_dir/checkpoints/step-NNNNNNNN/ with model.safetensors, optimizer.pt,
rng.pt (every rank's RNG state) and state.json (step, epoch, position in the epoch, best metric, config).
It is written under a temporary name and renamed into place, so a crash or kill -9 at any moment leaves
either the previous checkpoint or the new one, never a half-written one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from bertkit.engine import save_folder
from bertkit.folder import TRAIN_CONFIG_FILE
from bertkit.textfile import load_json_object
from bertkit.training.config import TrainConfig

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
_STEP_DIR = re.compile(r"step-(\d+)")
# Options that change nothing in the computation: a resumed run may differ in these.
_COSMETIC = {
    "progress",
    "device",
    "num_threads",
    "resume",
    "log_steps",
    "eval_batch_size",
    "eval_steps",
    "save_steps",
}


@dataclass
class TrainState:
    """Where training stands; everything the loop needs, besides tensors, to continue exactly."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # epoch in progress
    epoch_step: int = 0  # optimizer steps done within that epoch
    best_metric: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0
    stopped_early: bool = False
    examples_seen: int = 0
    train_seconds: float = 0.0
    num_features: int = 0
    history: list[dict] = field(default_factory=list)  # evaluation records

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(path: Path, write) -> None:  # noqa: ANN001 - a callable taking the path
    write(path)
    with path.open("rb") as f:
        os.fsync(f.fileno())


def save_checkpoint(
    output_dir: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    config: TrainConfig,
    rng_states: list[dict],
    scaler: Any = None,
    keep: int = 1,
) -> Path:
    """Write checkpoints/step-N atomically, then delete all but the `keep` newest. Returns its path."""
    root = Path(output_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step:08d}"
    tmp = root / f".tmp-step-{state.step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _write_file(tmp / "model.safetensors", lambda p: save_file(tensors, str(p)))
    extra = {
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
    }
    _write_file(tmp / "optimizer.pt", lambda p: torch.save(extra, p))
    _write_file(tmp / "rng.pt", lambda p: torch.save(rng_states, p))
    info = {"state": state.to_dict(), "config": config.to_dict()}
    _write_file(tmp / "state.json", lambda p: p.write_text(json.dumps(info, indent=1), encoding="utf-8"))
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    for old in list_checkpoints(output_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    logger.debug("checkpoint written: %s", final)
    return final


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary, half-written folders are ignored)."""
    root = Path(output_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [
        (int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP_DIR.fullmatch(p.name))
    ]
    return [p for _, p in sorted(found)]


def check_compatible(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    """A resumed run must compute the same thing: raise when a non-cosmetic option differs."""
    current = config.to_dict()
    diffs = [k for k in current if k not in _COSMETIC and saved.get(k) != current[k]]
    if diffs:
        shown = ", ".join(f"{k}: checkpoint {saved.get(k)!r}, now {current[k]!r}" for k in diffs)
        raise ValueError(
            f"{path} was written with other training options ({shown}); resume with the same options, "
            "use a new --output-dir, or pass --no-resume to start over"
        )


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig, scaler: Any = None
) -> tuple[TrainState, list[dict]]:
    """Restore model and optimizer in place; returns (TrainState, per-rank RNG states)."""
    expected = "a checkpoint's state; the checkpoint is damaged: delete it to resume from an earlier one"
    info = load_json_object(path / "state.json", expected, "checkpoint state")
    check_compatible(info["config"], config, path)
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    extra = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(extra["optimizer"])
    if scaler is not None and extra.get("scaler") is not None:
        scaler.load_state_dict(extra["scaler"])
    rng = torch.load(path / "rng.pt", map_location="cpu", weights_only=False)
    return TrainState(**info["state"]), rng


def remove_checkpoints(output_dir: str | Path) -> None:
    shutil.rmtree(Path(output_dir) / CHECKPOINTS, ignore_errors=True)


def save_model_folder(
    output_dir: str | Path,
    model: nn.Module,
    tokenizer: Any,
    task: Any,
    config: TrainConfig,
    extra_info: dict[str, Any] | None = None,
) -> None:
    """The model folder (bertkit.folder describes it: weights, tokenizer, bertkit.json, labels.txt) plus
    train_config.json, the options of this run."""
    save_folder(output_dir, task, model, tokenizer, config.max_seq_length, extra_info)
    config.save(Path(output_dir) / TRAIN_CONFIG_FILE)
