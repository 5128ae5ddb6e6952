"""JSONL tagging reader: tokens + tags, or text + character-offset entities."""

from __future__ import annotations

import json

import pytest

from bertkit.data.readers.tagged_jsonl import read_tagged_jsonl
from bertkit.data.tag_schemes import tags_to_spans
from bertkit.data.validate import checked


def write(tmp_path, rows) -> str:
    path = tmp_path / "x.jsonl"
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
    )
    return path


def test_tokens_and_tags(tmp_path):
    path = write(
        tmp_path,
        [{"tokens": ["EU", "rejects", "German"], "tags": ["B-ORG", "O", "B-MISC"]}, "", {"tokens": ["x"]}],
    )
    a, b = read_tagged_jsonl(path)
    assert a.tags == ("B-ORG", "O", "B-MISC") and a.text == "EU rejects German" and a.offsets[2] == (11, 17)
    assert b.tags is None and a.source.endswith("x.jsonl:1") and b.source.endswith("x.jsonl:3")


def test_text_and_entities_with_cut_words(tmp_path):
    text = "Paris-based Acme Corp. hired Ann."
    rows = [
        {
            "text": text,
            "entities": [
                {"start": 0, "end": 5, "type": "LOC", "text": "Paris"},
                [12, 21, "ORG"],
                {"start": 29, "end": 32, "label": "PER"},
            ],
        },
        {"text": "张三在北京。", "entities": [[0, 2, "PER"], [3, 5, "LOC"]]},
    ]
    path = write(tmp_path, rows)
    en = next(read_tagged_jsonl(path))
    spans = [(s.type, en.offsets[s.start][0], en.offsets[s.end - 1][1]) for s in tags_to_spans(en.tags)]
    assert spans == [("LOC", 0, 5), ("ORG", 12, 21), ("PER", 29, 32)]
    assert en.words[:2] == ("Paris", "-based")  # cut at the entity boundary, nothing lost
    zh = list(read_tagged_jsonl(path, split="chars", scheme="BMES"))[1]
    assert zh.tags == ("B-PER", "E-PER", "O", "B-LOC", "E-LOC", "O")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{not json", "x.jsonl:1: not valid JSON"),
        ('["a"]', "expected a JSON object"),
        ({"tokens": ["a", "b"], "tags": ["O"]}, "one tag per token"),
        ({"tokens": ["a", ""]}, "non-empty"),
        ({"tokens": ["a"], "tags": ["PER"]}, r"tags\[0\]: tag 'PER'"),
        ({"text": "abc", "entities": [[0, 9, "X"]]}, "need 0 <= start < end <= 3"),
        ({"text": "abc", "entities": [{"start": 0, "end": 2, "type": "X", "text": "bc"}]}, "says text 'bc'"),
        ({"text": "abcd", "entities": [[0, 2, "X"], [1, 3, "Y"]]}, "overlap"),
        ({"text": "abc", "entities": [[0, 1, ""]]}, "non-empty 'type'"),
        ({"sentence": "abc"}, "no 'tokens' or 'text' field"),
    ],
)
def test_errors_name_the_line(tmp_path, row, message):
    with pytest.raises(ValueError, match=message):
        checked(read_tagged_jsonl(write(tmp_path, [row])))
