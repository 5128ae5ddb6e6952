"""One flat options dict of a fine-tuning run (a --config file plus flags) split into its parts.

Light on purpose (no torch): the CLI imports it when it builds its parser (train, distill).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any

from bertkit.training.config import TrainConfig

# Keys of one flat options dict (a --config file plus flags) that are not training options.
DATA_KEYS = {"task", "data_dir", "train_file", "dev_file", "test_file", "dev_split", "reader", "fields",
             "task_options", "max_train_examples", "max_eval_examples", "rejects"}  # fmt: skip
FIELD_KEYS = ("text", "text_pair", "label", "header")  # reader fields
TASK_KEYS = ("problem_type", "label_separator", "threshold", "window_stride", "pooling", "main_metric")
RUN_KEYS = ("model", "output_dir", "do_train", "do_eval", "do_predict", "seeds")

# Help of the TrainConfig flags, shared by every command that trains (bertkit train, bertkit distill).
HELP = {
    "epochs": "passes over the training data (fractions allowed; default 3)",
    "max_steps": "stop after this many optimizer steps (overrides --epochs)",
    "batch_size": "examples per micro-batch and process (default 32); global batch = this x grad-accum x processes",
    "eval_batch_size": "examples per evaluation batch (default 64)",
    "grad_accum": "micro-batches per optimizer step (default 1)",
    "lr": "peak learning rate (default 5e-5)",
    "weight_decay": "AdamW decoupled weight decay, never on bias/LayerNorm (default 0.01)",
    "bias_correction": "Adam bias correction; --no-bias-correction is Google's AdamWeightDecayOptimizer",
    "schedule": "linear, cosine or constant after warmup (default linear)",
    "warmup_ratio": "fraction of the steps spent warming up (default 0.1)",
    "warmup_steps": "warmup steps (overrides --warmup-ratio)",
    "max_grad_norm": "clip the global gradient norm (default 1.0)",
    "max_seq_length": "tokens per sequence or window, [CLS]/[SEP] included (default 128)",
    "precision": "fp32, bf16 (autocast on CPU or CUDA) or fp16 (CUDA, with a gradient scaler)",
    "gradient_checkpointing": "recompute activations in backward: less memory, ~30%% more compute",
    "group_by_length": "batches of similar lengths (less padding; default on)",
    "seed": "seed for initialisation, dropout and data order (default 42)",
    "eval_steps": "evaluate every N steps (default: once per epoch)",
    "save_steps": "resumable checkpoint every N steps (default: at each evaluation, at least every 500)",
    "save_best": "keep the model of the best evaluation by the main metric (default on)",
    "early_stopping_patience": "stop after N evaluations without improvement",
    "device": "cpu, cuda, cuda:1, ... (default: CUDA when available)",
    "num_threads": "CPU threads for torch (default: torch's choice)",
    "progress": "progress bar with loss, lr and examples/s (default on)",
    "resume": "continue from OUT/checkpoints after a crash (default on)",
    "feature_cache": "tokenize once into this folder and reuse it in later runs and for every seed: 'auto' "
    "(default: ~/.cache/bertkit/features), a folder, or 'off' (features as lists in memory)",
}


def column(value: str) -> int | str:
    """'3' or '-1' -> an index; anything else is a header name / JSON field."""
    return int(value) if re.fullmatch(r"-?\d+", value) else value


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One flat options dict -> (DataSpec fields, TrainConfig fields, run options: model, output_dir, ...).

    Reader fields (text, label, ...) go to DataSpec.fields, task options (labels as a list or "a,b", ...) to
    DataSpec.task_options; whatever is left is for TrainConfig, which rejects unknown keys.
    """
    options = dict(options)
    fields = dict(options.pop("fields", {}) or {})
    for key in FIELD_KEYS:
        if key in options:
            fields[key] = options.pop(key)
    task_options = dict(options.pop("task_options", {}) or {})
    for key in TASK_KEYS:
        if key in options:
            task_options[key] = options.pop(key)
    if "labels" in options:
        labels = options.pop("labels")
        task_options["labels"] = labels.split(",") if isinstance(labels, str) else list(labels)
    data = {k: options.pop(k) for k in list(options) if k in DATA_KEYS}
    data["fields"], data["task_options"] = fields, task_options
    run = {k: options.pop(k) for k in RUN_KEYS if k in options}
    return data, options, run


def add_train_config_flags(
    group: argparse._ArgumentGroup, help_overrides: dict[str, str] | None = None
) -> None:
    """One --flag per TrainConfig field (booleans as --x/--no-x), default None so a --config file or the
    dataclass default applies; help from HELP unless help_overrides names the field."""
    overrides = help_overrides or {}
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        text = overrides.get(f.name, HELP.get(f.name))
        if f.type in ("bool", bool):
            group.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            kind = {"int": int, "float": float, "int | None": int, "float | None": float}.get(
                str(f.type), str
            )
            group.add_argument(flag, dest=f.name, type=kind, default=None, help=text)
