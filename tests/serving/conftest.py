"""Fixtures for the serving tests: a real server on loopback (tests/live_server.py) and tiny model folders built
through the task code (task.build_model + save_model_folder), the way `bertkit train` writes them, from the shared
tiny BERT (hidden 32, 2 layers, 332-token vocab).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

import live_server  # noqa: E402


def _task_folder(tmp: Path, tiny: Path, family: str, options: dict, max_seq_length: int = 48) -> Path:
    from bertkit.tasks import build_task
    from bertkit.tokenization import Tokenizer
    from bertkit.training.checkpoint import save_model_folder
    from bertkit.training.config import TrainConfig

    task = build_task(family, options)
    model, _ = task.build_model(str(tiny))
    out = tmp / family
    save_model_folder(
        out, model, Tokenizer.from_pretrained(tiny), task, TrainConfig(max_seq_length=max_seq_length)
    )
    return out


@pytest.fixture(scope="session")
def tiny_dir(fixtures_dir: Path) -> Path:
    return fixtures_dir / "tiny-bert-hf"


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory, tiny_dir: Path) -> Path:
    """A plain encoder folder (BertModel weights + tokenizer), no bertkit.json."""
    from bertkit import BertModel
    from bertkit.tokenization import Tokenizer

    out = tmp_path_factory.mktemp("encoder")
    BertModel.from_pretrained(tiny_dir).save_pretrained(out)
    Tokenizer.from_pretrained(tiny_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory, tiny_dir: Path) -> Path:
    return _task_folder(
        tmp_path_factory.mktemp("models"), tiny_dir, "classification", {"labels": ["neg", "pos"]}
    )


@pytest.fixture(scope="session")
def qa_dir(tmp_path_factory, tiny_dir: Path) -> Path:
    return _task_folder(
        tmp_path_factory.mktemp("models"), tiny_dir, "qa", {"doc_stride": 16, "max_query_length": 16}
    )


@pytest.fixture(scope="session")
def tagger_dir(tmp_path_factory, tiny_dir: Path) -> Path:
    return _task_folder(
        tmp_path_factory.mktemp("models"), tiny_dir, "tagging", {"labels": ["O", "B-PER", "I-PER"]}
    )


@pytest.fixture(scope="session")
def ner_dir(tmp_path_factory, tiny_dir):
    """A tiny PER/LOC tagger (random head, seeded): the entities are arbitrary but fixed."""
    import torch

    from bertkit.tasks import build_task
    from bertkit.tokenization import Tokenizer
    from bertkit.training.checkpoint import save_model_folder
    from bertkit.training.config import TrainConfig

    torch.manual_seed(3)
    task = build_task("tagging", {"labels": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]})
    model, _ = task.build_model(str(tiny_dir))
    with torch.no_grad():
        model.classifier.weight.mul_(20)  # sharper scores, so entities of several pieces occur
    out = tmp_path_factory.mktemp("ner") / "tagger"
    save_model_folder(out, model, Tokenizer.from_pretrained(tiny_dir), task, TrainConfig(max_seq_length=16))
    return out


@pytest.fixture(scope="session")
def serve():
    """running_server(config) -> context manager yielding the base URL."""
    return live_server.running_server


@pytest.fixture(scope="session")
def http():
    """client(url, api_key=None) -> httpx.Client with a generous timeout."""
    return live_server.client
