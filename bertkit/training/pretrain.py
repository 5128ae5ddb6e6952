"""A pretraining run (`bertkit pretrain`): shards -> MLM (+ NSP) training on the shared engine -> held-out metrics.

From a checkpoint (continued pretraining; heads it lacks are initialised and named) or from scratch with a
model config and a vocab. Held-out text is either separate shards or a fraction of the documents. The held-out
MLM accuracy and perplexity are measured before and after training and written to pretrain_report.json.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bertkit import runtime as rt_mod
from bertkit.data.shards import load_shards
from bertkit.model.config import BertConfig
from bertkit.runtime import Runtime
from bertkit.tasks.pretraining import PretrainingTask, shard_examples, split_by_document
from bertkit.tokenization import Tokenizer
from bertkit.training.config import TrainConfig
from bertkit.training.loop import evaluate, train
from bertkit.weights.load import model_folder, resolve_model_path
from bertkit.weights.vocab_extend import ADDED_FILE, read_added_ids, word_embeddings

logger = logging.getLogger(__name__)

REPORT_FILE = "pretrain_report.json"
# Pretraining's own defaults where they differ from fine-tuning's TrainConfig (MLM from a checkpoint or from
# scratch wants a larger learning rate than fine-tuning's 5e-5).
PRETRAIN_DEFAULTS: dict[str, Any] = {"lr": 1e-4}


def pretrain_config(options: dict[str, Any] | None = None, source: str = "<pretrain options>") -> TrainConfig:
    """TrainConfig for pretraining: PRETRAIN_DEFAULTS, then the given options (strict: unknown keys raise)."""
    return TrainConfig.from_dict({**PRETRAIN_DEFAULTS, **(options or {})}, source)


@dataclass(frozen=True)
class PretrainSpec:
    """What to pretrain on and from: shards, held-out data, and a checkpoint or a fresh config + vocab."""

    data: str
    model: str | None = "minilm"  # checkpoint to continue from (ignored when model_config is set)
    model_config: str | None = None  # bert_config.json / config.json for training from scratch
    vocab: str | None = None  # vocab.txt (or a folder with one) for training from scratch
    do_lower_case: bool | None = None
    dev_data: str | None = None
    dev_fraction: float | None = 0.05
    next_sentence: bool = True
    max_train_instances: int | None = None
    max_dev_instances: int | None = None
    new_tokens_only: bool = False  # train only the rows `bertkit vocab extend` added (and the heads)


def train_only_rows(model: nn.Module, rows: Sequence[int]) -> None:
    """Freeze the encoder except the given word-embedding rows; heads stay trainable.

    A gradient hook zeroes every other row, so with weight decay 0 Adam never moves them: the encoder's
    outputs for text without the new tokens stay exactly as they were.
    """
    if not rows:
        raise ValueError(
            "no added tokens to train: this model folder has no extended_vocab.json (run bertkit vocab extend)"
        )
    table = word_embeddings(model).weight  # type: ignore[arg-type]
    for name, param in model.named_parameters():
        param.requires_grad = param.requires_grad and (param is table or not name.startswith("bert."))
    keep = torch.zeros(table.shape[0], 1, dtype=table.dtype, device=table.device)
    keep[list(rows)] = 1.0
    table.register_hook(lambda grad: grad * keep.to(grad.device))


def _tokenizer(spec: PretrainSpec) -> Tokenizer:
    if spec.model_config is None:
        return Tokenizer.from_pretrained(spec.model)  # type: ignore[arg-type]
    if spec.vocab is None:
        raise ValueError(
            "training from scratch (--model-config) needs --vocab: the vocab.txt the shards were made with"
        )
    vocab = Path(spec.vocab)
    if vocab.is_dir():
        return Tokenizer.from_pretrained(vocab, do_lower_case=spec.do_lower_case)
    if spec.do_lower_case is None:
        raise ValueError(
            f"--vocab {vocab} is a file, which does not record its casing: add --lower or --cased"
        )
    return Tokenizer.from_vocab(vocab, do_lower_case=spec.do_lower_case)


def _model_config(spec: PretrainSpec, tokenizer: Tokenizer) -> dict[str, Any] | None:
    if spec.model_config is None:
        return None
    config = BertConfig.from_json(spec.model_config)
    if config.vocab_size != tokenizer.vocab_size:
        raise ValueError(
            f"{spec.model_config} says vocab_size={config.vocab_size} but {spec.vocab} has "
            f"{tokenizer.vocab_size} tokens; make them agree"
        )
    return config.to_hf_dict()


def pretrain(
    spec: PretrainSpec, config: TrainConfig, output_dir: str | Path, runtime: Runtime | None = None
) -> dict:
    """Train, save the model folder in output_dir, and return the report (held-out metrics before and after).

    Without a runtime, sets the process up (threads, seeds) before anything random is built, so the same seed
    gives the same weights, from scratch too, and stops it at the end.
    """
    if runtime is not None:
        return _pretrain(spec, config, output_dir, runtime)
    runtime = rt_mod.setup(config.device, config.precision, config.seed, config.num_threads)
    try:
        return _pretrain(spec, config, output_dir, runtime)
    finally:
        rt_mod.stop(runtime)


def _pretrain(spec: PretrainSpec, config: TrainConfig, output_dir: str | Path, runtime: Runtime) -> dict:
    tokenizer = _tokenizer(spec)
    task = PretrainingTask(spec.next_sentence, _model_config(spec, tokenizer))
    shards = load_shards(spec.data, tokenizer)
    # instances were cut to this length when the shards were written; padding to anything else is waste
    config = config.replace(max_seq_length=shards.meta["config"]["max_seq_length"])
    if spec.dev_data is not None:
        train_rows, dev_examples = None, shard_examples(load_shards(spec.dev_data, tokenizer))
    elif spec.dev_fraction:
        train_rows, dev_rows = split_by_document(shards, spec.dev_fraction, config.seed)
        dev_examples = shard_examples(shards, dev_rows)
    else:
        train_rows, dev_examples = None, []
    train_examples = shard_examples(shards, train_rows)
    if spec.max_train_instances:
        train_examples = train_examples[: spec.max_train_instances]
    if spec.max_dev_instances:
        dev_examples = dev_examples[: spec.max_dev_instances]
    model, load_report = task.build_model(spec.model or "")
    if spec.new_tokens_only:
        if spec.model_config is not None:
            raise ValueError("new_tokens_only continues an extended checkpoint; it cannot train from scratch")
        train_only_rows(model, read_added_ids(model_folder(resolve_model_path(spec.model))))  # type: ignore[arg-type]
        config = config.replace(weight_decay=0.0)
    if load_report is not None and load_report.initialized:
        logger.warning("newly initialised for pretraining: %s", ", ".join(load_report.initialized))
    before: dict[str, float] = {}
    if dev_examples and runtime.is_main:
        model.to(runtime.device)
        before, _ = evaluate(task, model, tokenizer, dev_examples, config, runtime, keep_predictions=False)
        logger.info("held-out before training: %s", before)
    result = train(task, model, tokenizer, train_examples, dev_examples or None, config, output_dir, runtime)
    if spec.model_config is None and runtime.is_main:
        source = model_folder(resolve_model_path(spec.model))  # type: ignore[arg-type]
        if (source / ADDED_FILE).is_file():  # the record of `bertkit vocab extend` travels with the weights
            shutil.copyfile(source / ADDED_FILE, Path(output_dir) / ADDED_FILE)
    report = {
        "train_instances": len(train_examples),
        "dev_instances": len(dev_examples),
        "initialized": list(load_report.initialized) if load_report is not None else "all (from scratch)",
        "before": before,
        "after": result.metrics,
        "steps": result.steps,
        "train_seconds": round(result.train_seconds, 2),
    }
    Path(output_dir, REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
