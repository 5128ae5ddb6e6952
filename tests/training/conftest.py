"""Fixtures for the engine tests: a tiny random BERT folder and a toy sentiment set (tiny_bert.py)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest


def _load_tiny():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(
        "bertkit_tests_tiny_bert", Path(__file__).with_name("tiny_bert.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = _load_tiny()


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
