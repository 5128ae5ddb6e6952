"""`bertkit encode` as a library function: rows in, vectors out (.npy + ids file, or JSONL), in input order.

The rows (inference.encode_inputs: a file streamed from the disk, or lists) are read as they are encoded, and
vectors are written as the batches stream: neither the input nor the output is ever held whole in memory.
Sentence vectors go to .npy with OUT.ids.txt beside it, or to JSONL {"id", "vector"}. Token features (Google's
extract_features.py) go to JSONL {"id", "features": [{"token", "layers": [...]}]}.
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bertkit.inference.encode_inputs import Rows, suffix
from bertkit.inference.features import FeatureExtractor

logger = logging.getLogger(__name__)

def ids_path(output: Path) -> Path:
    """OUT.npy -> OUT.ids.txt"""
    return output.with_name(output.stem + ".ids.txt")


def write_npy_header(f: BinaryIO, rows: int, dim: int) -> None:
    """The .npy header of a (rows, dim) float32 array, for its rows to follow as plain writes: unlike a
    memory-mapped array, written rows do not stay resident in the process (1M 384-d vectors are 1.5 GB)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
              "shape": (rows, dim)}  # fmt: skip
    np.lib.format.write_array_header_1_0(f, header)


def encode_file(
    extractor: FeatureExtractor,
    inputs: Rows,
    output: str | Path,
    *,
    batch_size: int | None = None,
    token_layers: tuple[int, ...] | None = None,
    show_progress: bool = False,
) -> Path:
    """Write the vectors of inputs to output (.npy or .jsonl); token_layers switches to token-level features."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    kind = suffix(output)
    if token_layers is not None:
        if kind not in (".jsonl", ".json"):
            raise ValueError(
                f"token features have one row per token: write them to .jsonl, not {output.name}"
            )
        return _write_tokens(extractor, inputs, output, batch_size, token_layers, show_progress)
    if kind not in (".npy", ".jsonl", ".json"):
        raise ValueError(f"--output {output}: write vectors to .npy (with an ids file beside it) or .jsonl")
    # one pass over the rows feeds texts, pairs and ids: tee holds the rows that one has read and another not
    # yet, at most one chunk (10,000), as long as every copy is read (so no copy for the pairs of single texts)
    copies = itertools.tee(inputs.rows(), 3 if inputs.has_pairs else 2)
    stream = extractor.encode_iter(
        (row[0] for row in copies[0]),
        (row[1] for row in copies[2]) if inputs.has_pairs else None,
        batch_size=batch_size,
        show_progress=show_progress,
        total=inputs.count,
    )
    ids = (row[2] for row in copies[1])
    if kind == ".npy":
        row = 0
        with output.open("wb") as f, ids_path(output).open("w", encoding="utf-8") as ids_file:
            write_npy_header(f, inputs.count, extractor.dim)
            for part in stream:
                f.write(np.ascontiguousarray(part, dtype=np.float32).tobytes())
                row += len(part)
                ids_file.writelines(f"{i}\n" for i in itertools.islice(ids, len(part)))
        if row != inputs.count:
            raise ValueError(f"{getattr(inputs, 'path', 'the input')} changed while it was encoded: "
                             f"{row} rows, {inputs.count} when it was checked; run again")  # fmt: skip
    else:
        with output.open("w", encoding="utf-8") as f:
            for part in stream:
                for vector in part:
                    f.write(
                        json.dumps({"id": next(ids), "vector": [round(float(x), 6) for x in vector]}) + "\n"
                    )
    return output


def _write_tokens(
    extractor: FeatureExtractor,
    inputs: Rows,
    output: Path,
    batch_size: int | None,
    layers: tuple[int, ...],
    show_progress: bool,
) -> Path:
    step = 1000  # texts per chunk: token features are large
    rows = inputs.rows()
    with output.open("w", encoding="utf-8") as f:
        while chunk := list(itertools.islice(rows, step)):
            texts = [r[0] for r in chunk]
            pairs = [r[1] for r in chunk] if inputs.has_pairs else None
            for (_, _, id_), feats in zip(chunk, extractor.encode_tokens(
                texts, pairs, layers=layers, batch_size=batch_size, show_progress=show_progress
            ), strict=True):  # fmt: skip
                tokens = [
                    {
                        "token": token,
                        "layers": [
                            {"index": layer, "values": [round(float(x), 6) for x in feats.values[t, j]]}
                            for j, layer in enumerate(feats.layers)
                        ],
                    }
                    for t, token in enumerate(feats.tokens)
                ]
                f.write(json.dumps({"id": id_, "features": tokens}, ensure_ascii=False) + "\n")
    return output
