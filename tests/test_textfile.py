"""Tests for bertkit/textfile.py: gzip by its bytes, a byte-order mark dropped, and JSON documents and objects
whose errors name the file, the line and the mend."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from bertkit.textfile import load_json, load_json_object, numbered_lines, text_lines


def test_gzip_is_recognised_by_its_bytes_not_its_name(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbfone\r\ntwo\n"))
    assert [(n, t) for n, t, _ in numbered_lines(path)] == [(1, "one"), (2, "two")]


def test_json_documents_name_the_line(tmp_path: Path) -> None:
    doc = tmp_path / "doc.json"
    doc.write_text('{\n "data": [\n  1,\n ]\n}\n')
    with pytest.raises(ValueError, match=r"doc.json:4: not valid JSON \(.*\); expected SQuAD"):
        load_json(doc, "SQuAD-format JSON")
    doc.write_bytes(b'{\n"x": "caf\xe9"}')
    with pytest.raises(ValueError, match=r"doc.json:2: not valid UTF-8"):
        load_json(doc, "SQuAD-format JSON")
    with pytest.raises(FileNotFoundError, match="QA file .*nope.json does not exist"):
        load_json(tmp_path / "nope.json", "x", "QA file")


def test_json_objects_name_the_file_the_line_and_the_mend(tmp_path: Path) -> None:
    """load_json_object: the configs and metadata bertkit reads (model and training configs, tokenizer files,
    checkpoint state, stores' metadata) name the file, the line and what the object should be."""
    path = tmp_path / "config.json"
    path.write_text('{"hidden_size": 32,\n "num_hidden_layers": 2,}\n')
    with pytest.raises(ValueError, match=r"config.json:2: not valid JSON \(.*\); expected hyperparameters"):
        load_json_object(path, "hyperparameters")
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"config.json: holds a JSON list, not an object; expected hyperparameters"):
        load_json_object(path, "hyperparameters")
    path.write_bytes(gzip.compress(b'\xef\xbb\xbf{"a": 1}'))
    assert load_json_object(path, "x") == {"a": 1}


def test_text_lines_stop_at_a_line_that_is_not_text(tmp_path: Path) -> None:
    """text_lines: a whole-text reader's lines (gzip and a BOM read as numbered_lines); the first line that is not
    UTF-8 raises with file:line, after the lines before it."""
    path = tmp_path / "words.txt.gz"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbfone\n\ntwo\r\ncaf\xe9\nfour\n"))
    lines = text_lines(path, "word list")
    assert [next(lines), next(lines), next(lines)] == [(1, "one"), (2, ""), (3, "two")]
    with pytest.raises(ValueError, match=r"words.txt.gz:4: bytes 3-4 are not valid UTF-8; re-save the file as UTF-8"):
        next(lines)
