"""Multiple-choice readers: Social IQa (JSONL + labels), C3 JSON, generic JSONL."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bertkit.data.readers.choice import read_c3, read_choice_jsonl, read_socialiqa
from bertkit.data.validate import checked


def test_socialiqa_dev_counts_and_label_balance(data_dir):
    d = data_dir / "socialiqa"
    examples = list(read_socialiqa(d / "dev.jsonl", d / "dev-labels.lst"))
    assert len(examples) == 1954
    assert Counter(e.label for e in examples) == {0: 643, 1: 654, 2: 657}  # README: labels 1/2/3
    first = examples[0]
    assert first.context == "Tracy didn't go home that evening and resisted Riley's attacks."
    assert first.choices == ("make a new plan", "Go home and see Riley", "Find somewhere to go")
    assert first.label == 2  # labels file line 1 is "3" (1-based)
    assert first.source.endswith("dev.jsonl:1")


def test_socialiqa_train_is_read_from_gzip(data_dir):
    d = data_dir / "socialiqa"
    assert sum(1 for _ in read_socialiqa(d / "train.jsonl.gz", d / "train-labels.lst")) == 33410


def test_socialiqa_label_errors(tmp_path):
    row = {"context": "c", "question": "q", "answerA": "a", "answerB": "b", "answerC": "c"}
    data = tmp_path / "x.jsonl"
    data.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    labels = tmp_path / "x-labels.lst"
    labels.write_text("1\n")
    with pytest.raises(ValueError, match="x-labels.lst has 1 labels but .*x.jsonl has more"):
        checked(read_socialiqa(data, labels))
    labels.write_text("1\n4\n")
    with pytest.raises(ValueError, match=r"x-labels.lst:2: label '4' is not a 1-based answer index in 1..3"):
        checked(read_socialiqa(data, labels))
    assert [e.label for e in read_socialiqa(data)] == [None, None]


def test_c3_dev_and_test(data_dir):
    dev = list(read_c3(data_dir / "c3" / "dev.json"))
    assert len(dev) == 3816 and all(e.label is not None for e in dev)
    first = dev[0]
    assert (
        first.context
        == "男：听说你们公司要派你去南方工作?\n女：是呀，虽说那边环境好，待遇也不错，可我还是觉得在家里最好。"
    )
    assert (
        first.question == "他们在谈论什么?"
        and first.choices == ("旅行", "坏境", "工作", "家庭")
        and first.label == 2
    )
    assert {len(e.choices) for e in dev} == {2, 3, 4}  # any number of choices
    test = list(read_c3(data_dir / "c3" / "test.json"))
    assert len(test) == 3892 and all(e.label is None for e in test)


def test_c3_answer_must_be_a_choice(tmp_path):
    path = tmp_path / "c3.json"
    path.write_text(json.dumps([[["ctx"], [{"question": "q", "choice": ["a", "b"], "answer": "c"}], "id"]]))
    with pytest.raises(ValueError, match=r"c3.json#0.questions\[0\]: answer 'c' is not one of the choices"):
        checked(read_c3(path))


def test_generic_choice_jsonl(tmp_path):
    path = tmp_path / "mc.jsonl"
    rows = [
        {"context": "It rains.", "question": "Take?", "choices": ["umbrella", "sunglasses"], "label": 0},
        {"context": "It rains.", "choices": ["umbrella", "hat", "boots"], "label": "boots"},
        {"context": "It rains.", "choices": ["umbrella", "hat"]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    a, b, c = read_choice_jsonl(path)
    assert (a.label, a.question, len(a.choices)) == (0, "Take?", 2)
    assert (b.label, b.question, len(b.choices)) == (2, "", 3)
    assert c.label is None
    path.write_text(json.dumps({"context": "x", "choices": ["a", "b"], "label": 2}))
    with pytest.raises(ValueError, match=r"mc.jsonl:1: label 2 is outside 0..1 \(labels are 0-based\)"):
        checked(read_choice_jsonl(path))
    path.write_text(json.dumps({"context": "x", "choices": ["a"], "label": 0}))
    with pytest.raises(ValueError, match="at least two strings"):
        checked(read_choice_jsonl(path))
    path.write_text(json.dumps({"passage": "x", "options": ["a", "b"], "answer": "b"}))
    (e,) = read_choice_jsonl(path, context="passage", choices="options", label="answer")
    assert e.label == 1
