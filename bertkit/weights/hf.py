"""Hugging Face folders: read model.safetensors / pytorch_model.bin (sharded too), write model.safetensors.

What is written is exactly the model's weight rows (PretrainedBert.weight_rows): every parameter, each under
its transformers name, or under ours for a head transformers does not know. Nothing is dropped: rows that miss
a parameter raise before anything is written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from bertkit.model.bert import BertModel, PretrainedBert
from bertkit.model.families import family_of
from bertkit.textfile import load_json_object

logger = logging.getLogger(__name__)

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# How the keys of a bare encoder (transformers' BertModel, RobertaModel...) start; a head model prefixes them.
_BASE_PARTS = ("embeddings.", "encoder.", "pooler.", "transformer.", "embeddings_project.")
# Before heads owned their weights, a crf / lstm_crf tagger kept lstm.* and crf.* in this file beside
# model.safetensors; it is still read (model.safetensors wins for a key in both) and removed on save.
LEGACY_HEAD_FILE = "tagging_head.safetensors"
# Buffers transformers saved in some versions: never weights.
BUFFERS = (".position_ids", ".token_type_ids")


def find_weights(directory: Path) -> Path | None:
    """The weights file of an HF folder, safetensors first; None if there is none."""
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def canonical_key(key: str, prefix: str = "bert.") -> str:
    """Any HF spelling -> the canonical one of the weight rows, for a family whose encoder prefix is `prefix`.

    Example: 'encoder.layer.0.output.LayerNorm.gamma' -> 'bert.encoder.layer.0.output.LayerNorm.weight'.
    """
    for wrapper in ("module.", "model."):  # DDP / some wrappers
        if key.startswith(wrapper) and key[len(wrapper) :].startswith((prefix, "cls.", *_BASE_PARTS)):
            key = key[len(wrapper) :]
    if key.startswith(_BASE_PARTS):
        key = prefix + key
    if key.endswith("LayerNorm.gamma"):
        key = key[: -len("gamma")] + "weight"
    elif key.endswith("LayerNorm.beta"):
        key = key[: -len("beta")] + "bias"
    return key


def _read_one(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise ValueError(
            f"cannot read weights file {path}: {err}. The file is corrupt or truncated; copy or download it again"
        ) from err
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict (found {type(state).__name__})")
    return state


def _weight_map(index: Path) -> dict[str, str]:
    """The tensor -> shard file map of a sharded checkpoint's *.index.json."""
    expected = 'a weights index ({"weight_map": {tensor: shard file}}); restore it from the original model'
    weight_map = load_json_object(index, expected, "weights index").get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ValueError(f"{index}: no weight_map of tensor names to shard files; expected {expected}")
    return weight_map


def read_hf_weights(path: Path, prefix: str = "bert.") -> dict[str, torch.Tensor]:
    """All tensors of an HF weights file (or sharded index), with canonical keys, as float32 where floating."""
    if path.name.endswith(".index.json"):
        shards = sorted(set(_weight_map(path).values()))
        raw: dict[str, torch.Tensor] = {}
        for shard in shards:
            if not (path.parent / shard).is_file():
                raise FileNotFoundError(f"{path} lists shard {shard}, which is missing from {path.parent}")
            raw.update(_read_one(path.parent / shard))
    else:
        raw = _read_one(path)
    legacy = path.parent / LEGACY_HEAD_FILE
    if legacy.is_file():
        raw = {**_read_one(legacy), **raw}
    out = {}
    for key, tensor in raw.items():
        out[canonical_key(key, prefix)] = tensor.float() if tensor.is_floating_point() else tensor
    return out


def read_hf_keys(path: Path, prefix: str = "bert.") -> set[str]:
    """The canonical keys of an HF weights file (and of a legacy head file beside it), without reading tensors."""
    if path.name.endswith(".index.json"):
        keys = set(_weight_map(path))
    elif path.suffix == ".safetensors":
        try:
            with safe_open(str(path), "pt") as f:
                keys = set(f.keys())
        except (SafetensorError, OSError) as err:
            raise ValueError(
                f"cannot read weights file {path}: {err}. The file is corrupt or truncated; copy or download it again"
            ) from err
    else:
        keys = set(_read_one(path))
    legacy = path.parent / LEGACY_HEAD_FILE
    if path != legacy and legacy.is_file():
        keys |= read_hf_keys(legacy)
    return {canonical_key(k, prefix) for k in keys}


def hf_state_dict(model: PretrainedBert) -> dict[str, torch.Tensor]:
    """Every parameter under its row's HF key(s) (tied decoder left out, as transformers does)."""
    ours = model.state_dict()
    # transformers' bare models (BertModel, RobertaModel...) save their keys without the family prefix
    strip = family_of(model.config).hf_prefix if isinstance(model, BertModel) else None
    out: dict[str, torch.Tensor] = {}
    for row in model.weight_rows():  # raises if a parameter has no row
        for key, part in zip(row.hf, row.to_parts(ours[row.ours], tf=False), strict=True):
            if strip and key.startswith(strip):
                key = key[len(strip) :]
            out[key] = part.detach().to("cpu").contiguous().clone()
    return out


def save_hf(model: PretrainedBert, directory: str | Path) -> None:
    """config.json + model.safetensors; the folder loads in transformers' matching class with no missing keys."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    architecture = family_of(model.config).architecture(model.hf_architecture)
    model.config.save_json(directory / "config.json", architecture=architecture)
    tmp = directory / "model.safetensors.tmp"
    save_file(hf_state_dict(model), str(tmp), metadata={"format": "pt"})
    tmp.replace(directory / "model.safetensors")
    (directory / LEGACY_HEAD_FILE).unlink(missing_ok=True)  # its tensors, if any, are in model.safetensors now
    logger.info("saved %s to %s", architecture, directory)


def copy_other_files(source: Path, target: Path) -> list[str]:
    """Copy every file of an HF folder that target lacks, weights aside (labels, bertkit.json, pooling...).

    Whoever re-saves a folder's weights (convert, vocab extend) keeps the rest of the folder with them.
    Returns the relative paths copied.
    """
    skip = {*WEIGHT_FILES, LEGACY_HEAD_FILE}
    copied = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if not path.is_file() or rel.name in skip or rel.suffix in (".safetensors", ".bin") or (target / rel).exists():
            continue
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_bytes(path.read_bytes())
        copied.append(str(rel))
    return copied
