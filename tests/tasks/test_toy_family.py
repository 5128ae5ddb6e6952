"""A new task family with its own head is one file plus registry lines: this file defines a span-pointer head and
task, registers them from the test (FAMILIES, MODEL_CLASSES, export VIEWS), and runs train -> save -> load -> predict -> export
-> serve through bertkit's generic paths, with no other change to the package.

The toy task: point at the one word of a sentence that names a sentiment ("the plot was awful" -> "awful").
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertkit.data.collate import encoder_inputs
from bertkit.model.bert import BertModel, PretrainedBert
from bertkit.model.config import BertConfig
from bertkit.model.registry import MODEL_CLASSES
from bertkit.model.rows import Row, own_rows
from bertkit.tasks import FAMILIES
from bertkit.tasks.base import Batch, Feature, TaskBase
from bertkit.tokenization import Tokenizer
from bertkit.weights.load import load_pretrained

# ---- the head: BERT + a pointer (start and end scores per token), saved under its own weight names -------------


class BertForSpanPointer(PretrainedBert):
    """(B, T) ids -> (B, T, 2) start / end logits."""

    hf_architecture = "BertForSpanPointer"

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.pointer = nn.Sequential(nn.Linear(config.hidden_size, config.hidden_size), nn.Tanh(),
                                     nn.Linear(config.hidden_size, 2))  # fmt: skip
        self.init_weights()

    def head_rows(self) -> list[Row]:
        return own_rows("pointer", self.pointer)

    def forward(
        self, input_ids: Tensor, token_type_ids: Tensor | None = None, attention_mask: Tensor | None = None
    ) -> Tensor:
        return self.pointer(self.bert(input_ids, token_type_ids, attention_mask).last_hidden_state)


# ---- the task -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointerExample:
    text: str
    start: int | None = None  # character span of the answer word
    end: int | None = None
    source: str = ""


@dataclass(frozen=True, eq=False)
class SpanPointerTask(TaskBase):
    """Extract one span of a single text. Options: the longest span the decoder may return, in tokens."""

    max_span: int = 4
    main_metric: str = "exact_match"
    name = "span_pointer"

    def build_model(self, model: str, *, from_finetuned: bool = False) -> tuple[nn.Module, Any]:
        return load_pretrained(model, BertForSpanPointer, require_heads=from_finetuned)

    def check(self, example: PointerExample, labelled: bool = True) -> str | None:
        if not example.text.strip():
            return "the text is empty"
        if labelled and (example.start is None or not 0 <= example.start < example.end <= len(example.text)):
            return "no span inside the text"
        return None

    def example_from_dict(self, record: Mapping[str, Any], source: str = "") -> PointerExample:
        if not isinstance(record, Mapping) or not isinstance(record.get("text"), str):
            raise ValueError(f"{source or 'input'}: expected a JSON object with a 'text' string")
        span = record.get("span") or (None, None)
        return PointerExample(record["text"], span[0], span[1], source)

    def features(self, example: PointerExample, tokenizer: Tokenizer, max_seq_length: int) -> list[Feature]:
        enc = tokenizer.encode_batch([example.text], None, max_seq_length)[0]
        feature: Feature = {"input_ids": list(enc.ids), "token_type_ids": list(enc.type_ids),
                            "offsets": [tuple(o) for o in enc.offsets]}  # fmt: skip
        if example.start is not None:
            start = enc.char_to_token(example.start)
            end = enc.char_to_token(example.end - 1)
            feature["span"] = (start or 0, end or 0)  # 0 ([CLS]): the span was cut off
        return [feature]

    def collate(self, features: Sequence[Feature]) -> Batch:
        batch = encoder_inputs(features, 0)
        if "span" in features[0]:
            batch["span"] = torch.tensor([f["span"] for f in features])
        return batch

    def forward(self, model: nn.Module, batch: Batch) -> Tensor:
        logits = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        return logits.masked_fill(~batch["attention_mask"].bool().unsqueeze(-1), -1e4)

    def loss(self, outputs: Tensor, batch: Batch) -> Tensor:
        start, end = outputs.unbind(-1)
        return (F.cross_entropy(start, batch["span"][:, 0]) + F.cross_entropy(end, batch["span"][:, 1])) / 2

    def decode(
        self, outputs: Sequence[Tensor], features: Sequence[Feature], examples: Sequence[Any]
    ) -> list[dict]:
        rows = [row for batch in outputs for row in batch]
        best: dict[int, dict] = {}
        for logits, feature in zip(rows, features, strict=True):
            n = len(feature["input_ids"]) - 1  # tokens 1 .. n-1: no [CLS], no [SEP]
            scores = logits[1:n, 0, None] + logits[1:n, 1][None, :]
            ok = torch.ones_like(scores, dtype=torch.bool).triu().tril(self.max_span - 1)
            flat = int(scores.masked_fill(~ok, float("-inf")).argmax())
            i, j = divmod(flat, scores.shape[1])
            start, end = feature["offsets"][i + 1][0], feature["offsets"][j + 1][1]
            text = examples[feature["example_index"]].text
            best[feature["example_index"]] = {"text": text[start:end], "start": start, "end": end}
        return [best[i] for i in range(len(examples))]

    def metrics(self, predictions: Sequence[dict], examples: Sequence[Any]) -> dict[str, float]:
        hits = [
            p["start"] == e.start and p["end"] == e.end for p, e in zip(predictions, examples, strict=True)
        ]
        return {"exact_match": sum(hits) / max(1, len(hits))}


# ---- data -------------------------------------------------------------------------------------------------------
SENTIMENT = ["good", "great", "awful", "dull", "fine", "bad", "lovely", "poor"]
FILLER = ["the", "movie", "plot", "was", "very", "and", "it", "is", "this", "film", "actor", "story", "quite"]


def examples(n: int, seed: int) -> list[PointerExample]:
    rng, out = random.Random(seed), []
    for i in range(n):
        words = rng.sample(FILLER, rng.randint(3, 7))
        words.insert(rng.randint(0, len(words)), rng.choice(SENTIMENT))
        text = " ".join(words)
        target = next(w for w in words if w in SENTIMENT)
        start = text.index(target) if text.startswith(target) else text.index(f" {target}") + 1
        out.append(PointerExample(text, start, start + len(target), f"toy#{i}"))
    return out


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry lines a packaged family would add: the task family, the model class, its export view."""
    from bertkit.export.views import VIEWS, TokenView

    monkeypatch.setitem(FAMILIES, SpanPointerTask.name, SpanPointerTask)
    monkeypatch.setitem(MODEL_CLASSES, BertForSpanPointer.__name__, BertForSpanPointer)
    monkeypatch.setitem(
        VIEWS, BertForSpanPointer.__name__, TokenView
    )  # (B, T, 2) logits, like a token classifier


