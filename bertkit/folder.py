"""The bertkit model folder: which files a fine-tuned (or pretrained-by-bertkit) folder holds, and which is the truth.

A folder written by `bertkit train` / `bertkit pretrain` holds
- config.json, model.safetensors, vocab.txt, tokenizer_config.json: the HF layout (weights, tokenizer);
- bertkit.json: THE TRUTH for the task family, its options (label names in id order) and max_seq_length,
  with a format version;
- labels.txt: the label names, one per line (a copy for people and shell tools);
- train_config.json: the TrainConfig of the run (it repeats max_seq_length).
config.json's id2label repeats the labels for transformers. Copies must agree with bertkit.json: a folder whose
files disagree (an edited labels.txt, a config.json from another run) is an error naming the file, never a
silent renaming of classes.

Bottom level: metadata only (JSON and text files); building the task and the model from it is the engine's job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.textfile import load_json_object

INFO_FILE = "bertkit.json"
LABELS_FILE = "labels.txt"
TRAIN_CONFIG_FILE = "train_config.json"
HF_CONFIG_FILE = "config.json"
FORMAT_VERSION = 1  # bump when bertkit.json changes meaning; readers refuse a newer version
DEFAULT_MAX_SEQ_LENGTH = 128  # folders written before max_seq_length was recorded
_KEYS = ("format_version", "task", "options", "max_seq_length")


@dataclass(frozen=True)
class FolderInfo:
    """What bertkit.json says: the task family, its options (to_json()), max_seq_length, and extra keys."""

    task: str
    options: Mapping[str, Any] = field(default_factory=dict)
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH
    format_version: int = FORMAT_VERSION
    # keys a caller added (e.g. where a distilled model came from)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...] | None:
        labels = self.options.get("labels")
        return tuple(str(n) for n in labels) if labels else None

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "task": self.task,
            "options": dict(self.options),
            "max_seq_length": self.max_seq_length,
            **self.extra,
        }


def has_info(folder: str | Path) -> bool:
    """Whether folder is a bertkit task folder (it has bertkit.json)."""
    return (Path(folder) / INFO_FILE).is_file()


def write_info(folder: str | Path, info: FolderInfo) -> None:
    """bertkit.json and labels.txt (when the task has labels). The weights and tokenizer are written by their owners."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / INFO_FILE).write_text(
        json.dumps(info.to_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    labels_path = out / LABELS_FILE
    if info.labels:
        labels_path.write_text("".join(f"{n}\n" for n in info.labels), encoding="utf-8")
    elif labels_path.is_file():  # a stale copy from an earlier run in the same folder
        labels_path.unlink()


def read_info(folder: str | Path, *, check: bool = True) -> FolderInfo:
    """Parse folder/bertkit.json; with check=True also verify that labels.txt, config.json and train_config.json
    agree with it (ValueError naming the file that disagrees)."""
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {Path(folder)} is not a bertkit fine-tuned model folder (bertkit train writes "
            "bertkit.json beside config.json and model.safetensors)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("the file is not a JSON object")
        task = data["task"]
        if not isinstance(task, str):
            raise ValueError(f"'task' must be a string, got {task!r}")
        options = data.get("options") or {}
        if not isinstance(options, dict):
            raise ValueError(f"'options' must be an object, got {type(options).__name__}")
        version = int(data.get("format_version", 1))  # folders written before the version existed are 1
        length = int(data.get("max_seq_length", DEFAULT_MAX_SEQ_LENGTH))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a valid bertkit.json ({err}); retrain or restore the file") from err
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {version}; this bertkit reads up to {FORMAT_VERSION}: upgrade bertkit"
        )
    extra = {k: v for k, v in data.items() if k not in _KEYS}
    info = FolderInfo(task, options, length, version, extra)
    if check:
        check_folder(folder, info)
    return info


def check_folder(folder: str | Path, info: FolderInfo) -> None:
    """Raise ValueError naming the first file whose copy of a fact differs from bertkit.json."""
    root = Path(folder)
    labels = info.labels
    if labels:
        _same_labels(root / LABELS_FILE, labels, _labels_txt(root / LABELS_FILE))
        _same_labels(root / HF_CONFIG_FILE, labels, _config_labels(root / HF_CONFIG_FILE))
    train_config = _json(root / TRAIN_CONFIG_FILE)
    if train_config is not None and "max_seq_length" in train_config:
        if int(train_config["max_seq_length"]) != info.max_seq_length:
            raise ValueError(
                f"{root / TRAIN_CONFIG_FILE} says max_seq_length {train_config['max_seq_length']} but "
                f"{root / INFO_FILE} (the truth) says {info.max_seq_length}: the files come from different runs; "
                "restore the folder as bertkit wrote it"
            )


def _same_labels(path: Path, truth: Sequence[str], found: Sequence[str] | None) -> None:
    if found is None or tuple(found) == tuple(truth):
        return
    raise ValueError(
        f"{path} lists the labels {list(found)} but {path.parent / INFO_FILE} (the truth, in id order) says "
        f"{list(truth)}: the class names would be silently renamed. Restore the folder as bertkit wrote it "
        "(or fix the copy)"
    )


def _labels_txt(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line]


def _config_labels(path: Path) -> list[str] | None:
    data = _json(path)
    if data is None or not isinstance(data.get("id2label"), dict):
        return None
    try:
        order = sorted(data["id2label"].items(), key=lambda kv: int(kv[0]))
    except ValueError as err:
        raise ValueError(f"{path}: id2label keys must be integers ({err})") from err
    return [str(v) for _, v in order]


def _json(path: Path) -> dict[str, Any] | None:
    """A copy's JSON object, None when the file is absent; one that holds anything else raises, naming it (its
    facts could not be checked against bertkit.json)."""
    if not path.is_file():
        return None
    return load_json_object(path, "a JSON object; restore the file from the model you trained or downloaded")
