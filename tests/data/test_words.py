"""Word splitting with offsets: CoNLL-like words, one word per character, cuts at entity boundaries."""

from __future__ import annotations

import pytest

from bertkit.data.words import cut_at, example_from_text, join_words, split_words


def test_split_words_modes():
    text = "U.S. troops in 中国 cost 3.5% of AT&T's 1996-08-30 budget."
    words = split_words(text, "words")
    assert [w for w, _, _ in words] == [
        "U.S.", "troops", "in", "中", "国", "cost", "3.5", "%", "of", "AT&T", "'", "s", "1996-08-30", "budget", ".",
    ]  # fmt: skip
    assert all(text[s:e] == w for w, s, e in words)
    chars = split_words("北京 ＡＢ，2008年", "chars")
    assert [w for w, _, _ in chars] == ["北", "京", "Ａ", "Ｂ", "，", "2", "0", "0", "8", "年"]
    assert chars[2][1:] == (3, 4)
    with pytest.raises(ValueError, match="unknown word split mode"):
        split_words("x", "bpe")


def test_helpers():
    assert cut_at([("Paris-based", 0, 11)], {5}) == [("Paris", 0, 5), ("-based", 5, 11)]
    assert join_words(["EU", "rejects"]) == ("EU rejects", ((0, 2), (3, 10)))
    ex = example_from_text("  Hi there", "words")
    assert ex.words == ("Hi", "there") and ex.offsets == ((2, 4), (5, 10)) and ex.tags is None
