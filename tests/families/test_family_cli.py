"""Each BERT-family checkpoint end to end through the CLI: train -> predict -> serve -> export -> ONNX serve.

Tiny random models of each family are made with transformers (tests/tiny_families.py: 3 heads of 8,
``embedding_size != hidden_size`` where the family has one) and saved as HF folders with their own tokenizer
files: WordPiece (bert-base-uncased's vocab.txt) for DistilBERT, ELECTRA and ERNIE, the tiny byte-level BPE for
RoBERTa, the tiny SentencePiece models for ALBERT and XLM-R (conftest ``subword_dirs``). Each is fine-tuned on 160
SST-2 sentences and on 96 CoNLL-2003 sentences, and `bertkit predict`, `bertkit serve`, `bertkit export` (its own
check) and `bertkit serve --backend onnx` must decode the same outputs. Slow: about 20 s per family and task.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertkit.cli.main import main

transformers = pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from bertkit.serving.config import ServeConfig  # noqa: E402

import live_server  # noqa: E402
import tiny_families  # noqa: E402

FAMILIES = ["distilbert", "albert", "roberta", "xlm-roberta", "electra", "ernie"]


def _known_families() -> tuple[str, ...]:
    try:
        from bertkit.model.families import FAMILIES as known
    except ImportError:  # a checkout from before the family seam
        return ("bert",)
    return tuple(known)


def _family_params(names: list[str]) -> list:
    """The families, each skipped (saying so) on a checkout of bertkit that does not have it."""
    known = _known_families()
    reason = "this checkout of bertkit has no {} family (bertkit.model.families)"
    return [pytest.param(n, marks=pytest.mark.skipif(n not in known, reason=reason.format(n))) for n in names]


@pytest.fixture(scope="module")
def data(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160/40 SST-2 train/dev sentences and 96/32 CoNLL-2003 train/valid sentences."""
    folder = tmp_path_factory.mktemp("family-data")
    sst = (data_dir / "glue/SST-2/train.tsv").read_text(encoding="utf-8").splitlines()
    (folder / "train.tsv").write_text("\n".join(sst[:161]) + "\n", encoding="utf-8")
    (folder / "dev.tsv").write_text("\n".join([sst[0], *sst[1001:1041]]) + "\n", encoding="utf-8")
    for name, source, n in (("train.conll", "train.txt", 96), ("dev.conll", "valid.txt", 32)):
        blocks = (data_dir / "conll2003" / source).read_text(encoding="utf-8").split("\n\n")
        sentences = [b for b in blocks if b.strip() and not b.startswith("-DOCSTART-")][:n]
        (folder / name).write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def vocab_txt(models_dir: Path) -> Path:
    return models_dir / "vocab/bert-base-uncased-vocab.txt"


TRAIN = ["--max-seq-length", "48", "--epochs", "1", "--batch-size", "16", "--lr", "1e-3", "--no-progress"]
TEXTS = [
    "a gorgeous , witty , seductive movie .",
    "the plot is nothing but boilerplate clichés from start to finish",
    "EU rejects German call to boycott British lamb .",
    "Peter Blackburn met Café 🤗 owners in Ｔｏｋｙｏ .",
]


def _served(folder: Path, backend: str = "torch") -> list[dict]:
    config = ServeConfig(model=str(folder), backend=backend)
    with live_server.running_server(config) as url, httpx.Client(base_url=url, timeout=live_server.TIMEOUT) as c:
        response = c.post("/predict", json={"texts": TEXTS})
        assert response.status_code == 200, response.text
        return response.json()["predictions"]


