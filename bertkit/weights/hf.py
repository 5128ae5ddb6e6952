"""Hugging Face folders: read model.safetensors / pytorch_model.bin (sharded too), write model.safetensors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bertkit.model.bert import PretrainedBert
from bertkit.weights.names import encoder_prefix, table_for

logger = logging.getLogger(__name__)

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_BASE_PARTS = ("embeddings.", "encoder.", "pooler.")


def find_weights(directory: Path) -> Path | None:
    """The weights file of an HF folder, safetensors first; None if there is none."""
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def canonical_key(key: str) -> str:
    """Any HF spelling -> the canonical one in names.py.

    Example: 'encoder.layer.0.output.LayerNorm.gamma' -> 'bert.encoder.layer.0.output.LayerNorm.weight'.
    """
    for wrapper in ("module.", "model."):  # DDP / some wrappers
        if key.startswith(wrapper) and key[len(wrapper) :].startswith(("bert.", "cls.", *_BASE_PARTS)):
            key = key[len(wrapper) :]
    if key.startswith(_BASE_PARTS):
        key = "bert." + key
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


def read_hf_weights(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of an HF weights file (or sharded index), with canonical keys, as float32 where floating."""
    if path.name.endswith(".index.json"):
        shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
        raw: dict[str, torch.Tensor] = {}
        for shard in shards:
            if not (path.parent / shard).is_file():
                raise FileNotFoundError(f"{path} lists shard {shard}, which is missing from {path.parent}")
            raw.update(_read_one(path.parent / shard))
    else:
        raw = _read_one(path)
    out = {}
    for key, tensor in raw.items():
        out[canonical_key(key)] = tensor.float() if tensor.is_floating_point() else tensor
    return out


def hf_state_dict(model: PretrainedBert) -> dict[str, torch.Tensor]:
    """Our parameters under transformers' keys for model.hf_architecture (tied decoder left out, as HF does)."""
    ours = model.state_dict()
    encoder, heads = table_for(model)
    strip = not encoder_prefix(model)  # transformers' BertModel saves its keys without 'bert.'
    out: dict[str, torch.Tensor] = {}
    for entry in encoder + heads:
        for key, part in zip(entry.hf, entry.to_parts(ours[entry.ours], tf=False), strict=True):
            if strip and key.startswith("bert."):
                key = key[len("bert.") :]
            out[key] = part.detach().to("cpu").contiguous().clone()
    return out


def save_hf(model: PretrainedBert, directory: str | Path) -> None:
    """config.json + model.safetensors; the folder loads in transformers' matching class with no missing keys."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save_json(directory / "config.json", architecture=model.hf_architecture)
    tmp = directory / "model.safetensors.tmp"
    save_file(hf_state_dict(model), str(tmp), metadata={"format": "pt"})
    tmp.replace(directory / "model.safetensors")
    logger.info("saved %s to %s", model.hf_architecture, directory)
