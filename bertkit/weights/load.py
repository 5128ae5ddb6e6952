"""load_pretrained(): resolve a model argument, detect its format, map the tensors strictly, report plainly."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bertkit.hub import model_folder, resolve_model_path
from bertkit.model.bert import BertModel, PretrainedBert
from bertkit.model.config import BertConfig
from bertkit.weights import tf_checkpoint
from bertkit.weights.hf import find_weights, read_hf_weights
from bertkit.weights.names import TIED_OR_BUFFERS, Entry, table_for

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
    if (folder / "bert_config.json").is_file():
        return "tf"
    raise FileNotFoundError(
        f"{path} is not a BERT model folder: expected config.json with model.safetensors or pytorch_model.bin "
        "(Hugging Face), or bert_config.json with bert_model.ckpt.* (Google TensorFlow)"
    )


def read_config(path: Path, fmt: str) -> BertConfig:
    folder = path if path.is_dir() else path.parent
    return BertConfig.from_json(folder / ("config.json" if fmt == "hf" else "bert_config.json"))


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
    path: Path, fmt: str, entries: list[Entry]
) -> tuple[dict[str, torch.Tensor], list[str], int]:
    """(tensors by source name, names of all model-like source tensors, optimizer slot count)."""
    if fmt == "hf":
        tensors = read_hf_weights(find_weights(path))
        names = [k for k in tensors if k not in TIED_OR_BUFFERS]
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
) -> tuple[PretrainedBert, LoadReport]:
    """Build model_class from a checkpoint. Missing or mis-shaped encoder weights raise; new heads are reported.

    labels / num_labels / problem_type set up a classification head; config_overrides replace config fields
    (e.g. {"hidden_act": "gelu_new"} for Google's tanh GELU, {"hidden_dropout_prob": 0.2}).
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

    model = model_class(config)
    encoder_entries, head_entries = table_for(model)
    tensors, source_names, slots = _source_tensors(path, fmt, encoder_entries + head_entries)
    is_tf = fmt == "tf"
    state = model.state_dict()
    used: set[str] = set()
    new_state: dict[str, torch.Tensor] = {}
    initialized: list[str] = []
    for is_head, entry in [(False, e) for e in encoder_entries] + [(True, e) for e in head_entries]:
        keys = entry.tf if is_tf else entry.hf
        present = [k for k in keys if k in tensors]
        if len(present) < len(keys):
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
            if is_head and head_changed:
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
    unused = tuple(n for n in source_names if n not in used)
    report = LoadReport(str(path), fmt, model_class.__name__, len(used), tuple(initialized), unused, slots)
    if initialized or unused:
        logger.warning("%s", report)
    else:
        logger.info("%s", report)
    model.eval()
    return model, report


def infer_architecture(name_or_path: str | Path) -> tuple[str, int | None]:
    """(transformers class name, number of labels or None) that keeps every head the checkpoint has."""
    path = model_folder(resolve_model_path(name_or_path))
    fmt = detect_format(path)
    if fmt == "hf":
        config = read_config(path, fmt)
        if config.architectures and config.architectures[0] in _known_classes():
            return config.architectures[0], None
        names = set(read_hf_weights(find_weights(path)))
        mlm, nsp = "cls.predictions.bias" in names, "cls.seq_relationship.weight" in names
        qa, clf = "qa_outputs.weight" in names, "classifier.weight" in names
    else:
        variables = tf_checkpoint.list_variables(tf_checkpoint.resolve_checkpoint_prefix(path))
        mlm, nsp = (
            "cls/predictions/output_bias" in variables,
            "cls/seq_relationship/output_weights" in variables,
        )
        qa, clf = "cls/squad/output_weights" in variables, "output_weights" in variables
        if clf:
            return "BertForSequenceClassification", int(variables["output_weights"][1][0])
    if mlm and nsp:
        return "BertForPreTraining", None
    if mlm:
        return "BertForMaskedLM", None
    if nsp:
        return "BertForNextSentencePrediction", None
    if qa:
        return "BertForQuestionAnswering", None
    if clf:
        return "BertForSequenceClassification", None
    return "BertModel", None


def _known_classes() -> dict[str, type[PretrainedBert]]:
    from bertkit.model.heads import MODEL_CLASSES

    return MODEL_CLASSES
