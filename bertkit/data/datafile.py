"""Opening data files, once for every reader: gzip (by its magic bytes), UTF-8 with or without a byte-order
mark, numbered lines, JSON lines and whole JSON documents. Every problem names its place as "file:line".

Readers build examples on top of these and turn a bad record into a Reject instead of raising (the one reader
contract: see bertkit.data.validate). A problem with the whole file (missing, not JSON at all, no header)
still raises, because no record of it can be trusted.

Example:
    for record in json_records(path):        # Record(source="train.jsonl:3", raw=..., obj={...}, problem=None)
        ...
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple, TypeVar

from bertkit.data.validate import Reject

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark (GLUE's MRPC files and Windows editors write one)
NOT_UTF8 = "bytes {start}-{end} are not valid UTF-8; re-save the file as UTF-8"

T = TypeVar("T")


class RecordError(ValueError):
    """A record that cannot become an example; the message is the reason, without the place (the reader adds it)."""


class Record(NamedTuple):
    """One non-blank line of a JSON-lines file: the object, or the problem that kept it from being one."""

    source: str  # "file:line"
    raw: str  # the line as read, without its line ending
    obj: dict[str, Any] | None
    problem: str | None


def open_binary(path: str | Path, what: str = "data file") -> IO[bytes]:
    """The file's bytes; gzip files (whatever their name) are decompressed on the fly."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    with path.open("rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == GZIP_MAGIC else path.open("rb")


def decoded_lines(path: str | Path, bad: dict[int, str], what: str = "data file") -> Iterator[str]:
    """Lines as text with their line endings (numbered from 1 in order); a line that is not UTF-8 is recorded
    in `bad` (line number -> reason) and yielded with the bad bytes replaced, so the caller can reject it."""
    with open_binary(path, what) as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as err:
                bad[number] = NOT_UTF8.format(start=err.start, end=err.end)
                yield raw.decode("utf-8", errors="replace")


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


class Line(NamedTuple):
    number: int  # 1-based
    text: str  # without the line ending
    problem: str | None  # why the line's bytes are not text, or None


def numbered_lines(path: str | Path, what: str = "data file") -> Iterator[Line]:
    """Every line of a text file (blank ones too), without its line ending."""
    bad: dict[int, str] = {}
    for number, text in enumerate(decoded_lines(path, bad, what), start=1):
        yield Line(number, text.rstrip("\r\n"), bad.get(number))


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


def load_json(path: str | Path, expected: str, what: str = "JSON file") -> Any:
    """A whole JSON document (SQuAD, C3); a file that is not UTF-8 JSON raises with file:line and `expected`."""
    path = Path(path)
    with open_binary(path, what) as f:
        data = f.read()
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(f"{path}:{line}: not valid UTF-8; re-save the file as UTF-8 ({expected})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno}); expected {expected}"
        ) from None


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
