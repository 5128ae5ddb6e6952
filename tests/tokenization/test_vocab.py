"""vocab.py: Google's load_vocab, with clear errors."""

from __future__ import annotations

import pytest

from bertkit.tokenization.vocab import load_vocab


def test_lines_are_stripped_and_numbered(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n  a \r\nb\n", encoding="utf-8")
    assert load_vocab(path) == {"[PAD]": 0, "a": 1, "b": 2}


def test_duplicate_token_names_file_and_line(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("a\nb\na \n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab.txt:3: token 'a' repeats line 1"):
        load_vocab(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        load_vocab(tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_vocab(tmp_path / "missing.txt")
