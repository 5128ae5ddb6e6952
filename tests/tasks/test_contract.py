"""The task contract (tasks/base.py TaskBase), checked on every family in FAMILIES: to_json round trip, features_batch
equals per-example features, save -> load gives the same predictions, and export -> the same predictions where the
family exports. A new family must add a CASES entry (test_every_family_has_a_case fails otherwise)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from bertkit.data.examples import Answer, ChoiceExample, QAExample, TaggedExample, TextExample
from bertkit.engine import Engine, featurize, save_folder
from bertkit.tasks import FAMILIES, build_task, task_class
from bertkit.tasks.base import TaskBase
from bertkit.tokenization import Tokenizer

MAX_LEN = 32


def _pretraining_examples(tokenizer: Tokenizer) -> list[dict[str, Any]]:
    rows = []
    for i, (a, b) in enumerate(
        [("the movie was good", "the plot was dull"), ("a great film", "it is very fine")]
    ):
        enc = tokenizer.encode_batch([a], [b])[0]
        ids, masked = list(enc.ids), [2, 4]
        rows.append({"input_ids": [tokenizer.mask_token_id if k in masked else t for k, t in enumerate(ids)],
                     "token_type_ids": list(enc.type_ids), "masked_positions": masked,
                     "masked_ids": [ids[k] for k in masked], "next_sentence_label": i % 2})  # fmt: skip
    return rows


def _text(tokenizer: Tokenizer) -> list[TextExample]:
    return [TextExample("a good film", None, "pos"), TextExample("the plot was dull and the actor was awful", None, "neg"),
            TextExample("it is fine", "this movie is great", "pos")]  # fmt: skip


def _tagged(tokenizer: Tokenizer) -> list[TaggedExample]:
    return [TaggedExample(("John", "saw", "the", "film"), ("B-PER", "O", "O", "O")),
            TaggedExample(("the", "actor", "Mary", "Smith", "was", "great"), ("O", "O", "B-PER", "I-PER", "O", "O"))]  # fmt: skip


def _qa(tokenizer: Tokenizer) -> list[QAExample]:
    context = "the film was made in the city by the actor and it is a very good story about the plot " * 3
    return [QAExample("q1", "who made the film ?", context, (Answer("the actor", 33),)),
            QAExample("q2", "what is it ?", "it is a good movie", (Answer("a good movie", 6),))]  # fmt: skip


def _choice(tokenizer: Tokenizer) -> list[ChoiceExample]:
    return [ChoiceExample("the movie was", ("good", "a film", "dull"), "how ?", 0),
            ChoiceExample("this plot", ("is great", "was awful"), "", 1)]  # fmt: skip


# (family, options, examples(tokenizer), exports): one entry per family; the tagger once per head.
CASES: dict[str, tuple[str, dict[str, Any], Any, bool]] = {
    "classification": ("classification", {"labels": ["neg", "pos"]}, _text, True),
    "regression": ("classification", {"problem_type": "regression"},
                   lambda t: [TextExample(e.text, e.text_pair, str(i + 0.5)) for i, e in enumerate(_text(t))], True),
    "tagging": ("tagging", {"labels": ["O", "B-PER", "I-PER"]}, _tagged, True),
    "tagging-crf": ("tagging", {"labels": ["O", "B-PER", "I-PER"], "head": "crf"}, _tagged, True),
    "tagging-lstm_crf": ("tagging", {"labels": ["O", "B-PER", "I-PER"], "head": "lstm_crf"}, _tagged, True),
    "qa": ("qa", {"doc_stride": 8, "max_query_length": 8}, _qa, True),
    "multiple_choice": ("multiple_choice", {}, _choice, False),
    "pretraining": ("pretraining", {}, _pretraining_examples, False),
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny(fixtures_dir: Path) -> Path:
    return fixtures_dir / "tiny-bert-hf"


@pytest.fixture(scope="module")
def tokenizer(tiny: Path) -> Tokenizer:
    return Tokenizer.from_pretrained(tiny)


def close(a: Any, b: Any, tol: float = 0.0) -> bool:
    """Equal predictions: same structure and strings, numbers within tol."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    return a == b


def saved_folder(tmp: Path, tiny: Path, tokenizer: Tokenizer, case: str) -> tuple[TaskBase, Engine, Path]:
    family, options, make, _ = CASES[case]
    task = build_task(family, options)
    model, _ = task.build_model(str(tiny))
    torch.manual_seed(0)
    for p in model.parameters():  # a non-trivial head (the CRF starts at 0), so predictions differ by weights
        p.data.add_(0.05 * torch.randn_like(p))
    out = tmp / case
    save_folder(out, task, model, tokenizer, MAX_LEN)
    return task, Engine(task, model, tokenizer, MAX_LEN), out


def test_every_family_has_a_case():
    assert {family for family, *_ in CASES.values()} == set(FAMILIES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_to_json_round_trip(case):
    family, options, _, _ = CASES[case]
    task = build_task(family, options)
    data = json.loads(json.dumps(task.to_json()))  # JSON-able, as bertkit.json stores it
    assert task_class(family)(**data) == task
    assert build_task(family, data).to_json() == task.to_json()
    assert isinstance(task, TaskBase) and task.name == family
    assert repr(task).startswith(type(task).__name__)


@pytest.mark.parametrize("case", sorted(CASES))
def test_features_batch_equals_per_example_features(case, tokenizer):
    family, options, make, _ = CASES[case]
    task, examples = build_task(family, options), make(tokenizer)
    for e in examples:
        assert task.check(e) is None
    batched = task.features_batch(examples, tokenizer, MAX_LEN)
    assert batched == [task.features(e, tokenizer, MAX_LEN) for e in examples]
    assert sum(map(len, batched)) >= len(examples)


@pytest.mark.parametrize("case", sorted(CASES))
def test_save_load_gives_the_same_predictions(case, tmp_path, tiny, tokenizer):
    task, engine, folder = saved_folder(tmp_path, tiny, tokenizer, case)
    examples = CASES[case][2](tokenizer)
    before = engine.predict_examples(examples)
    loaded = Engine.from_folder(folder, device="cpu")
    assert loaded.task == task and loaded.max_seq_length == MAX_LEN
    assert loaded.predict_examples(examples) == before
    assert len(before) == len(examples)
    # the metrics run on them (the engine's last step in training)
    assert isinstance(task.metrics(before, examples), dict)
    assert featurize(task, examples, tokenizer, MAX_LEN)[-1]["example_index"] == len(examples) - 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [c for c, v in sorted(CASES.items()) if v[3]],
)
def test_export_gives_the_same_predictions(case, tmp_path, tiny, tokenizer):
    """~10 s per case on 2 cores: the tiny model exported by bertkit's export API and run by onnxruntime."""
    pytest.importorskip("onnxruntime")
    from bertkit.export.onnx import ONNX_FILE, export_onnx
    from bertkit.export.runtime import OnnxModel

    task, engine, folder = saved_folder(tmp_path, tiny, tokenizer, case)
    examples = CASES[case][2](tokenizer)
    export_onnx(folder, tmp_path / "onnx")
    onnx = Engine(task, OnnxModel(tmp_path / "onnx" / ONNX_FILE), tokenizer, MAX_LEN)
    theirs, ours = onnx.predict_examples(examples), engine.predict_examples(examples)
    assert close(theirs, ours, tol=1e-4), f"{theirs}\n!=\n{ours}"
