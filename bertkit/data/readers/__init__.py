"""Readers, one module per on-disk format; READERS maps the names that presets and the CLI use to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from bertkit.data.readers.choice import read_c3, read_choice_jsonl, read_socialiqa
from bertkit.data.readers.conll import read_conll
from bertkit.data.readers.jsonl import read_jsonl
from bertkit.data.readers.squad import read_qa
from bertkit.data.readers.swag import read_swag
from bertkit.data.readers.tagged_jsonl import read_tagged_jsonl
from bertkit.data.readers.tsv import read_tsv

READERS: dict[str, Callable[..., Iterator[Any]]] = {
    "tsv": read_tsv,
    "csv": read_tsv,  # same reader; the delimiter follows the file name (.csv -> ',') or delimiter=
    "jsonl": read_jsonl,
    "conll": read_conll,  # CoNLL columns / one character per line (NER)
    "tagged_jsonl": read_tagged_jsonl,  # tokens + tags, or text + offset entities (NER)
    "squad": read_qa,  # SQuAD-format JSON (v1.1, v2.0, CMRC 2018), or QA JSON lines by the .jsonl suffix
    "swag": read_swag,
    "socialiqa": read_socialiqa,
    "c3": read_c3,
    "choice_jsonl": read_choice_jsonl,
}

__all__ = ["READERS", "read_jsonl", "read_tsv"]
