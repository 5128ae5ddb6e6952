"""Bad rows either stop the run with one message listing file:line, or go to a rejects file, exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertkit.data.examples import TextExample
from bertkit.data.validate import Reject, handle_rejects, split_valid


def test_split_valid_runs_the_check() -> None:
    items = [
        TextExample("a", label="1", source="f:1"),
        Reject("f:2", "x", "broken"),
        TextExample("", label="1", source="f:3"),
    ]
    good, bad = split_valid(items, lambda e: "the text is empty" if not e.text else None)
    assert good == [items[0]]
    assert [(b.source, b.reason) for b in bad] == [("f:2", "broken"), ("f:3", "the text is empty")]
    assert json.loads(bad[1].row)["source"] == "f:3"


def test_error_lists_rows_and_the_fix() -> None:
    rejects = [Reject(f"train.tsv:{i}", "", "no label") for i in range(2, 30)]
    with pytest.raises(ValueError) as err:
        handle_rejects(rejects, None, "training")
    text = str(err.value)
    assert text.startswith("28 bad row(s) in the training data")
    assert "train.tsv:2: no label" in text and "... and 8 more" in text and "--rejects FILE" in text


def test_rejects_file_holds_exactly_the_rows(tmp_path: Path) -> None:
    rejects = [
        Reject("a.tsv:3", "raw\trow", "unknown label 'x'"),
        Reject("a.tsv:9", "other", "the text is empty"),
    ]
    path = tmp_path / "sub" / "rejects.jsonl"
    handle_rejects(rejects, path, "training")
    handle_rejects([], path, "dev")  # nothing to add
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [{"source": "a.tsv:3", "row": "raw\trow", "reason": "unknown label 'x'"},
                    {"source": "a.tsv:9", "row": "other", "reason": "the text is empty"}]  # fmt: skip
