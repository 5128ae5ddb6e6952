"""The rows and records of data files, once for every reader: TSV/CSV rows (a quoted field may span lines) and
JSON lines, over bertkit.textfile's lines (gzip, UTF-8 with or without a byte-order mark). Every problem names
its place as "file:line".

Readers build examples on top of these and turn a bad record into a Reject instead of raising (the one reader
contract: see bertkit.data.validate). A problem with the whole file (missing, not JSON at all, no header)
still raises, because no record of it can be trusted.

Example:
    for record in json_records(path):        # Record(source="train.jsonl:3", raw=..., obj={...}, problem=None)
        ...
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from bertkit.data.validate import Reject
from bertkit.textfile import decoded_lines, numbered_lines

T = TypeVar("T")


class RecordError(ValueError):
    """A record that cannot become an example; the message is the reason, without the place (the reader adds it)."""


class Record(NamedTuple):
    """One non-blank line of a JSON-lines file: the object, or the problem that kept it from being one."""

    source: str  # "file:line"
    raw: str  # the line as read, without its line ending
    obj: dict[str, Any] | None
    problem: str | None


class Row(NamedTuple):
    """One non-blank row of a delimited file."""

    number: int  # the row's first line (a quoted field may span lines)
    fields: list[str]  # [] when csv cannot parse the row
    raw: str  # the row's text as read, without its last line ending
    problem: str | None  # why the row cannot be trusted (not UTF-8, unparseable), or None


def csv_rows(path: str | Path, delimiter: str, quoting: int, what: str = "data file") -> Iterator[Row]:
    """The rows of a TSV/CSV file, blank lines skipped."""
    bad_lines: dict[int, str] = {}
    consumed: list[str] = []  # the lines csv has read since the last row

    def lines() -> Iterator[str]:
        for line in decoded_lines(path, bad_lines, what):
            consumed.append(line)
            yield line

    reader = csv.reader(lines(), delimiter=delimiter, quoting=quoting, strict=True)
    last = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            problem: str | None = f"cannot parse the row: {err}"
            fields = []
        else:
            problem = None
        first, last = last + 1, reader.line_num
        raw = "".join(consumed).rstrip("\r\n")
        consumed.clear()
        if problem is None and (not fields or (len(fields) == 1 and not fields[0].strip())):
            continue  # a blank line carries no data
        bad = [bad_lines[n] for n in range(first, last + 1) if n in bad_lines]
        yield Row(first, fields, raw, bad[0] if bad else problem)


def json_records(path: str | Path, what: str = "JSON lines file") -> Iterator[Record]:
    """One Record per non-blank line: the JSON object, or why the line is not one."""
    path = Path(path)
    for number, raw, problem in numbered_lines(path, what):
        if not raw.strip():
            continue
        source = f"{path}:{number}"
        if problem:
            yield Record(source, raw, None, problem)
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            yield Record(source, raw, None, f"not valid JSON ({err.msg} at column {err.colno})")
            continue
        if not isinstance(obj, dict):
            yield Record(source, raw, None, f"expected a JSON object, found {type(obj).__name__}")
            continue
        yield Record(source, raw, obj, None)


def parse_records(
    path: str | Path, build: Callable[[dict[str, Any], str], T | None], what: str = "JSON lines file"
) -> Iterator[T | Reject]:
    """The JSON-lines loop of every reader: `build(obj, source)` makes an example (None skips the line on
    purpose); a line that is not a JSON object, or for which build raises RecordError, becomes a Reject."""
    for source, raw, obj, problem in json_records(path, what):
        if problem is None:
            assert obj is not None
            try:
                example = build(obj, source)
            except RecordError as err:
                problem = str(err)
        if problem is not None:
            yield Reject(source, raw, problem)
        elif example is not None:
            yield example


def field(obj: Any, key: str, kind: type | tuple[type, ...] = str, where: str = "") -> Any:
    """obj[key], checked to be of `kind`; raises RecordError naming the field (prefixed by `where` inside a record).

    Example: field({"q": 1}, "q", str) raises RecordError("field 'q' should be str, got 1")
    """
    at = f"{where}: " if where else ""
    if not isinstance(obj, dict) or key not in obj:
        raise RecordError(f"{at}missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        name = " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__
        raise RecordError(f"{at}field {key!r} should be {name}, got {value!r:.80}")
    return value


def dumps(obj: Any) -> str:
    """A record as one JSON line, for a Reject's `row` when the record did not come from one line."""
    return json.dumps(obj, ensure_ascii=False)
