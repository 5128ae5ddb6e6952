"""Reading the text and JSON files a user hands bertkit, for every level of the package: gzip (by its magic
bytes, whatever the name), UTF-8 with or without a byte-order mark, numbered lines, whole JSON documents and
JSON objects (configs, metadata). A problem names its place as "file:line" and says how to mend the file.

bertkit.data.datafile builds the readers' rows and records on top of these.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NamedTuple

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark (GLUE's MRPC files and Windows editors write one)
NOT_UTF8 = "bytes {start}-{end} are not valid UTF-8; re-save the file as UTF-8"


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


class Line(NamedTuple):
    number: int  # 1-based
    text: str  # without the line ending
    problem: str | None  # why the line's bytes are not text, or None


def numbered_lines(path: str | Path, what: str = "data file") -> Iterator[Line]:
    """Every line of a text file (blank ones too), without its line ending."""
    bad: dict[int, str] = {}
    for number, text in enumerate(decoded_lines(path, bad, what), start=1):
        yield Line(number, text.rstrip("\r\n"), bad.get(number))


def text_lines(path: str | Path, what: str = "text file") -> Iterator[tuple[int, str]]:
    """(number, text) for every line, as numbered_lines; a line that is not UTF-8 raises with its file:line,
    for a reader whose whole file must be text (a corpus, a word list), not one that rejects a record."""
    for number, text, problem in numbered_lines(path, what):
        if problem:
            raise ValueError(f"{path}:{number}: {problem}")
        yield number, text


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


def load_json_object(path: str | Path, expected: str, what: str = "JSON file") -> dict[str, Any]:
    """load_json for a file that must hold one JSON object (configs, metadata): anything else raises naming the
    file and `expected`, which says what the object is and how to mend the file."""
    data = load_json(path, expected, what)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: holds a JSON {type(data).__name__}, not an object; expected {expected}")
    return data
