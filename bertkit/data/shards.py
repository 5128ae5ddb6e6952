"""Pretraining shards on disk: shard-00000.npz ... (padded int arrays, one row per instance) and meta.json
(the data config, the vocabulary's fingerprint, counts). bertkit.data.corpus makes the instances; bertkit
pretrain trains from the shards, which only fit the vocabulary they were made with.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bertkit.textfile import load_json_object
from bertkit.tokenization import Tokenizer

if TYPE_CHECKING:  # corpus imports this module to write its shards
    from bertkit.data.corpus import Instance, PretrainingDataConfig

logger = logging.getLogger(__name__)

FORMAT = "bertkit-pretraining-shards/1"
META_FILE = "meta.json"


def vocab_fingerprint(tokenizer: Tokenizer) -> str:
    """sha256 of the vocab in id order: shards only fit the vocabulary they were made with."""
    tokens = tokenizer.convert_ids_to_tokens(range(tokenizer.vocab_size))
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()


def _arrays(
    instances: Sequence[Instance], config: PretrainingDataConfig, pad_id: int
) -> dict[str, np.ndarray]:
    n, length, preds = len(instances), config.max_seq_length, config.max_predictions_per_seq
    out = {
        "input_ids": np.full((n, length), pad_id, dtype=np.int32),
        "lengths": np.zeros(n, dtype=np.int32),
        "a_lengths": np.zeros(n, dtype=np.int32),
        "masked_positions": np.zeros((n, preds), dtype=np.int32),
        "masked_ids": np.zeros((n, preds), dtype=np.int32),
        "num_masked": np.zeros(n, dtype=np.int32),
        "next_sentence_labels": np.zeros(n, dtype=np.int8),
        "forced_random": np.zeros(n, dtype=np.bool_),
        "document_a": np.zeros(n, dtype=np.int32),
        "document_b": np.zeros(n, dtype=np.int32),
        "continuation": np.zeros((n, length), dtype=np.bool_),
    }
    for row, inst in enumerate(instances):
        k, m = len(inst.input_ids), len(inst.masked_positions)
        out["input_ids"][row, :k] = inst.input_ids
        out["lengths"][row], out["a_lengths"][row], out["num_masked"][row] = k, inst.a_length, m
        out["masked_positions"][row, :m] = inst.masked_positions
        out["masked_ids"][row, :m] = inst.masked_ids
        out["next_sentence_labels"][row] = int(inst.is_random_next)
        out["forced_random"][row] = inst.forced_random
        out["document_a"][row], out["document_b"][row] = inst.document_a, inst.document_b
        out["continuation"][row, :k] = inst.continuation
    return out


def write_shards(
    instances: Sequence[Instance], output_dir: str | Path, config: PretrainingDataConfig, tokenizer: Tokenizer,
    extra_meta: dict | None = None,
) -> Path:  # fmt: skip
    """Write shard-00000.npz ... and meta.json (config, vocab fingerprint, counts) into output_dir."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("shard-*.npz"):
        old.unlink()
    names = []
    for start in range(0, len(instances), config.instances_per_shard):
        name = f"shard-{len(names):05d}.npz"
        with (out / name).open("wb") as f:
            np.savez(
                f,
                **_arrays(
                    instances[start : start + config.instances_per_shard], config, tokenizer.pad_token_id
                ),
            )
        names.append(name)
    meta = {
        "format": FORMAT,
        "config": asdict(config),
        "vocab_size": tokenizer.vocab_size,
        "vocab_sha256": vocab_fingerprint(tokenizer),
        "do_lower_case": tokenizer.do_lower_case,
        "pad_token_id": tokenizer.pad_token_id,
        "mask_token_id": tokenizer.mask_token_id,
        "num_instances": len(instances),
        "shards": names,
        **(extra_meta or {}),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    logger.info("wrote %d instances in %d shard(s) to %s", len(instances), len(names), out)
    return out


@dataclass(frozen=True)
class Shards:
    """Shards loaded into memory: `meta` and the concatenated arrays (see _arrays for the fields)."""

    meta: dict
    arrays: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.arrays["lengths"].shape[0])

    def instance(self, i: int) -> dict[str, list[int] | int]:
        """Row i unpadded: input_ids, token_type_ids, masked_positions, masked_ids, next_sentence_label."""
        a = self.arrays
        n, m, k = int(a["lengths"][i]), int(a["num_masked"][i]), int(a["a_lengths"][i])
        return {
            "input_ids": a["input_ids"][i, :n].tolist(),
            "token_type_ids": [0] * k + [1] * (n - k),
            "masked_positions": a["masked_positions"][i, :m].tolist(),
            "masked_ids": a["masked_ids"][i, :m].tolist(),
            "next_sentence_label": int(a["next_sentence_labels"][i]),
        }


def load_shards(folder: str | Path, tokenizer: Tokenizer | None = None) -> Shards:
    """Read meta.json and every shard; with a tokenizer, check the shards were made with its vocabulary."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"{folder} has no {META_FILE}: make pretraining shards with `bertkit pretrain-data`"
        )
    meta = load_json_object(meta_path, "the shards' metadata; run `bertkit pretrain-data` again", "shards metadata")
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{meta_path}: format {meta.get('format')!r} is not {FORMAT!r}; regenerate the shards"
        )
    if tokenizer is not None and meta["vocab_sha256"] != vocab_fingerprint(tokenizer):
        raise ValueError(
            f"{folder} was made with another vocabulary ({meta['vocab_size']} tokens) than the model's "
            f"({tokenizer.vocab_size}); run `bertkit pretrain-data` again with this model's vocab"
        )
    parts: dict[str, list[np.ndarray]] = {}
    for name in meta["shards"]:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} is listed in {meta_path} but missing")
        with np.load(folder / name) as data:
            for key in data.files:
                parts.setdefault(key, []).append(data[key])
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return Shards(meta, arrays)
