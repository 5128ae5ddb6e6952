"""The teachers of a distillation: loaded from their fine-tuned folders, run once over the training windows
(their mean soft targets carried in the features), scored on the dev set, and labelling unlabelled text
(data distillation: --unlabeled, whose examples take the ensemble's decoded predictions as their labels).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bertkit.data.datafile import json_records
from bertkit.engine import featurize, load_task, run_model
from bertkit.folder import INFO_FILE, has_info
from bertkit.runtime import Runtime
from bertkit.tasks.base import Feature, Task
from bertkit.textfile import text_lines
from bertkit.tokenization import Tokenizer
from bertkit.training.config import TrainConfig
from bertkit.training.distill_targets import mean_outputs, soft_targets_for


@dataclass(frozen=True)
class Distilled:
    """A training example with its features already made and carrying the teachers' soft targets."""

    example: Any
    features: tuple[Feature, ...]


def load_teachers(folders: Sequence[str]) -> tuple[Task, list[nn.Module]]:
    """The teachers' common task (from their bertkit.json) and their models, in eval mode."""
    tasks = []
    for folder in folders:
        if not has_info(folder):
            raise FileNotFoundError(
                f"--teacher {folder}: no {INFO_FILE}; a teacher is a fine-tuned folder (the output of bertkit train)"
            )
        tasks.append(load_task(folder)[0])
    for folder, task in zip(folders[1:], tasks[1:], strict=True):
        if task != tasks[0]:
            raise ValueError(
                f"--teacher {folder} was trained for {task}, --teacher {folders[0]} for {tasks[0]}: an ensemble "
                "needs one task with the same labels and options"
            )
    task = tasks[0]
    return task, [task.build_model(str(f), from_finetuned=True)[0].eval() for f in folders]


def teacher_pass(task: Task, teachers: Sequence[nn.Module], features: Sequence[Feature], temperature: float,
                 config: TrainConfig, runtime: Runtime) -> tuple[list[Any], list[Feature]]:  # fmt: skip
    """Run every teacher once over the features; each feature gets "soft" (the teachers' mean soft target).
    -> (the teachers' mean outputs per batch, the features in run order), for decode()."""
    soft = soft_targets_for(task)
    per_teacher = [
        run_model(task, t, features, config.eval_batch_size, runtime.device, runtime.autocast)
        for t in teachers
    ]
    order = per_teacher[0][1]
    outputs, start = [], 0
    for k in range(len(per_teacher[0][0])):
        batch_outputs = [p[0][k] for p in per_teacher]
        probs = torch.stack([soft.probabilities(o, temperature) for o in batch_outputs]).mean(0)
        rows = order[start : start + probs.shape[0]]
        for feature, row in zip(rows, soft.rows(probs, rows), strict=True):
            feature["soft"] = row.clone()
        start += probs.shape[0]
        outputs.append(mean_outputs(batch_outputs))
    return outputs, order


def teacher_metrics(task: Task, teachers: Sequence[nn.Module], examples: Sequence[Any], tokenizer: Tokenizer,
                    config: TrainConfig, runtime: Runtime) -> tuple[dict[str, float], list[dict[str, float]]]:  # fmt: skip
    """(the ensemble's dev metrics: decoded from the mean of the teachers' outputs, each teacher's)."""
    features = featurize(task, examples, tokenizer, config.max_seq_length)
    singles = []
    if len(teachers) > 1:
        for t in teachers:
            outputs, order = run_model(
                task, t, features, config.eval_batch_size, runtime.device, runtime.autocast
            )
            singles.append(task.metrics(task.decode(outputs, order, examples), examples))
    outputs, order = teacher_pass(task, teachers, features, 1.0, config, runtime)
    return task.metrics(task.decode(outputs, order, examples), examples), singles


def read_unlabeled(path: str | Path, task: Task, limit: int | None = None) -> list[Any]:
    """Plain text (one text per line; blank lines skipped) or JSON lines (.jsonl/.json: the task's input
    fields, e.g. {"text": ...}, {"text": ..., "text_pair": ...} or {"tokens": [...]}), gzipped or not
    -> unlabelled examples."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--unlabeled {path} does not exist")
    if task.name not in ("classification", "tagging"):
        raise ValueError(f"--unlabeled works for classification and tagging, not {task.name}")
    out = []
    for where, record in _unlabeled_records(path):
        example = task.example_from_dict(record, where)
        reason = task.check(example, labelled=False) if hasattr(task, "check") else None
        if reason:
            raise ValueError(f"{where}: {reason}")
        out.append(example)
        if limit is not None and len(out) >= limit:
            break
    return out


def _unlabeled_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """("file:line", the task's input fields) per non-blank line; a line that is not text (or, in JSON lines,
    not a JSON object) raises with its place. Labels a JSON line carries are dropped: the teachers label it."""
    if path.name.removesuffix(".gz").endswith((".jsonl", ".json")):
        for source, _, obj, problem in json_records(path, "--unlabeled file"):
            if problem:
                raise ValueError(f"{source}: {problem}")
            yield source, {k: v for k, v in obj.items() if k not in ("label", "tags", "entities")}
        return
    for number, line in text_lines(path, "--unlabeled file"):
        if line.strip():
            yield f"{path}:{number}", {"text": line}


def with_teacher_labels(task: Task, examples: Sequence[Any], predictions: Sequence[dict]) -> list[Any]:
    """Unlabelled examples with the teachers' decoded predictions as their labels."""
    if task.name == "tagging":
        return [
            dataclasses.replace(e, tags=tuple(p["tags"])) for e, p in zip(examples, predictions, strict=True)
        ]
    key = {"regression": "score", "multi_label_classification": "labels"}.get(task.problem_type, "label")
    labels = [tuple(p[key]) if key == "labels" else p[key] for p in predictions]
    return [dataclasses.replace(e, label=label) for e, label in zip(examples, labels, strict=True)]


def distilled_examples(task: Task, teachers: Sequence[nn.Module], labelled: Sequence[Any], unlabeled: Sequence[Any],
                       tokenizer: Tokenizer, temperature: float, config: TrainConfig,
                       runtime: Runtime) -> list[Distilled]:  # fmt: skip
    """Training examples carrying their features and soft targets; unlabelled ones also the teachers' labels."""
    out = []
    for examples, needs_labels in ((labelled, False), (unlabeled, True)):
        if not examples:
            continue
        features = featurize(task, examples, tokenizer, config.max_seq_length)
        outputs, order = teacher_pass(task, teachers, features, temperature, config, runtime)
        if needs_labels:
            examples = with_teacher_labels(task, examples, task.decode(outputs, order, examples))
            relabelled = featurize(task, examples, tokenizer, config.max_seq_length)
            for old, new in zip(features, relabelled, strict=True):
                assert old["input_ids"] == new["input_ids"], "featurization is deterministic"
                new["soft"] = old["soft"]
            features = relabelled
        grouped: list[list[Feature]] = [[] for _ in examples]
        for f in features:
            grouped[f.pop("example_index")].append(f)
        out.extend(Distilled(e, tuple(g)) for e, g in zip(examples, grouped, strict=True))
    return out
