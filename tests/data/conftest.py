"""Fixtures for the data tests: tokenizers of the real English (bert-base-uncased) and Chinese
(bert-base-chinese) vocabularies in ../shared/models/vocab."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertkit.tokenization import Tokenizer


@pytest.fixture(scope="module")
def english_tokenizer(models_dir: Path) -> Tokenizer:
    return Tokenizer.from_vocab(models_dir / "vocab/bert-base-uncased-vocab.txt", do_lower_case=True)


@pytest.fixture(scope="module")
def chinese_tokenizer(models_dir: Path) -> Tokenizer:
    return Tokenizer.from_vocab(models_dir / "vocab/bert-base-chinese-vocab.txt", do_lower_case=True)
