"""The inputs of `bertkit encode`: rows of (text, text_pair, id), in memory or streamed from a file.

Formats: .txt (one text per line; every line is a row, blank ones too), .tsv/.csv (columns by index or header
name), .jsonl/.json (field `text`, optional `text_pair` and `id`); gzipped or not. The id is the JSON `id` field
when present, else the line number.

open_inputs(path) checks the whole file once (a bad row stops the run before anything is encoded, naming its
line) and counts its rows, then reads it again row by row as the rows are encoded: memory holds a chunk of
texts, never the file. read_inputs(path) reads it into lists (EncodeInputs), for inputs made in Python.
Both give rows(start, stop), count and has_pairs, which is all encode_file and the ranks use.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bertkit.data.datafile import json_records
from bertkit.data.readers.tsv import read_tsv
from bertkit.data.validate import Reject
from bertkit.textfile import decoded_lines

logger = logging.getLogger(__name__)

Column = int | str
Row = tuple[str, str | None, str]  # (text, text_pair or None, id)
DELIMITED, JSON_LINES, PLAIN = (".tsv", ".csv"), (".jsonl", ".json", ".ndjson"), (".txt", ".text", "")


class Rows(Protocol):
    """What encode_file reads: the number of rows, whether they have pairs, and the rows in order."""

    count: int
    has_pairs: bool

    def rows(self) -> Iterator[Row]: ...


@dataclass(frozen=True)
class EncodeInputs:
    """Rows held in lists."""

    texts: list[str]
    text_pairs: list[str] | None
    ids: list[str]

    @property
    def count(self) -> int:
        return len(self.texts)

    @property
    def has_pairs(self) -> bool:
        return self.text_pairs is not None

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[Row]:
        pairs = self.text_pairs if self.text_pairs is not None else [None] * len(self.texts)
        return itertools.islice(zip(self.texts, pairs, self.ids, strict=True), start, stop)


class InputFile:
    """A file of rows, checked and counted when opened, read again (from the disk) by every rows() call."""

    def __init__(
        self, path: str | Path, text: Column | None = None, text_pair: Column | None = None,
        header: bool | None = None,
    ) -> None:  # fmt: skip
        self.path, self.text, self.text_pair, self.header = Path(path), text, text_pair, header
        self.kind = suffix(self.path)
        if self.kind not in DELIMITED + JSON_LINES + PLAIN:
            logger.warning("%s: unknown suffix %r, read as plain text (one text per line)", path, self.kind)
        self.count, self.has_pairs = self._check()

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[Row]:
        return itertools.islice(self._rows(), start, stop)

    def _check(self) -> tuple[int, bool]:
        if self.kind in DELIMITED:
            count, bad, first = 0, 0, None
            for row in self._tsv():
                if isinstance(row, Reject):
                    bad, first = bad + 1, first or row
                count += 1
            if first is not None:
                raise ValueError(f"{first.source}: {first.reason} ({bad} bad row(s) in all); fix the file")
            return count, self.text_pair is not None
        if self.kind in JSON_LINES:
            return self._check_jsonl()
        return sum(1 for _ in self._rows()), False

    def _check_jsonl(self) -> tuple[int, bool]:
        count, first_pair, first_single = 0, None, None
        for _, pair, _, source in self._jsonl():
            if pair is None:
                first_single = first_single or source
            else:
                first_pair = first_pair or source
            count += 1
        pair_field = str(self.text_pair or "text_pair")
        if first_pair and first_single:
            raise ValueError(
                f"{self.path}: some rows have {pair_field!r} ({first_pair}) and some do not ({first_single}); "
                "encode pairs and single texts in separate files"
            )
        if self.text_pair is not None and first_single:
            raise ValueError(f"{first_single}: no field {pair_field!r}")
        return count, first_pair is not None

    def _rows(self) -> Iterator[Row]:
        if self.kind in DELIMITED:
            for row in self._tsv():
                if isinstance(row, Reject):  # the file changed since it was checked
                    raise ValueError(f"{row.source}: {row.reason}; fix the file")
                yield row.text, row.text_pair, row.source.rsplit(":", 1)[-1]
        elif self.kind in JSON_LINES:
            for text, pair, id_, _ in self._jsonl():
                yield text, pair, id_
        else:
            bad: dict[int, str] = {}
            for number, line in enumerate(decoded_lines(self.path, bad), start=1):
                if number in bad:
                    raise ValueError(f"{self.path}:{number}: {bad[number]}")
                yield line.rstrip("\r\n"), None, str(number)

    def _tsv(self) -> Iterator:
        text = 0 if self.text is None else self.text
        return read_tsv(self.path, text=text, text_pair=self.text_pair, header=self.header)

    def _jsonl(self) -> Iterator[tuple[str, str | None, str, str]]:
        """(text, pair, id, source) per record; a record that is not one raises, naming its line."""
        field, pair_field = str(self.text or "text"), str(self.text_pair or "text_pair")
        for source, _, obj, problem in json_records(self.path):
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
            yield value, pair, str(obj["id"]) if "id" in obj else source.rsplit(":", 1)[-1], source


def open_inputs(
    path: str | Path, text: Column | None = None, text_pair: Column | None = None, header: bool | None = None
) -> InputFile:
    """The rows of a file, checked and counted now, streamed from the disk when encoded."""
    return InputFile(path, text, text_pair, header)


def read_inputs(
    path: str | Path, text: Column | None = None, text_pair: Column | None = None, header: bool | None = None
) -> EncodeInputs:
    """Every row of a file in lists: texts, pairs (None for single texts) and ids."""
    source = open_inputs(path, text, text_pair, header)
    texts, pairs, ids = [], [], []
    for row_text, pair, id_ in source.rows():
        texts.append(row_text)
        pairs.append(pair)
        ids.append(id_)
    return EncodeInputs(texts, pairs if source.has_pairs else None, ids)


def suffix(path: Path) -> str:
    """The format suffix, lower-cased, of a name with or without .gz."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return Path(name).suffix.lower()
