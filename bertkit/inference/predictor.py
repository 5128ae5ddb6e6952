"""Predictor: load a fine-tuned model folder once, then predict batches of JSON inputs for any task.

Also the two engine helpers that training's evaluation shares: featurize() and run_model().
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bertkit.data.collate import sorted_batches
from bertkit.runtime import compile_encoder
from bertkit.tasks import build_task
from bertkit.tasks.base import Feature, Task
from bertkit.tokenization import Tokenizer

logger = logging.getLogger(__name__)

MODEL_INFO = "bertkit.json"


def featurize(
    task: Task, examples: Sequence[Any], tokenizer: Tokenizer, max_seq_length: int, chunk: int = 2048
) -> list[Feature]:
    """Every feature (window) of every example, each tagged with its example_index."""
    out: list[Feature] = []
    batch_fn = getattr(task, "features_batch", None)
    for start in range(0, len(examples), chunk):
        part = examples[start : start + chunk]
        try:
            if batch_fn is not None:
                per_example = batch_fn(part, tokenizer, max_seq_length)
            else:
                per_example = [task.features(e, tokenizer, max_seq_length) for e in part]
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
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> tuple[list[Any], list[Feature]]:
    """Forward every feature in length-sorted batches -> (per-batch outputs on CPU, features in run order)."""
    was_training = model.training
    model.eval()
    outputs, run_order = [], []
    lengths = [len(f["input_ids"]) for f in features]
    with torch.inference_mode():
        for idx in sorted_batches(lengths, batch_size):
            chunk = [features[i] for i in idx]
            batch = to_device(task.collate(chunk), device)
            with autocast():
                outputs.append(to_cpu(task.forward(model, batch)))
            run_order.extend(chunk)
    model.train(was_training)
    return outputs, run_order


class Predictor:
    """A fine-tuned model folder, loaded once. predict(list of dicts) -> list of dicts, in input order."""

    def __init__(
        self,
        task: Task,
        model: nn.Module,
        tokenizer: Tokenizer,
        max_seq_length: int = 128,
        batch_size: int = 64,
        device: torch.device | str = "cpu",
    ):
        self.task = task
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        *,
        batch_size: int = 64,
        device: str | None = None,
        max_seq_length: int | None = None,
        compile: bool = False,  # noqa: A002 - torch.compile's own name
    ) -> Predictor:
        """Rebuild the task from model_dir/bertkit.json, load the weights and the tokenizer.

        compile=True compiles the encoder (runtime.compile_encoder, with its warm-up) before returning.
        """
        folder = Path(model_dir)
        info_path = folder / MODEL_INFO
        if not info_path.is_file():
            raise FileNotFoundError(
                f"{info_path} not found: {folder} is not a bertkit fine-tuned model folder (bertkit train writes "
                "bertkit.json beside config.json and model.safetensors)"
            )
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            task = build_task(info["task"], info.get("options") or {})
        except (json.JSONDecodeError, KeyError) as err:
            raise ValueError(
                f"{info_path}: not a valid bertkit.json ({err}); retrain or restore the file"
            ) from err
        model, _ = task.build_model(str(folder), from_finetuned=True)
        tokenizer = Tokenizer.from_pretrained(folder)
        dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        length = max_seq_length or int(info.get("max_seq_length", 128))
        positions = getattr(getattr(model, "config", None), "max_position_embeddings", length)
        if length > positions:
            raise ValueError(
                f"max_seq_length {length} exceeds the model's max_position_embeddings {positions}"
            )
        predictor = cls(task, model, tokenizer, length, batch_size, dev)
        if compile:
            compile_encoder(predictor.model)
        return predictor

    def examples(self, inputs: Sequence[Mapping[str, Any]], source: str = "input") -> list[Any]:
        """Input dicts -> the task's examples; a bad one raises ValueError naming its position and the reason."""
        examples = []
        check = getattr(self.task, "check", None)
        for i, record in enumerate(inputs):
            where = f"{source}[{i}]" if ":" not in source else source
            example = self.task.example_from_dict(record, where)
            reason = check(example, labelled=False) if check is not None else None
            if reason:
                raise ValueError(f"{where}: {reason}")
            examples.append(example)
        return examples

    def predict_examples(self, examples: Sequence[Any]) -> list[dict]:
        features = featurize(self.task, examples, self.tokenizer, self.max_seq_length)
        outputs, run_order = run_model(self.task, self.model, features, self.batch_size, self.device)
        return self.task.decode(outputs, run_order, examples)

    def predict(self, inputs: Sequence[Mapping[str, Any]]) -> list[dict]:
        """One prediction per input dict, in input order (batched and length-sorted internally)."""
        return self.predict_examples(self.examples(inputs))
