"""load_pretrained(): resolve a model argument, detect its format, map the tensors strictly, report plainly.

Tensors are mapped through the model's own weight rows (PretrainedBert.weight_rows): the encoder's table and
the rows each head class declares. infer_model() finds, among the registered classes (model/registry.py) and
their variants, the one whose rows the checkpoint holds; load_every_head() loads it: convert, vocab extend and
export open a folder this one way, so no head is lost on the way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bertkit.hub import model_folder, resolve_model_path
from bertkit.model.bert import BertModel, PretrainedBert, deferred_init
from bertkit.model.config import BertConfig
from bertkit.model.families import family_of
from bertkit.model.registry import classes_for, model_for
from bertkit.model.rows import Row
from bertkit.weights import tf_checkpoint
from bertkit.weights.hf import BUFFERS, find_weights, read_hf_keys, read_hf_weights

logger = logging.getLogger(__name__)

# Optimizer state in Google / TF checkpoints: never model weights.
_OPTIMIZER_PARTS = {
    "adam_m",
    "adam_v",
    "Adam",
    "Adam_1",
    "AdamWeightDecayOptimizer",
    "AdamWeightDecayOptimizer_1",
    "global_step",
    "beta1_power",
    "beta2_power",
    "Momentum",
    "Adagrad",
    "LAMB",
    "lamb_m",
    "lamb_v",
    "good_steps",
    "loss_scale",
}


@dataclass(frozen=True)
class LoadReport:
    """What loading did: which of our weights were newly initialised, which source tensors went unused."""

    source: str
    format: str  # "hf" or "tf"
    model_class: str
    loaded: int  # source tensors used
    initialized: tuple[str, ...]
    unused: tuple[str, ...]
    optimizer_slots: int = 0

    def __str__(self) -> str:
        text = f"Loaded {self.model_class} from {self.source} ({self.format} format): {self.loaded} weights"
        if self.initialized:
            text += f"; newly initialised, train before use: {', '.join(self.initialized)}"
        if self.unused:
            shown = ", ".join(self.unused[:8]) + (
                f" and {len(self.unused) - 8} more" if len(self.unused) > 8 else ""
            )
            text += f"; unused from the checkpoint: {shown}"
        if self.optimizer_slots:
            text += f"; skipped {self.optimizer_slots} optimizer-state tensors"
        return text + "."


def detect_format(path: Path) -> str:
    """'hf' or 'tf' for a folder or TF prefix; a clear error naming what is missing otherwise."""
    if path.is_dir() and (path / "config.json").is_file() and find_weights(path):
        return "hf"
    if path.is_dir() and (path / "config.json").is_file() and not (path / "bert_config.json").is_file():
        raise FileNotFoundError(
            f"{path} has config.json but no weights file (expected one of model.safetensors, "
            "pytorch_model.bin); copy the weights into the folder"
        )
    folder = path if path.is_dir() else path.parent
    if (folder / "bert_config.json").is_file() or (folder / "albert_config.json").is_file():
        return "tf"
    raise FileNotFoundError(
        f"{path} is not a BERT model folder: expected config.json with model.safetensors or pytorch_model.bin "
        "(Hugging Face), or bert_config.json (albert_config.json) with a TF checkpoint such as bert_model.ckpt.* "
        "(Google TensorFlow)"
    )


def read_config(path: Path, fmt: str) -> BertConfig:
    folder = path if path.is_dir() else path.parent
    if fmt == "tf" and (folder / "albert_config.json").is_file() and not (folder / "bert_config.json").is_file():
        return BertConfig.from_json(folder / "albert_config.json")
    return BertConfig.from_json(folder / ("config.json" if fmt == "hf" else "bert_config.json"))


def read_model_config(name_or_path: str | Path) -> BertConfig:
    """The config of a model argument (folder, alias, hub id), in whichever family dialect it is written."""
    path = model_folder(resolve_model_path(name_or_path))
    return read_config(path, detect_format(path))


def load_for(name_or_path: str | Path, kind: str, **options: Any) -> tuple[PretrainedBert, LoadReport]:
    """load_pretrained into the checkpoint's family's class for a task kind ('sequence_classification', ...)."""
    return load_pretrained(name_or_path, model_for(read_model_config(name_or_path), kind), **options)


def check_vocab(folder: Path, config: BertConfig) -> None:
    vocab = folder / "vocab.txt"
    if not vocab.is_file():
        return
    with vocab.open(encoding="utf-8") as f:
        n = sum(1 for _ in f)
    if n != config.vocab_size:
        raise ValueError(
            f"{vocab} has {n} tokens but the model config says vocab_size={config.vocab_size}; the vocab and "
            "the checkpoint do not belong together. Use the vocab.txt shipped with these weights"
        )


def _source_tensors(
    path: Path, fmt: str, entries: list[Row], config: BertConfig
) -> tuple[dict[str, torch.Tensor], list[str], int]:
    """(tensors by source name, names of all model-like source tensors, optimizer slot count)."""
    if fmt == "hf":
        family = family_of(config)
        tensors = read_hf_weights(find_weights(path), family.hf_prefix)
        names = [k for k in tensors if k not in family.tied and not k.endswith(BUFFERS)]
        return tensors, names, 0
    prefix = tf_checkpoint.resolve_checkpoint_prefix(path)
    variables = tf_checkpoint.list_variables(prefix)
    slots = [n for n in variables if _OPTIMIZER_PARTS & set(n.split("/"))]
    names = [n for n in variables if n not in set(slots)]
    wanted = [n for e in entries for n in e.tf if n in variables]
    arrays = tf_checkpoint.read_checkpoint(prefix, wanted)
    return {k: torch.from_numpy(v.copy()).float() for k, v in arrays.items()}, names, len(slots)


def load_pretrained(
    name_or_path: str | Path,
    model_class: type[PretrainedBert] = BertModel,
    *,
    labels: list[str] | tuple[str, ...] | None = None,
    num_labels: int | None = None,
    problem_type: str | None = None,
    config_overrides: dict[str, Any] | None = None,
    model_options: dict[str, Any] | None = None,
    require_heads: bool = False,
) -> tuple[PretrainedBert, LoadReport]:
    """Build model_class from a checkpoint. Missing or mis-shaped encoder weights raise; new heads are reported.

    labels / num_labels / problem_type set up a classification head; config_overrides replace config fields
    (e.g. {"hidden_act": "gelu_new"} for Google's tanh GELU, {"hidden_dropout_prob": 0.2}); model_options go to
    the model class (e.g. {"head": "crf"} for BertForTagging). require_heads: the checkpoint is a fine-tuned
    model of this class, so a missing head weight raises instead of being initialised.
    """
    path = model_folder(resolve_model_path(name_or_path))
    fmt = detect_format(path)
    config = read_config(path, fmt)
    check_vocab(path if path.is_dir() else path.parent, config)
    changes: dict[str, Any] = dict(config_overrides or {})
    if num_labels is not None and labels is None:
        labels = [f"LABEL_{i}" for i in range(num_labels)]
    if labels is not None:
        changes["labels"] = tuple(labels)
    if problem_type is not None:
        changes["problem_type"] = problem_type
    head_changed = "labels" in changes and tuple(changes["labels"]) != config.labels
    config = config.replace(**changes)

    with deferred_init():  # the checkpoint replaces the weights: draw only those it lacks, once loaded
        model = model_class(config, **(model_options or {}))
    encoder_entries, head_entries = model.encoder_rows(), model.pooler_rows() + model.head_rows()
    model.weight_rows()  # raises if a parameter has no row
    tensors, source_names, slots = _source_tensors(path, fmt, encoder_entries + head_entries, config)
    is_tf = fmt == "tf"
    state = model.state_dict()
    used: set[str] = set()
    new_state: dict[str, torch.Tensor] = {}
    initialized: list[str] = []
    for is_head, entry in [(False, e) for e in encoder_entries] + [(True, e) for e in head_entries]:
        keys = entry.tf if is_tf else entry.hf
        present = [k for k in keys if k in tensors]
        if len(present) < len(keys):
            if is_head and require_heads:
                missing = [k for k in keys if k not in tensors] or [entry.ours]
                raise ValueError(
                    f"{path}: the checkpoint has no tensor {missing[0]!r} for {entry.ours} of the "
                    f"{model_class.__name__} head{_options(model_options)} it was asked to load as fine-tuned. The "
                    "folder was saved with another head (see its bertkit.json), or its weights file is incomplete"
                )
            if not is_head:
                missing = [k for k in keys if k not in tensors]
                raise ValueError(
                    f"{path}: the checkpoint has no tensor {missing[0]!r} (needed for {entry.ours}); it is not a "
                    f"complete BERT encoder with the {config.num_hidden_layers} layers its config declares"
                )
            initialized.append(entry.ours)
            continue
        value = entry.from_parts([tensors[k] for k in keys], tf=is_tf)
        expected = tuple(state[entry.ours].shape)
        if tuple(value.shape) != expected:
            if is_head and head_changed and not require_heads:
                initialized.append(entry.ours)  # a new label set: the old classifier does not fit
                used.update(keys)
                continue
            raise ValueError(
                f"{path}: {' + '.join(keys)} has shape {tuple(value.shape)} but {entry.ours} needs {expected} "
                "under the config; the config file does not match the weights (check hidden_size, "
                "intermediate_size, vocab_size, max_position_embeddings, type_vocab_size, num_labels)"
            )
        new_state[entry.ours] = value
        used.update(keys)
    for key in initialized:
        new_state[key] = state[key]
    model.load_state_dict(new_state, strict=True)
    if initialized:
        model.init_weights(only=set(initialized))
    unused = tuple(n for n in source_names if n not in used)
    report = LoadReport(str(path), fmt, model_class.__name__, len(used), tuple(initialized), unused, slots)
    if initialized or unused:
        logger.warning("%s", report)
    else:
        logger.info("%s", report)
    model.eval()
    return model, report


def _options(options: dict[str, Any] | None) -> str:
    return f" ({', '.join(f'{k}={v!r}' for k, v in options.items())})" if options else ""


@dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint holds: the class (and its options) that keeps every head, and the label count."""

    model_class: type[PretrainedBert]
    options: dict[str, Any]
    num_labels: int | None  # from a TF classifier's shape; HF folders carry theirs in config.json


def infer_model(name_or_path: str | Path) -> ModelSpec:
    """The registered class whose weight rows the checkpoint holds, with the most rows (every head kept).

    Each class of model/registry.py is built on the meta device (no memory, no init cost) in each of its
    variants; the candidates are those whose every row is in the checkpoint. Ties go to config.json's
    `architectures`, then to registry order.
    """
    path = model_folder(resolve_model_path(name_or_path))
    fmt = detect_format(path)
    config = read_config(path, fmt)
    num_labels = None
    if fmt == "hf":
        names = read_hf_keys(find_weights(path), family_of(config).hf_prefix)
    else:
        variables = tf_checkpoint.list_variables(tf_checkpoint.resolve_checkpoint_prefix(path))
        names = set(variables)
        if "output_weights" in variables:
            num_labels = int(variables["output_weights"][1][0])
            config = config.replace(labels=tuple(f"LABEL_{i}" for i in range(num_labels)))
    preferred = config.architectures[0] if config.architectures else None
    best: tuple[tuple[int, bool], ModelSpec] | None = None
    for cls in classes_for(config):
        for options in cls.variants:
            with torch.device("meta"):
                model = cls(config, **options)
            rows = model.weight_rows()
            keys = [r.tf if fmt == "tf" else r.hf for r in rows]
            if not all(k and all(n in names for n in k) for k in keys):
                continue
            score = (len(rows), family_of(config).architecture(cls.hf_architecture) == preferred)
            if best is None or score > best[0]:
                best = (score, ModelSpec(cls, dict(options), num_labels))
    if best is None:  # not even a complete encoder: loading it as one names the first missing tensor
        return ModelSpec(BertModel, {}, num_labels)
    return best[1]


def load_every_head(name_or_path: str | Path) -> tuple[PretrainedBert, LoadReport]:
    """Load a checkpoint as the class that keeps all its heads (see infer_model); nothing is initialised anew."""
    spec = infer_model(name_or_path)
    return load_pretrained(
        name_or_path, spec.model_class, num_labels=spec.num_labels, model_options=spec.options, require_heads=True
    )


def infer_architecture(name_or_path: str | Path) -> tuple[str, int | None]:
    """(transformers class name, number of labels or None) of infer_model's class."""
    spec = infer_model(name_or_path)
    return spec.model_class.hf_architecture, spec.num_labels
