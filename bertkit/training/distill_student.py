"""The student of a distillation: a teacher with a subset of its layers, another (smaller) model folder, or a
config (random init). Whatever its encoder, its task head starts from the teacher's where the shapes allow.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bertkit.model.bert import BertModel
from bertkit.model.config import BertConfig

logger = logging.getLogger(__name__)

_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
_TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json")


def parse_layers(text: str) -> int | tuple[int, ...]:
    """'3' -> 3 (a count: layers spread evenly); '0,2,4' -> (0, 2, 4) (the teacher's layers by index)."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts or not all(p.lstrip("-").isdigit() for p in parts):
        raise ValueError(
            f"--student-layers {text!r}: give a count (3) or comma-separated layer indices (0,2,4)"
        )
    if len(parts) == 1 and "," not in str(text):
        return int(parts[0])
    return tuple(int(p) for p in parts)


def layer_indices(layers: int | Sequence[int], num_layers: int) -> list[int]:
    """Which teacher layers the student keeps. A count N takes every (num_layers / N)-th layer from the bottom,
    as DistilBERT took every other one.

    Example: layer_indices(3, 6) -> [0, 2, 4]; layer_indices(2, 6) -> [0, 3]; layer_indices((1, 5), 6) -> [1, 5]
    """
    if isinstance(layers, int):
        if not 1 <= layers <= num_layers:
            raise ValueError(
                f"--student-layers {layers}: the teacher has {num_layers} layers; pick 1..{num_layers}"
            )
        return [i * num_layers // layers for i in range(layers)]
    chosen = list(layers)
    bad = [i for i in chosen if not 0 <= i < num_layers]
    if bad or not chosen:
        raise ValueError(f"--student-layers {chosen}: layer indices must lie in 0..{num_layers - 1}")
    if sorted(set(chosen)) != chosen:
        raise ValueError(f"--student-layers {chosen}: give distinct indices in increasing order")
    return chosen


def encoder_of(model: nn.Module) -> BertModel:
    """The BertModel inside a task model (every bertkit head model keeps it as .bert)."""
    encoder = getattr(model, "bert", None)
    if not isinstance(encoder, BertModel):
        raise ValueError(f"{type(model).__name__} has no BERT encoder (.bert); it cannot be distilled")
    return encoder


def _set_config(model: nn.Module, old: BertConfig, new: BertConfig) -> None:
    for module in model.modules():
        if getattr(module, "config", None) is old:
            module.config = new


def student_from_layers(teacher: nn.Module, layers: int | Sequence[int]) -> tuple[nn.Module, list[int]]:
    """A copy of the teacher keeping only the chosen encoder layers (embeddings, pooler and head included)."""
    encoder = encoder_of(teacher)
    keep = layer_indices(layers, len(encoder.encoder.layers))
    student = copy.deepcopy(teacher)
    inner = encoder_of(student)
    inner.encoder.keep_layers(keep)
    old = inner.config
    _set_config(student, old, dataclasses.replace(old, num_hidden_layers=len(keep)))
    return student, keep


def copy_head(teacher: nn.Module, student: nn.Module) -> list[str]:
    """Copy every non-encoder parameter of the teacher whose name and shape the student shares; -> the names."""
    source = teacher.state_dict()
    target = student.state_dict()
    copied = {
        k: v for k, v in source.items()
        if not k.startswith("bert.") and k in target and target[k].shape == v.shape
    }  # fmt: skip
    target.update(copied)
    student.load_state_dict(target)
    return sorted(copied)


def _same_vocab(folder: Path, teacher_dir: Path) -> None:
    mine, theirs = folder / "vocab.txt", teacher_dir / "vocab.txt"
    if mine.is_file() and theirs.is_file() and mine.read_bytes() != theirs.read_bytes():
        raise ValueError(
            f"{mine} differs from the teacher's {theirs}: the student must share the teacher's tokenizer "
            "(the teacher's soft targets are per token window); pick a student built on the same vocabulary"
        )


def student_from_folder(
    task: Any, path: str | Path, teacher: nn.Module, teacher_dir: str | Path
) -> nn.Module:
    """A model folder (its weights), or a config.json / a folder with only one (random init), with the task's
    head taken from the teacher where shapes allow."""
    path, teacher_dir = Path(path), Path(teacher_dir)
    folder = path.parent if path.is_file() else path
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"--student {path}: expected a model folder or a config.json")
    _same_vocab(folder, teacher_dir)
    if any((folder / w).is_file() for w in _WEIGHTS) and not path.is_file():
        student, _ = task.build_model(str(folder))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            config = BertConfig.from_json(folder / "config.json")
            BertModel(config).save_pretrained(tmp)
            for name in _TOKENIZER_FILES:
                if (teacher_dir / name).is_file():
                    shutil.copy(teacher_dir / name, Path(tmp) / name)
            student, _ = task.build_model(tmp)
            logger.info("student: random initialisation from %s", path)
    copied = copy_head(teacher, student)
    logger.info("student head from the teacher: %s", ", ".join(copied) or "nothing (no shape fits)")
    return student


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
