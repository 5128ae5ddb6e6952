"""The one reader contract, over every reader in READERS: a good record is an example, a bad one a Reject with
file:line (or file#place) and the reason, and the default path (`checked`) stops with that same place. The same
files gzipped, with a byte-order mark, or with a line that is not UTF-8 behave the same way, through one opener."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bertkit.data.datafile import csv_rows, json_records
from bertkit.data.readers import READERS
from bertkit.data.validate import Reject, checked

SQUAD_GOOD = {"id": "q1", "question": "Where?", "answers": [{"text": "Paris", "answer_start": 3}]}
SQUAD_BAD = {"id": "q2", "answers": []}  # no question
SWAG_HEADER = "sent1,sent2,ending0,ending1,label\n"
SIQA = {"context": "c", "question": "q", "answerA": "a", "answerB": "b", "answerC": "c"}


def _lines(*rows: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


# reader name -> (file name, reader arguments, text with a good record then a bad one, where the bad one is,
# a piece of its reason)
CASES = {
    "tsv": ("t.tsv", {"text": 0, "label": 1}, "good\tpos\nno label\n", ":2", "has 1 column(s)"),
    "csv": ("t.csv", {"text": 0, "label": 1}, 'good,pos\n"open quote,neg\n', ":2", "cannot parse"),
    "jsonl": ("t.jsonl", {}, _lines({"text": "a", "label": "x"}, {"text": 3, "label": "x"}), ":2",
              "must be a string"),
    "conll": ("t.txt", {}, "EU B-ORG\nrejects O\n\nBad Q-MISC\n", ":4", "tag 'Q-MISC'"),
    "tagged_jsonl": ("t.jsonl", {}, _lines({"tokens": ["a"], "tags": ["O"]}, {"tokens": ["a"], "tags": []}),
                     ":2", "one tag per token"),
    "squad": ("t.json", {}, json.dumps({"data": [{"title": "T", "paragraphs": [
        {"context": "In Paris.", "qas": [SQUAD_GOOD, SQUAD_BAD]}]}]}),
        "#data[0].paragraphs[0].qas[1]", "missing field 'question'"),
    "swag": ("t.csv", {}, SWAG_HEADER + "c,q,e0,e1,0\nc,q,e0,e1,5\n", ":3", "label 5 is outside 0..1"),
    "socialiqa": ("t.jsonl", {}, _lines(SIQA, {**SIQA, "answerB": 2}), ":2", "field 'answerB' should be str"),
    "c3": ("t.json", {}, json.dumps([[["ctx"], [{"question": "q", "choice": ["a", "b"], "answer": "a"},
                                                {"question": "q", "choice": ["a", "b"], "answer": "z"}], "id"]]),
           "#0.questions[1]", "answer 'z' is not one of the choices"),
    "choice_jsonl": ("t.jsonl", {}, _lines({"context": "c", "choices": ["a", "b"], "label": 1},
                                           {"context": "c", "choices": ["a", "b"], "label": 2}), ":2",
                     "label 2 is outside 0..1"),
}  # fmt: skip


def test_every_reader_is_covered() -> None:
    assert set(CASES) == set(READERS)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("packing", ["plain", "gzip", "bom"])
def test_a_bad_record_is_a_reject_and_the_default_stops_at_it(name: str, packing: str, tmp_path: Path) -> None:
    file_name, fields, text, where, reason = CASES[name]
    data = text.encode("utf-8")
    path = tmp_path / file_name
    if packing == "gzip":
        path = tmp_path / (file_name + ".gz")
        data = gzip.compress(data)
    elif packing == "bom":
        data = b"\xef\xbb\xbf" + data
    path.write_bytes(data)
    items = list(READERS[name](path, **fields))
    assert len(items) == 2 and not isinstance(items[0], Reject)
    bad = items[1]
    assert isinstance(bad, Reject) and bad.source == f"{path}{where}" and reason in bad.reason
    assert bad.row  # the record itself goes to the rejects file
    with pytest.raises(ValueError, match="1 bad row"):
        checked(READERS[name](path, **fields))
    try:
        checked(READERS[name](path, **fields))
    except ValueError as err:
        assert f"{path}{where}: " in str(err) and reason in str(err)
    assert checked(READERS[name](path, **fields), rejects_path=tmp_path / "r.jsonl") == items[:1]
    (written,) = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert written == {"source": bad.source, "row": bad.row, "reason": bad.reason}


@pytest.mark.parametrize("name", ["tsv", "jsonl", "conll", "tagged_jsonl", "choice_jsonl", "swag"])
def test_a_line_that_is_not_utf8_is_a_reject(name: str, tmp_path: Path) -> None:
    file_name, fields, text, _, _ = CASES[name]
    good = text.splitlines(keepends=True)
    first = good[0]
    latin1 = "caf\xe9".encode("latin-1")
    if name == "swag":  # header, then one good row, then the bad one
        body = (good[0] + good[1]).encode() + b"c,q," + latin1 + b",e1,0\n"
        line = 3
    elif name == "conll":
        body = (first + "\n").encode() + latin1 + b" O\n"
        line = 3
    elif name == "tsv":
        body = first.encode() + latin1 + b"\tpos\n"
        line = 2
    else:
        body = first.encode() + json.dumps({"text": "@"}).encode().replace(b"@", latin1) + b"\n"
        line = 2
    path = tmp_path / file_name
    path.write_bytes(body)
    items = list(READERS[name](path, **fields))
    assert isinstance(items[-1], Reject) and items[-1].source == f"{path}:{line}"
    assert "are not valid UTF-8; re-save the file as UTF-8" in items[-1].reason
    assert not any(isinstance(i, Reject) for i in items[:-1])


def test_json_records_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n\n[1]\n{"a": \n')
    got = [(r.source.rsplit(":", 1)[1], r.obj, r.problem) for r in json_records(path)]
    assert got == [("1", {"a": 1}, None), ("3", None, "expected a JSON object, found list"),
                   ("4", None, "not valid JSON (Expecting value at column 7)")]  # fmt: skip


def test_csv_rows_span_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text('a,b\n"two\nlines",c\n\nd,e\n')
    rows = [(r.number, r.fields, r.raw) for r in csv_rows(path, ",", 0)]
    assert rows == [(1, ["a", "b"], "a,b"), (2, ["two\nlines", "c"], '"two\nlines",c'), (5, ["d", "e"], "d,e")]