def _predicted(folder: Path, tmp: Path) -> list[dict]:
    inputs, output = tmp / "inputs.jsonl", tmp / "predictions.jsonl"
    inputs.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    assert main(["predict", "--model", str(folder), "--input", str(inputs), "--output", str(output)]) == 0
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def _same(a: list[dict], b: list[dict]) -> None:
    """Equal decoded outputs: labels, tags and entities exactly; probabilities within 1e-4."""
    for x, y in zip(a, b, strict=True):
        assert {k: v for k, v in x.items() if k != "probabilities"} == {
            k: v for k, v in y.items() if k != "probabilities"
        }
        for label, p in x.get("probabilities", {}).items():
            assert y["probabilities"][label] == pytest.approx(p, abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("family", _family_params(FAMILIES))
@pytest.mark.parametrize("task", ["sst2", "conll"])
def test_train_predict_serve_export_onnx_serve(
    family: str, task: str, data: Path, subword_dirs: dict, vocab_txt: Path, tmp_path: Path
) -> None:
    model = tiny_families.tiny_family_folder(family, tmp_path / "model", subword_dirs, vocab_txt)
    out = tmp_path / "run"
    if task == "sst2":
        files = ["--task", "classification", "--train-file", str(data / "train.tsv"), "--text", "sentence",
                 "--label", "label", "--dev-file", str(data / "dev.tsv")]  # fmt: skip
    else:
        files = ["--task", "tagging", "--train-file", str(data / "train.conll"),
                 "--dev-file", str(data / "dev.conll")]  # fmt: skip
    assert main(["train", *files, "--model", str(model), "--output-dir", str(out), *TRAIN]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics  # trained and evaluated on dev

    predicted = _predicted(out, tmp_path)
    assert len(predicted) == len(TEXTS)
    if task == "sst2":
        assert all(p["label"] in ("0", "1") for p in predicted)
    else:
        for p, text in zip(predicted, TEXTS, strict=True):  # entity offsets slice the original text
            assert len(p["tags"]) == len(text.split())
            assert all(text[e["start"] : e["end"]] == e["text"] for e in p["entities"])
    _same(_served(out), predicted)
    assert main(["export", "--model", str(out), "--output-dir", str(tmp_path / "onnx")]) == 0
    _same(_served(tmp_path / "onnx", backend="onnx"), predicted)


@pytest.mark.slow
@pytest.mark.skipif("distilbert" not in _known_families(), reason="this checkout has no distilbert family")
def test_distilbert_cls_features_equal_transformers_and_feed_logistic_regression(
    data_dir: Path, subword_dirs: dict, vocab_txt: Path, tmp_path: Path
) -> None:
    """The seeds' feature recipe: `bertkit encode --pooling cls` on a DistilBERT folder gives
    DistilBertModel's [CLS] rows, and scikit-learn's logistic regression (C=1) trains on them (~10 s)."""
    import numpy as np
    import torch

    sklearn = pytest.importorskip("sklearn.linear_model")
    model = tiny_families.tiny_family_folder("distilbert", tmp_path / "distilbert", subword_dirs, vocab_txt)
    rows = (data_dir / "glue/SST-2/train.tsv").read_text(encoding="utf-8").splitlines()[1:401]
    sentences = [r.rsplit("\t", 1)[0] for r in rows]
    labels = np.array([int(r.rsplit("\t", 1)[1]) for r in rows])
    (tmp_path / "sentences.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    out = tmp_path / "features.npy"
    assert main(["encode", "--model", str(model), "--input", str(tmp_path / "sentences.txt"),
                 "--output", str(out), "--pooling", "cls", "--no-normalize"]) == 0  # fmt: skip
    features = np.load(out)

    reference = transformers.DistilBertModel.from_pretrained(model).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model)
    with torch.no_grad():
        batch = tokenizer(sentences, padding=True, return_tensors="pt")
        cls = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0][:, 0]
    np.testing.assert_allclose(features, cls.numpy(), atol=1e-5)

    classifier = sklearn.LogisticRegression(C=1.0, max_iter=1000).fit(features[:300], labels[:300])
    accuracy = classifier.score(features[300:], labels[300:])
    assert 0.0 <= accuracy <= 1.0 and classifier.coef_.shape == (1, 24)
