"""The engine every caller shares: featurize -> run -> decode, and a task folder loaded into (task, model, tokenizer).

Training (evaluation, test predictions), the Predictor and the server all predict through these functions; each
adds only what is its own (the loss and the step; input dicts; the HTTP batcher). Below training, inference and
serving; above tasks.

Data flow: examples -> featurize() -> features (windows, each with "example_index") -> run_model() -> per-batch
outputs on the CPU, in run order -> task.decode() -> one prediction per example, in example order.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bertkit import folder as folder_format
from bertkit.data.collate import sorted_batches
from bertkit.data.feature_store import feature_lengths, in_order
from bertkit.runtime import pick_device
from bertkit.tasks import build_task
from bertkit.tasks.base import Feature, Task
from bertkit.tokenization import Tokenizer

logger = logging.getLogger(__name__)

Autocast = Callable[[], contextlib.AbstractContextManager]


def featurize(
    task: Task, examples: Sequence[Any], tokenizer: Tokenizer, max_seq_length: int, chunk: int = 2048
) -> list[Feature]:
    """Every feature (window) of every example, each tagged with its example_index."""
    out: list[Feature] = []
    for start in range(0, len(examples), chunk):
        part = examples[start : start + chunk]
        try:
            per_example = task.features_batch(part, tokenizer, max_seq_length)
        except ValueError as err:  # name the example that failed
            for e in part:
                try:
                    task.features(e, tokenizer, max_seq_length)
                except ValueError as one:
                    raise ValueError(f"{getattr(e, 'source', '') or 'an example'}: {one}") from one
            raise err
        for offset, feats in enumerate(per_example):
            for f in feats:
                f["example_index"] = start + offset
                out.append(f)
    return out


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
    }


def to_cpu(outputs: Any) -> Any:
    """Outputs (a tensor, a tuple / NamedTuple or dict of tensors) detached, as float32, on the CPU."""
    if isinstance(outputs, torch.Tensor):
        out = outputs.detach()
        return (out.float() if out.is_floating_point() else out).cpu()
    if isinstance(outputs, tuple) and hasattr(outputs, "_fields"):
        return type(outputs)(*(to_cpu(o) for o in outputs))
    if isinstance(outputs, tuple | list):
        return type(outputs)(to_cpu(o) for o in outputs)
    if isinstance(outputs, dict):
        return {k: to_cpu(v) for k, v in outputs.items()}
    return outputs


def run_model(
    task: Task,
    model: nn.Module,
    features: Sequence[Feature],
    batch_size: int,
    device: torch.device,
    autocast: Autocast = contextlib.nullcontext,
) -> tuple[list[Any], list[Feature]]:
    """Forward every feature in length-sorted batches -> (per-batch outputs on CPU, features in run order).

    Features from a store (bertkit.feature_cache) stream: one batch of feature dicts exists at a time, and the
    run order comes back as a view of the store, not as a list of every dict.
    """
    was_training = model.training
    model.eval()
    outputs, order = [], []
    with torch.inference_mode():
        for idx in sorted_batches(feature_lengths(features), batch_size):
            batch = to_device(task.collate([features[i] for i in idx]), device)
            with autocast():
                outputs.append(to_cpu(task.forward(model, batch)))
            order.extend(idx)
    model.train(was_training)
    return outputs, in_order(features, order)


def predict(
    task: Task,
    model: nn.Module,
    examples: Sequence[Any],
    features: Sequence[Feature],
    batch_size: int,
    device: torch.device,
    autocast: Autocast = contextlib.nullcontext,
) -> list[dict]:
    """run -> decode: one prediction per example, in example order (features from featurize(examples))."""
    outputs, run_order = run_model(task, model, features, batch_size, device, autocast)
    return task.decode(outputs, run_order, examples)


def check_length(max_seq_length: int, model: nn.Module) -> None:
    """Raise when max_seq_length exceeds the model's position table."""
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if positions is not None and max_seq_length > positions:
        raise ValueError(
            f"max_seq_length {max_seq_length} exceeds the model's max_position_embeddings {positions}; "
            f"use {positions} or less (use window_stride for longer documents)"
        )


def load_task(model_dir: str | Path) -> tuple[Task, folder_format.FolderInfo]:
    """The task saved in a model folder (its bertkit.json, checked against the folder's other files)."""
    info = folder_format.read_info(model_dir)
    try:
        task = build_task(info.task, dict(info.options))
    except ValueError as err:
        raise ValueError(
            f"{Path(model_dir) / folder_format.INFO_FILE}: {err}; retrain or restore the file"
        ) from err
    return task, info


def save_folder(
    output_dir: str | Path,
    task: Task,
    model: nn.Module,
    tokenizer: Tokenizer,
    max_seq_length: int,
    extra_info: Mapping[str, Any] | None = None,
) -> None:
    """A task folder: the weights and config.json, the tokenizer files, bertkit.json and labels.txt."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    info = folder_format.FolderInfo(
        task.name, task.to_json(), int(max_seq_length), extra=dict(extra_info or {})
    )
    folder_format.write_info(out, info)


@dataclass(eq=False)
class Engine:
    """A task with its model and tokenizer: examples in, predictions out (featurize -> run -> decode)."""

    task: Task
    model: nn.Module
    tokenizer: Tokenizer
    max_seq_length: int = 128
    batch_size: int = 64
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    autocast: Autocast = contextlib.nullcontext

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        self.model = self.model.to(self.device).eval()

    @classmethod
    def from_folder(
        cls,
        model_dir: str | Path,
        *,
        device: str | torch.device | None = None,
        max_seq_length: int | None = None,
        batch_size: int = 64,
    ) -> Engine:
        """Rebuild the task from model_dir/bertkit.json, load the weights (with the task's head) and the tokenizer."""
        folder = Path(model_dir)
        task, info = load_task(folder)
        model, _ = task.build_model(str(folder), from_finetuned=True)
        tokenizer = Tokenizer.from_pretrained(folder)
        length = max_seq_length or info.max_seq_length
        check_length(length, model)
        dev = device if isinstance(device, torch.device) else pick_device(device)
        return cls(task, model, tokenizer, length, batch_size, dev)

    def examples(self, inputs: Sequence[Mapping[str, Any]], source: str = "input") -> list[Any]:
        """Input dicts -> the task's examples; a bad one raises ValueError naming its position and the reason."""
        examples = []
        for i, record in enumerate(inputs):
            where = f"{source}[{i}]" if ":" not in source else source
            example = self.task.example_from_dict(record, where)
            reason = self.task.check(example, labelled=False)
            if reason:
                raise ValueError(f"{where}: {reason}")
            examples.append(example)
        return examples

    def featurize(self, examples: Sequence[Any]) -> list[Feature]:
        return featurize(self.task, examples, self.tokenizer, self.max_seq_length)

    def run(
        self, features: Sequence[Feature], batch_size: int | None = None
    ) -> tuple[list[Any], list[Feature]]:
        return run_model(
            self.task, self.model, features, batch_size or self.batch_size, self.device, self.autocast
        )

    def predict_features(
        self, examples: Sequence[Any], features: Sequence[Feature], batch_size: int | None = None
    ) -> list[dict]:
        """Predictions for examples whose features are already made (the server featurizes per request)."""
        outputs, run_order = self.run(features, batch_size)
        return self.task.decode(outputs, run_order, examples)

    def predict_examples(self, examples: Sequence[Any]) -> list[dict]:
        """One prediction per example, in example order (batched and length-sorted internally)."""
        return self.predict_features(examples, self.featurize(examples))