@pytest.mark.slow
def test_a_toy_family_runs_through_every_generic_path(registered, tmp_path: Path, fixtures_dir: Path):
    """~2 min on a busy 2-core machine: 30 training steps of the tiny BERT, an ONNX export, two servers."""
    from starlette.testclient import TestClient

    from bertkit.engine import Engine
    from bertkit.export.onnx import export_onnx
    from bertkit.inference.predictor import Predictor
    from bertkit.serving.app import create_app
    from bertkit.serving.config import ServeConfig
    from bertkit.training.config import TrainConfig
    from bertkit.training.loop import train

    tiny = fixtures_dir / "tiny-bert-hf"
    task = SpanPointerTask()
    model, report = task.build_model(str(tiny))
    assert {"pointer.0.weight", "pointer.2.bias"} <= set(
        report.initialized
    )  # the new head is named, not dropped
    train_set, dev_set = examples(160, 0), examples(40, 1)
    tokenizer = Tokenizer.from_pretrained(tiny)
    config = TrainConfig(epochs=3, batch_size=16, lr=2e-3, max_seq_length=16, progress=False, device="cpu",
                         seed=3, warmup_ratio=0.0)  # fmt: skip
    untrained = Engine(task, model, tokenizer, config.max_seq_length).predict_examples(dev_set)
    before = task.metrics(untrained, dev_set)["exact_match"]
    out = tmp_path / "model"
    result = train(task, model, tokenizer, train_set, dev_set, config, out)
    # it learns: the head trains through the generic loop (measured 0.35 from 0.0 on the first try; 30 steps)
    assert result.metrics["exact_match"] >= before + 0.2

    # save -> load: the folder rebuilds the registered task and its head from bertkit.json
    loaded = Engine.from_folder(out, device="cpu")
    assert loaded.task == task and isinstance(loaded.model, BertForSpanPointer)
    expected = loaded.predict_examples(dev_set)
    assert task.metrics(expected, dev_set)["exact_match"] == result.metrics["exact_match"]
    inputs = [{"text": e.text} for e in dev_set[:8]]
    predicted = Predictor.from_pretrained(out, device="cpu").predict(inputs)
    assert predicted == expected[:8]

    # export -> the same decoded predictions from onnxruntime
    pytest.importorskip("onnxruntime")
    export_onnx(out, tmp_path / "onnx")

    # serve, both engines: /predict answers what predict() answers
    for folder, backend in ((out, "torch"), (tmp_path / "onnx", "onnx")):
        app = create_app(
            ServeConfig(model=str(folder), backend=backend, device="cpu" if backend == "torch" else None)
        )
        with TestClient(app) as client:
            response = client.post("/predict", json={"inputs": inputs})
            assert response.status_code == 200, response.text
            served = response.json()["predictions"]
            assert [p["text"] for p in served] == [p["text"] for p in predicted], backend
            assert [(p["start"], p["end"]) for p in served] == [(p["start"], p["end"]) for p in predicted]
            assert client.get("/info").json()["task"] == "span_pointer"
