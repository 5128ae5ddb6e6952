"""TSV/CSV and JSONL readers: columns by index or name, official quirks (BOM, no quoting, gz), and every bad
row reported as a Reject with file:line and a reason."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bertkit.data.examples import TextExample
from bertkit.data.readers import READERS, read_jsonl, read_tsv
from bertkit.data.validate import Reject


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def test_tsv_by_index_and_by_name(tmp_path: Path) -> None:
    f = _write(tmp_path / "train.tsv", 'sentence\tlabel\nit \'s "great"\t1\nbad\t0\n')
    by_name = list(read_tsv(f, text="sentence", label="label"))  # header implied by names
    by_index = list(read_tsv(f, text=0, label=1, header=True))
    assert by_name == by_index
    assert by_name[0] == TextExample('it \'s "great"', None, "1", f"{f}:2")  # quotes kept: TSV has no quoting
    assert by_name[1].source == f"{f}:3"


def test_tsv_negative_index_and_pair(tmp_path: Path) -> None:
    f = _write(tmp_path / "rte.tsv", "index\ts1\ts2\tlabel\n0\tA man.\tA person.\tentailment\n")
    (ex,) = read_tsv(f, text=1, text_pair=2, label=-1, header=True)
    assert (ex.text, ex.text_pair, ex.label) == ("A man.", "A person.", "entailment")


def test_mrpc_bom_header(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "dev.tsv", b"\xef\xbb\xbfQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tA\tB\n"
    )
    (ex,) = read_tsv(f, text="#1 String", text_pair="#2 String", label="Quality")
    assert (ex.text, ex.text_pair, ex.label) == ("A", "B", "1")


def test_csv_quoting_and_multiline(tmp_path: Path) -> None:
    f = _write(tmp_path / "data.csv", 'text,label\n"hello, world",pos\n"two\nlines",neg\nplain,pos\n')
    rows = list(read_tsv(f, text="text", label="label"))
    assert [r.text for r in rows] == ["hello, world", "two\nlines", "plain"]
    assert [r.source.rsplit(":", 1)[1] for r in rows] == ["2", "3", "5"]


def test_gzip(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as g:
        g.write("good\t1\n")
    assert list(read_tsv(path, text=0, label=1)) == [TextExample("good", None, "1", f"{path}:1")]


def test_bad_rows_become_rejects(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "train.tsv",
        b"sentence\tlabel\nfine\t1\nno label column\nbad \xff bytes\t0\ttoo\tmany\nlast\t0\n\n",
    )
    rows = list(read_tsv(f, text=0, label=1, header=True))
    good = [r for r in rows if isinstance(r, TextExample)]
    bad = [r for r in rows if isinstance(r, Reject)]
    assert [g.text for g in good] == ["fine", "last"]
    assert [b.source for b in bad] == [f"{f}:3", f"{f}:4"]
    assert "1 columns but the header has 2" in bad[0].reason
    assert "UTF-8" in bad[1].reason
    assert bad[0].row == "no label column"


def test_missing_header_name_is_an_error(tmp_path: Path) -> None:
    f = _write(tmp_path / "t.tsv", "sentence\tlabel\nx\t1\n")
    with pytest.raises(ValueError, match=r"t.tsv:1: no column named 'text'.*'sentence', 'label'"):
        list(read_tsv(f, text="text", label="label"))


def test_short_row_without_header(tmp_path: Path) -> None:
    f = _write(tmp_path / "cola.tsv", "src\t1\t\tA sentence.\nsrc\t0\n")
    rows = list(read_tsv(f, text=3, label=1))
    assert rows[0].text == "A sentence."
    assert isinstance(rows[1], Reject) and "has 2 column(s), but text is column 3" in rows[1].reason


def test_where_label_map_and_skip(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "x.tsv", "language\tgold\tp\th\nzh\tcontradictory\ta\tb\nen\tneutral\tc\td\nzh\t-\te\tf\n"
    )
    rows = list(
        read_tsv(
            f,
            text="p",
            text_pair="h",
            label="gold",
            where={"language": "zh"},
            label_map={"contradictory": "contradiction"},
            skip_labels=("-",),
        )  # fmt: skip
    )
    assert rows == [TextExample("a", "b", "contradiction", f"{f}:2")]


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(read_tsv("/nonexistent/train.tsv", text=0))


def test_jsonl_fields_and_rejects(tmp_path: Path) -> None:
    lines = [
        json.dumps({"sentence1": "a", "sentence2": "b", "label": 1}),
        "{not json",
        json.dumps({"sentence1": "a"}),
        json.dumps([1, 2]),
        "",
        json.dumps({"sentence1": 5, "sentence2": "b", "label": "0"}),
        json.dumps({"sentence1": "x", "sentence2": "y", "label": ["p", "q"]}),
        json.dumps({"sentence1": "x", "sentence2": "y", "label": 2.5}),
    ]
    f = _write(tmp_path / "dev.jsonl", "\n".join(lines) + "\n")
    rows = list(read_jsonl(f, text="sentence1", text_pair="sentence2", label="label"))
    assert rows[0] == TextExample("a", "b", "1", f"{f}:1")  # integer labels become names
    assert [type(r).__name__ for r in rows] == ["TextExample", "Reject", "Reject", "Reject", "Reject",
                                                 "TextExample", "TextExample"]  # fmt: skip
    assert "not valid JSON" in rows[1].reason and rows[1].source == f"{f}:2"
    assert "no field 'sentence2'" in rows[2].reason
    assert "expected a JSON object" in rows[3].reason
    assert rows[4].source == f"{f}:6" and "must be a string" in rows[4].reason
    assert rows[5].label == ("p", "q") and rows[6].label == 2.5


def test_jsonl_optional_label(tmp_path: Path) -> None:
    f = _write(tmp_path / "test.jsonl", json.dumps({"text": "hi"}) + "\n")
    assert list(read_jsonl(f, label_optional=True)) == [TextExample("hi", None, None, f"{f}:1")]
    assert isinstance(next(read_jsonl(f)), Reject)


def test_registry() -> None:
    assert READERS["tsv"] is read_tsv and READERS["jsonl"] is read_jsonl
