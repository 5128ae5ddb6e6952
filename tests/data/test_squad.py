"""SQuAD / CMRC 2018 JSON and QA JSONL readers: counts on the real files, answer anchoring, clear errors."""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from bertkit.data.examples import Answer
from bertkit.data.readers.squad import NOT_IN_CONTEXT, anchor_answer, read_qa, read_qa_jsonl, read_squad
from bertkit.data.validate import checked


def test_squad_v11_dev_counts_and_answers_sit_at_their_offsets(data_dir):
    examples = list(read_squad(data_dir / "squad" / "dev-v1.1.json"))
    assert len(examples) == 10570  # README: 48 articles, 2067 paragraphs, 10570 questions
    assert len({e.context for e in examples}) == 2067 and len({e.title for e in examples}) == 48
    first = examples[0]
    assert first.qid == "56be4db0acb8001400a502ec" and first.title == "Super_Bowl_50"
    assert first.answers[0] == Answer("Denver Broncos", 177)
    assert first.source.endswith("dev-v1.1.json#data[0].paragraphs[0].qas[0]")
    for e in examples:
        assert not e.is_impossible and e.answers
        assert all(e.context[a.start : a.start + len(a.text)] == a.text for a in e.answers)


def test_cmrc2018_answers_are_reanchored_or_marked_not_in_context(data_dir, caplog):
    with caplog.at_level(logging.WARNING):
        train = list(read_squad(data_dir / "cmrc2018" / "cmrc2018_train.json.gz"))
    assert len(train) == 10142
    assert "21 answers did not sit at their answer_start" in caplog.text  # README: 21 mismatched offsets
    assert all(e.context[a.start : a.start + len(a.text)] == a.text for e in train for a in e.answers)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        dev = list(read_squad(data_dir / "cmrc2018" / "cmrc2018_dev.json"))
    assert len(dev) == 3219 and all(len(e.answers) == 3 for e in dev)
    lost = [a for e in dev for a in e.answers if a.start == NOT_IN_CONTEXT]
    assert len(lost) == 193 and "193 answers do not occur in their context" in caplog.text
    kept = [a for e in dev for a in e.answers if a.start != NOT_IN_CONTEXT]
    assert len(kept) == 3 * 3219 - 193


def test_anchor_answer_prefers_the_given_offset_then_the_nearest_occurrence():
    assert anchor_answer("a b a b a", "a", 4) == 4
    assert anchor_answer("a b a b a", "a", 5) == 4  # 4 and 6 tie at distance 1: the earlier one
    assert anchor_answer("a b a b a", "a", 7) == 8
    assert anchor_answer("abc", "x", 0) == NOT_IN_CONTEXT
    assert anchor_answer("abc", "abc", -1) == 0


def _write_v2(path, qas):
    doc = {
        "version": "v2.0",
        "data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.", "qas": qas}]}],
    }
    path.write_text(json.dumps(doc))
    return path


def test_squad_v2_is_impossible(tmp_path):
    path = _write_v2(
        tmp_path / "v2.json",
        [
            {
                "id": "a",
                "question": "Where is Paris?",
                "answers": [{"text": "France", "answer_start": 12}],
                "is_impossible": False,
            },
            {
                "id": "b",
                "question": "Where is Rome?",
                "answers": [],
                "is_impossible": True,
                "plausible_answers": [{"text": "France", "answer_start": 12}],
            },
        ],
    )
    a, b = read_squad(path)
    assert a.answers == (Answer("France", 12),) and not a.is_impossible
    assert b.answers == () and b.is_impossible  # plausible_answers are not references


def test_squad_errors_name_the_file_and_the_place(tmp_path):
    path = _write_v2(tmp_path / "bad.json", [{"id": "a", "answers": []}])
    with pytest.raises(
        ValueError, match=r"bad.json#data\[0\].paragraphs\[0\].qas\[0\]: missing field 'question'"
    ):
        checked(read_squad(path))
    path = _write_v2(
        tmp_path / "bad2.json",
        [{"id": "a", "question": "q", "answers": [{"text": "x", "answer_start": "3"}]}],
    )
    with pytest.raises(ValueError, match=r"answers\[0\]: field 'answer_start' should be int"):
        checked(read_squad(path))
    path = _write_v2(
        tmp_path / "bad3.json",
        [
            {
                "id": "a",
                "question": "q",
                "is_impossible": True,
                "answers": [{"text": "Paris", "answer_start": 0}],
            }
        ],
    )
    with pytest.raises(ValueError, match="is_impossible is true but the question has answers"):
        checked(read_squad(path))
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ValueError, match="'data' list"):
        checked(read_squad(tmp_path / "list.json"))
    with pytest.raises(FileNotFoundError, match="nope.json"):
        checked(read_squad(tmp_path / "nope.json"))


def test_qa_jsonl_both_answer_layouts_and_default_ids(tmp_path):
    rows = [
        {
            "id": "x",
            "question": "Where?",
            "context": "In Paris.",
            "answers": [{"text": "Paris", "answer_start": 3}],
        },
        {"question": "Where?", "context": "In Paris.", "answers": {"text": ["Paris"], "answer_start": [3]}},
        {"question": "Who?", "context": "In Paris.", "answers": []},
        {"question": "Who?", "context": "In Paris."},
    ]
    path = tmp_path / "qa.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n\n")
    a, b, c, d = read_qa(path)
    assert a.qid == "x" and a.answers == (Answer("Paris", 3),)
    assert (
        b.qid == "qa.jsonl.gz:2" and b.answers == (Answer("Paris", 3),) and b.source.endswith("qa.jsonl.gz:2")
    )
    assert c.is_impossible and c.answers == ()
    assert not d.is_impossible and d.answers == ()  # no field: no references, not "unanswerable"


def test_qa_jsonl_custom_field_names_and_errors(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text(
        json.dumps({"q": "Where?", "passage": "In Paris.", "gold": [{"text": "Paris", "answer_start": 3}]})
        + "\n"
    )
    (e,) = read_qa_jsonl(path, question="q", context="passage", answers="gold")
    assert e.question == "Where?" and e.answers == (Answer("Paris", 3),)
    with pytest.raises(ValueError, match=r"qa.jsonl:1: missing field 'context'"):
        checked(read_qa_jsonl(path))
    path.write_text('{"question": "q", "context": "c"\n')
    with pytest.raises(ValueError, match=r"qa.jsonl:1: not valid JSON"):
        checked(read_qa_jsonl(path))
