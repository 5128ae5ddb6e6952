"""CoNLL column reader on the real CoNLL-2003 and Chinese char-per-line corpora, and its errors."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from bertkit.data.readers.conll import read_conll, write_conll
from bertkit.data.tag_schemes import detect_scheme, tags_to_spans
from bertkit.data.validate import checked


def entity_counts(examples) -> Counter:
    return Counter(s.type for e in examples for s in tags_to_spans(e.tags))


def test_conll2003_counts_match_the_published_figures(data_dir):
    folder = data_dir / "conll2003"
    train = list(read_conll(folder / "train.txt"))
    valid = list(read_conll(folder / "valid.txt"))
    assert (len(train), sum(len(e.words) for e in train)) == (14041, 203621)
    assert (len(valid), sum(len(e.words) for e in valid)) == (3250, 51362)
    assert entity_counts(train) == {"PER": 6600, "LOC": 7140, "ORG": 6321, "MISC": 3438}
    assert detect_scheme(e.tags for e in train) == "IOB2"
    first = valid[0]
    assert first.words[:3] == ("CRICKET", "-", "LEICESTERSHIRE")
    assert first.tags[:3] == ("O", "O", "B-ORG")
    assert first.source.endswith("valid.txt:3")  # line 1 is -DOCSTART-, line 2 blank
    for e in valid[:50]:
        assert all(e.text[s:t] == w for w, (s, t) in zip(e.words, e.offsets, strict=True))


def test_other_columns(data_dir):
    chunk = next(read_conll(data_dir / "conll2003" / "valid.txt", tag_column=2))
    assert chunk.tags[2:5] == ("B-NP", "I-NP", "B-PP")
    words_only = next(read_conll(data_dir / "conll2003" / "valid.txt", tag_column=None))
    assert words_only.tags is None


def test_msra_chinese_characters(data_dir):
    test = list(read_conll(data_dir / "chinese_ner" / "msra" / "test.txt", joiner=""))
    assert len(test) == 4631
    assert sum(len(e.words) for e in test) == 172601
    begins = Counter(t[2:] for e in test for t in e.tags if t.startswith("B-"))
    assert begins == {"PER": 1973, "LOC": 2877, "ORG": 1331}  # the README's figures count B- tags
    # the corpus cut long sentences every 100 characters, 11 times inside a name: the second half of the
    # name opens with I-PER, which conlleval counts as an entity of its own
    assert entity_counts(test) == {"PER": 1984, "LOC": 2877, "ORG": 1331}
    e = test[0]
    assert e.text == "".join(e.words) and e.offsets[1] == (1, 2)
    gz = list(
        itertools.islice(read_conll(data_dir / "chinese_ner" / "msra" / "train.txt.gz", joiner=""), 100)
    )
    assert len(gz) == 100 and all(len(w) == 1 for e in gz for w in e.words)


def test_peoples_daily(data_dir):
    dev = list(read_conll(data_dir / "chinese_ner" / "peoples_daily" / "example.dev", joiner=""))
    assert (len(dev), sum(len(e.words) for e in dev)) == (2318, 109870)
    assert entity_counts(dev)["ORG"] == 984


def test_full_width_space_is_a_token(tmp_path):
    path = tmp_path / "zh.txt"
    path.write_text("中 B-ORG\n国 I-ORG\n\u3000 O\nＡ O\n\n\n日 B-LOC\n", encoding="utf-8")
    sents = list(read_conll(path, joiner=""))
    assert [e.words for e in sents] == [("中", "国", "\u3000", "Ａ"), ("日",)]
    assert sents[0].text == "中国\u3000Ａ"
    assert sents[1].source == f"{path}:7"


def test_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("EU NNP B-NP B-ORG\nrejects VBZ B-VP\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.txt:2: 3 columns where the sentence's earlier lines have 4"):
        checked(read_conll(bad))
    bad.write_text("EU B-ORG\nrejects Q-MISC\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.txt:2: tag 'Q-MISC'"):
        checked(read_conll(bad))
    bad.write_text("EU\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.txt:1: tag 'EU'"):
        checked(read_conll(bad))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checked(read_conll(tmp_path / "missing.txt"))


def test_write_then_read_round_trip(tmp_path):
    sents = [(["EU", "rejects"], ["B-ORG", "O"]), (["Peter"], ["B-PER"])]
    write_conll(tmp_path / "x.txt", sents)
    back = [(list(e.words), list(e.tags)) for e in read_conll(tmp_path / "x.txt")]
    assert back == sents
