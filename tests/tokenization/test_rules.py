"""rules.py: Google's BasicTokenizer in Python, and the facts that let the Rust engine follow it."""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path

import pytest

from bertkit.tokenization import rules


def test_basic_tokenize_matches_googles_recorded_output(fixtures_dir: Path):
    spec = json.loads((fixtures_dir / "tokenization.json").read_text(encoding="utf-8"))
    for case in spec["cases"]:
        for mode, lower in (("lower", True), ("cased", False)):
            words = rules.basic_tokenize(case["text"], lower)
            assert [w.text for w in words] == case["basic"][mode], (case["id"], mode)


def test_basic_tokenize_aligns_each_character_with_its_source():
    text = "İs ΟΔΟΣ\u200b, cafe\u0301中x"
    words = rules.basic_tokenize(text, lower=True)
    assert [w.text for w in words] == ["is", "οδος", ",", "cafe", "中", "x"]
    assert words[0].starts == (0, 1) and words[0].ends == (1, 2)  # 'İ'.lower() is two characters
    assert words[1].text[-1] == "ς" and words[1].starts[-1] == 6
    assert (words[2].starts, words[2].ends) == ((8,), (9,))  # after a deleted zero-width space
    assert words[3].ends[-1] == 14  # a stripped accent belongs to no character, as in the Rust engine
    assert rules.basic_tokenize("a\u0301\u0323b", True)[0].starts == (0, 3)


def test_canonical_order_moves_marks_with_their_sources():
    items = [("a", 0, 1), ("\u0301", 1, 2), ("\u0323", 2, 3)]
    ordered = rules._canonical_order(items)
    assert "".join(c for c, _, _ in ordered) == unicodedata.normalize("NFD", "a\u0301\u0323")
    assert ordered == [items[0], items[2], items[1]]


def test_needs_python_only_for_what_rust_cannot_do():
    assert not rules.needs_python("Hello, World!", lower=True)
    assert not rules.needs_python("中文 café ΟΔΟ", lower=True)
    assert rules.needs_python("ΟΔΟΣ", lower=True) and not rules.needs_python("ΟΔΟΣ", lower=False)
    assert rules.needs_python("a\ud800b", lower=False)


def _all_chars() -> list[str]:
    return [chr(cp) for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF and cp != 0x0A]


@pytest.fixture(scope="module")
def folded() -> list[tuple[str, str]]:
    """(char, NFD(char.lower())) for every character that lowercasing or NFD changes."""
    chars = _all_chars()
    joined = "\n".join(chars)
    out = unicodedata.normalize("NFD", joined.lower()).split("\n")
    return [(c, f) for c, f in zip(chars, out, strict=True) if c != f]


def test_cjk_split_commutes_with_lowercase_and_nfd(folded):
    """Google splits CJK before lowercasing, the engine after: the same words, for every code point."""
    for char, f in folded:
        cjk = rules.is_chinese_char(ord(char))
        assert all(rules.is_chinese_char(ord(c)) == cjk for c in f), hex(ord(char))


def test_whitespace_split_commutes_with_lowercase_and_nfd(folded):
    for char, f in folded:
        assert all(c.isspace() == char.isspace() for c in f), hex(ord(char))
