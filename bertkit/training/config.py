"""TrainConfig: every knob of a fine-tuning run, with the BERT recipe as defaults; saved as train_config.json."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bertkit.textfile import load_json_object

SCHEDULES = ("linear", "cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters and engine options. batch_size is per process and per micro-batch:
    the global batch is batch_size x grad_accum x world size."""

    epochs: float = 3.0
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 32
    eval_batch_size: int = 64
    grad_accum: int = 1
    lr: float = 5e-5
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    bias_correction: bool = True  # False = Google's AdamWeightDecayOptimizer (no bias correction)
    schedule: str = "linear"  # warmup then linear decay / cosine decay / constant
    warmup_ratio: float = 0.1
    warmup_steps: int | None = None  # overrides warmup_ratio when set
    max_grad_norm: float | None = 1.0
    max_seq_length: int = 128
    precision: str = "fp32"  # fp32 | bf16 (CPU and CUDA autocast) | fp16 (CUDA, with a gradient scaler)
    gradient_checkpointing: bool = False
    group_by_length: bool = True
    seed: int = 42
    eval_steps: int | None = None  # evaluate every N optimizer steps; None = once per epoch
    save_steps: int | None = (
        None  # resumable checkpoint every N steps; None = at each evaluation, >= every 500
    )
    save_best: bool = True  # keep the model of the best evaluation (by the task's main metric)
    early_stopping_patience: int | None = None  # stop after this many evaluations without improvement
    log_steps: int = 20
    device: str | None = None  # None = CUDA when available, else CPU
    num_threads: int | None = None
    progress: bool = True
    resume: bool = True  # continue from output_dir/checkpoints when one is there
    # tokenized features on disk, reused by later runs and every seed: "auto" (~/.cache/bertkit/features), a
    # folder, or "off" (lists in memory); features with no compact form (a custom task's strings) stay in memory
    feature_cache: str = "auto"

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("batch_size", "eval_batch_size", "grad_accum", "max_seq_length", "log_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs <= 0 and not self.max_steps:
            raise ValueError(f"epochs must be > 0 (got {self.epochs}) unless max_steps is set")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("eval_steps", "save_steps", "max_steps", "early_stopping_patience"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or unset, got {value}")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> TrainConfig:
        """Strict: an unknown key raises, naming the source and the known keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"{source}: unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from err

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        data = load_json_object(path, "a JSON object of training options", "training config")
        return cls.from_dict(data, source=str(path))
