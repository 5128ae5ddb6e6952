"""`bertkit encode` as a library function: a text file in, vectors out (.npy + ids file, or JSONL), in input order.

Inputs: .txt (one text per line; every line is a row, blank ones too), .tsv/.csv (columns by index or header
name), .jsonl/.json (field `text`, optional `text_pair` and `id`). Sentence vectors go to .npy (written as the
batches stream, never held whole in memory) with OUT.ids.txt beside it, or to JSONL {"id", "vector"}.
Token features (Google's extract_features.py) go to JSONL {"id", "features": [{"token", "layers": [...]}]}.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bertkit.data.datafile import decoded_lines, json_records
from bertkit.data.readers.tsv import read_tsv
from bertkit.data.validate import Reject
from bertkit.inference.features import FeatureExtractor

logger = logging.getLogger(__name__)

Column = int | str


@dataclass(frozen=True)
class EncodeInputs:
    texts: list[str]
    text_pairs: list[str] | None
    ids: list[str]


def _suffix(path: Path) -> str:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return Path(name).suffix.lower()


def read_inputs(
    path: str | Path, text: Column | None = None, text_pair: Column | None = None, header: bool | None = None
) -> EncodeInputs:
    """Texts (and pairs) with an id per row: the JSON `id` field when present, else the line number."""
    path = Path(path)
    kind = _suffix(path)
    if kind in (".tsv", ".csv"):
        rows = list(read_tsv(path, text=0 if text is None else text, text_pair=text_pair, header=header))
        bad = [r for r in rows if isinstance(r, Reject)]
        if bad:
            raise ValueError(f"{bad[0].source}: {bad[0].reason} ({len(bad)} bad row(s) in all); fix the file")
        return EncodeInputs(
            [r.text for r in rows],
            [r.text_pair for r in rows] if text_pair is not None else None,
            [r.source.rsplit(":", 1)[-1] for r in rows],
        )
    if kind in (".jsonl", ".json", ".ndjson"):
        return _read_jsonl(
            path, str(text or "text"), str(text_pair or "text_pair"), explicit_pair=text_pair is not None
        )
    if kind not in (".txt", ".text", ""):
        logger.warning("%s: unknown suffix %r, read as plain text (one text per line)", path, kind)
    bad: dict[int, str] = {}
    lines = [line.rstrip("\r\n") for line in decoded_lines(path, bad)]
    if bad:
        number = min(bad)
        raise ValueError(f"{path}:{number}: {bad[number]}")
    return EncodeInputs(lines, None, [str(i) for i in range(1, len(lines) + 1)])


def _read_jsonl(path: Path, field: str, pair_field: str, explicit_pair: bool) -> EncodeInputs:
    texts, pairs, ids = [], [], []
    first_pair = first_single = None
    for source, _, obj, problem in json_records(path):
        if problem:
            raise ValueError(f"{source}: {problem}")
        assert obj is not None
        value = obj.get(field)
        if not isinstance(value, str):
            found = "no such field" if field not in obj else f"a {type(value).__name__}"
            raise ValueError(
                f"{source}: field {field!r} must be a string ({found}); fields are {', '.join(obj)}"
            )
        pair = obj.get(pair_field)
        if pair is not None and not isinstance(pair, str):
            raise ValueError(f"{source}: field {pair_field!r} must be a string or absent")
        if pair is None:
            first_single = first_single or source
        else:
            first_pair = first_pair or source
        texts.append(value)
        pairs.append(pair)
        ids.append(str(obj["id"]) if "id" in obj else source.rsplit(":", 1)[-1])
    if first_pair and first_single:
        raise ValueError(
            f"{path}: some rows have {pair_field!r} ({first_pair}) and some do not ({first_single}); "
            "encode pairs and single texts in separate files"
        )
    if explicit_pair and first_single:
        raise ValueError(f"{first_single}: no field {pair_field!r}")
    return EncodeInputs(texts, pairs if first_pair else None, ids)


def ids_path(output: Path) -> Path:
    """OUT.npy -> OUT.ids.txt"""
    return output.with_name(output.stem + ".ids.txt")


def encode_file(
    extractor: FeatureExtractor,
    inputs: EncodeInputs,
    output: str | Path,
    *,
    batch_size: int | None = None,
    token_layers: tuple[int, ...] | None = None,
    show_progress: bool = False,
) -> Path:
    """Write the vectors of inputs to output (.npy or .jsonl); token_layers switches to token-level features."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    kind = _suffix(output)
    if token_layers is not None:
        if kind not in (".jsonl", ".json"):
            raise ValueError(
                f"token features have one row per token: write them to .jsonl, not {output.name}"
            )
        return _write_tokens(extractor, inputs, output, batch_size, token_layers, show_progress)
    stream = extractor.encode_iter(
        inputs.texts, inputs.text_pairs, batch_size=batch_size, show_progress=show_progress
    )
    if kind == ".npy":
        array = np.lib.format.open_memmap(
            output, mode="w+", dtype=np.float32, shape=(len(inputs.texts), extractor.dim)
        )
        row = 0
        for part in stream:
            array[row : row + len(part)] = part
            row += len(part)
        array.flush()
        del array
        ids_path(output).write_text("".join(f"{i}\n" for i in inputs.ids), encoding="utf-8")
    elif kind in (".jsonl", ".json"):
        with output.open("w", encoding="utf-8") as f:
            ids = iter(inputs.ids)
            for part in stream:
                for vector in part:
                    f.write(
                        json.dumps({"id": next(ids), "vector": [round(float(x), 6) for x in vector]}) + "\n"
                    )
    else:
        raise ValueError(f"--output {output}: write vectors to .npy (with an ids file beside it) or .jsonl")
    return output


def _write_tokens(
    extractor: FeatureExtractor,
    inputs: EncodeInputs,
    output: Path,
    batch_size: int | None,
    layers: tuple[int, ...],
    show_progress: bool,
) -> Path:
    step = 1000  # texts per chunk: token features are large
    with output.open("w", encoding="utf-8") as f:
        for start in range(0, len(inputs.texts), step):
            texts = inputs.texts[start : start + step]
            pairs = None if inputs.text_pairs is None else inputs.text_pairs[start : start + step]
            for k, feats in enumerate(
                extractor.encode_tokens(
                    texts, pairs, layers=layers, batch_size=batch_size, show_progress=show_progress
                )
            ):
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
                f.write(
                    json.dumps({"id": inputs.ids[start + k], "features": tokens}, ensure_ascii=False) + "\n"
                )
    return output
