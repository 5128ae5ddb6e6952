"""Predictor: rebuilds the task from bertkit.json, predicts in input order whatever the batching, pools windows;
the folder it reads is one that transformers loads unchanged, with the same logits and tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bertkit.data.examples import TextExample
from bertkit.inference.predictor import Predictor
from bertkit.tasks.classification import ClassificationTask
from bertkit.tokenization import Tokenizer
from bertkit.training.checkpoint import save_model_folder
from bertkit.training.config import TrainConfig

import tiny_bert as tiny


def _folder(tmp: Path, task: ClassificationTask, max_len: int = 32) -> Path:
    base = tiny.make_tiny_model(tmp / "base")
    model, _ = task.build_model(str(base))
    torch.manual_seed(1)
    model.classifier.weight.data.normal_(0, 1.0)  # a random head with visible preferences
    out = tmp / "model"
    save_model_folder(out, model, Tokenizer.from_pretrained(base), task, TrainConfig(max_seq_length=max_len))
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _folder(tmp_path_factory.mktemp("pred"), ClassificationTask(labels=["neg", "pos", "meh"]))


def _logits(model, tok, text, pair=None, max_len=32) -> torch.Tensor:  # noqa: ANN001
    enc = tok.encode(text, pair, max_length=max_len)
    with torch.no_grad():
        return model(
            torch.tensor([enc.ids]),
            torch.tensor([enc.type_ids]),
            torch.ones(1, len(enc.ids), dtype=torch.long),
        )[0]


def test_predictions_in_input_order_and_batch_invariant(folder: Path) -> None:
    inputs = [{"text": e.text} for e in tiny.toy_examples(23, 3)] + [
        {"text": "good", "text_pair": "the plot was dull"}
    ]
    small = Predictor.from_pretrained(folder, batch_size=4, device="cpu")
    big = Predictor.from_pretrained(folder, batch_size=64, device="cpu")
    a, b = small.predict(inputs), big.predict(inputs)
    assert small.max_seq_length == 32 and small.task.labels == ("neg", "pos", "meh")
    for i, (pa, pb) in enumerate(zip(a, b, strict=True)):
        assert pa["label"] == pb["label"]
        ref = _logits(small.model, small.tokenizer, inputs[i]["text"], inputs[i].get("text_pair")).softmax(-1)
        for j, name in enumerate(("neg", "pos", "meh")):
            assert pa["probabilities"][name] == pytest.approx(float(ref[j]), abs=1e-5)
            assert pb["probabilities"][name] == pytest.approx(float(ref[j]), abs=1e-5)
    assert len({round(p["probabilities"]["pos"], 6) for p in a}) > 20  # inputs tell apart: order is checked


def test_windows_are_pooled(tmp_path: Path) -> None:
    task = ClassificationTask(labels=["neg", "pos"], window_stride=3, pooling="mean")
    folder = _folder(tmp_path, task, max_len=10)
    predictor = Predictor.from_pretrained(folder, device="cpu")
    text = " ".join(tiny.WORDS * 2 + ["good"])
    (pred,) = predictor.predict([{"text": text}])
    windows = predictor.tokenizer.encode(text, max_length=10, stride=3).windows
    assert len(windows) > 3
    with torch.no_grad():
        rows = [
            predictor.model(
                torch.tensor([w.ids]), torch.tensor([w.type_ids]), torch.ones(1, len(w.ids), dtype=torch.long)
            )[0]
            for w in windows
        ]
    probs = torch.stack(rows).mean(0).softmax(-1)
    assert pred["probabilities"]["pos"] == pytest.approx(float(probs[1]), abs=1e-5)


def test_bad_inputs_and_folders(folder: Path, tmp_path: Path) -> None:
    predictor = Predictor.from_pretrained(folder, device="cpu")
    with pytest.raises(ValueError, match=r"input\[1\]: field 'text' must be a string"):
        predictor.predict([{"text": "ok"}, {"sentence": "no text field"}])
    with pytest.raises(ValueError, match=r"input\[0\]: the text is empty"):
        predictor.predict([{"text": "  "}])
    with pytest.raises(FileNotFoundError, match="bertkit.json not found"):
        Predictor.from_pretrained(tmp_path)
    assert predictor.predict([]) == []


def test_transformers_loads_the_folder_unchanged(folder: Path) -> None:
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert hf.config.id2label == {0: "neg", 1: "pos", 2: "meh"}
    predictor = Predictor.from_pretrained(folder, device="cpu")
    texts = [e.text for e in tiny.toy_examples(6, 9)]
    enc = hf_tok(texts, padding=True, return_tensors="pt")
    ours = predictor.tokenizer(texts)
    assert torch.equal(enc["input_ids"], ours["input_ids"])
    with torch.no_grad():
        hf_logits = hf(**enc).logits
    preds = predictor.predict([{"text": t} for t in texts])
    for row, pred in zip(hf_logits.softmax(-1), preds, strict=True):
        assert [pred["probabilities"][n] for n in ("neg", "pos", "meh")] == pytest.approx(
            row.tolist(), abs=1e-5
        )


@pytest.mark.parametrize(("options", "problem"), [
    ({"problem_type": "regression"}, "regression"),
    ({"labels": ["a", "b", "c"], "problem_type": "multi_label_classification"}, "multi_label_classification"),
])  # fmt: skip
def test_problem_types_survive_the_folder(tmp_path: Path, options: dict, problem: str) -> None:
    transformers = pytest.importorskip("transformers")
    folder = _folder(tmp_path, ClassificationTask(**options))
    config = transformers.AutoConfig.from_pretrained(folder)
    assert config.problem_type == problem
    info = json.loads((folder / "bertkit.json").read_text())
    assert info["options"]["problem_type"] == problem
    predictor = Predictor.from_pretrained(folder, device="cpu")
    (pred,) = predictor.predict([{"text": "the movie"}])
    assert ("score" in pred) if problem == "regression" else set(pred) == {"labels", "probabilities"}
    assert predictor.task.check(TextExample("x", None, None), labelled=False) is None


def test_featurize_names_the_example_that_cannot_be_windowed(tmp_path: Path) -> None:
    from bertkit.engine import featurize

    tok = Tokenizer.from_pretrained(tiny.make_tiny_model(tmp_path / "m"))
    task = ClassificationTask(labels=["neg", "pos"], window_stride=2)
    examples = [
        TextExample("the movie", "good", "pos", "f.tsv:2"),
        TextExample("the film " * 10, "bad", "neg", "f.tsv:3"),
    ]
    with pytest.raises(ValueError, match=r"^f.tsv:3: the first text has 20 tokens"):
        featurize(task, examples, tok, 16)
