"""Fixtures for the engine tests: a tiny random BERT folder and a toy sentiment set (tiny_bert.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import tiny_bert as tiny


@pytest.fixture(scope="session")
def toy() -> Callable:
    """toy(n, seed, pair=False) -> list[TextExample]."""
    return tiny.toy_examples


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_model_no_dropout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.make_tiny_model(tmp_path_factory.mktemp("tiny0") / "model", dropout=0.0)
