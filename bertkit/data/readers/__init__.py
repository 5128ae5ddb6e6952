"""Readers, one module per on-disk format; READERS maps the names that presets and the CLI use to them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from bertkit.data.readers.jsonl import read_jsonl
from bertkit.data.readers.tsv import read_tsv

READERS: dict[str, Callable[..., Iterator[Any]]] = {
    "tsv": read_tsv,
    "csv": read_tsv,  # same reader; the delimiter follows the file name (.csv -> ',') or delimiter=
    "jsonl": read_jsonl,
}

__all__ = ["READERS", "read_jsonl", "read_tsv"]
