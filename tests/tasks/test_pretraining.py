"""PretrainingTask: loss equal to transformers' BertForPreTraining, metrics by their formulas, held-out splits."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bertkit.data.shards import Shards
from bertkit.tasks import build_task
from bertkit.tasks.pretraining import PretrainingTask, shard_examples, split_by_document
from bertkit.tokenization import Tokenizer

EXAMPLES = [
    {"input_ids": [6, 100, 8, 120, 7, 130, 8, 7], "token_type_ids": [0, 0, 0, 0, 0, 1, 1, 1],
     "masked_positions": [2, 6], "masked_ids": [101, 140], "next_sentence_label": 0},
    {"input_ids": [6, 8, 7, 150, 7], "token_type_ids": [0, 0, 0, 1, 1],
     "masked_positions": [1], "masked_ids": [160], "next_sentence_label": 1},
    {"input_ids": [6, 110, 111, 8, 8, 7, 112, 7], "token_type_ids": [0, 0, 0, 0, 0, 0, 1, 1],
     "masked_positions": [3, 4, 6], "masked_ids": [200, 201, 113], "next_sentence_label": 1},
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny(fixtures_dir: Path) -> Path:
    return fixtures_dir / "tiny-bert-hf"


def _features(task, tokenizer):
    feats = []
    for i, ex in enumerate(EXAMPLES):
        for f in task.features(ex, tokenizer, 16):
            feats.append({**f, "example_index": i})
    return feats


def test_loss_equals_transformers_bert_for_pretraining(tiny):
    """Same weights, same batch: transformers computes MLM CE over labels != -100 plus NSP CE."""
    transformers = pytest.importorskip("transformers")
    task = PretrainingTask(next_sentence=True)
    model, report = task.build_model(str(tiny))
    assert report.initialized == ()  # the fixture has both heads
    tokenizer = Tokenizer.from_pretrained(tiny)
    batch = task.collate(_features(task, tokenizer))
    assert batch["masked_positions"].shape == (3, 3)
    assert batch["masked_weights"].tolist() == [[1, 1, 0], [1, 0, 0], [1, 1, 1]]
    ours = task.loss(task.forward(model.eval(), batch), batch)

    ref = transformers.BertForPreTraining.from_pretrained(str(tiny)).eval()
    labels = torch.full_like(batch["input_ids"], -100)
    for i, ex in enumerate(EXAMPLES):
        labels[i, ex["masked_positions"]] = torch.tensor(ex["masked_ids"])
    with torch.no_grad():
        out = ref(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                  attention_mask=batch["attention_mask"], labels=labels,
                  next_sentence_label=batch["next_sentence_labels"])  # fmt: skip
    torch.testing.assert_close(ours, out.loss, atol=1e-5, rtol=1e-5)

    mlm_only = PretrainingTask(next_sentence=False)
    mlm_model, report = mlm_only.build_model(str(tiny))
    frozen = {n for n, p in mlm_model.named_parameters() if not p.requires_grad}
    assert frozen == {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "nsp.weight", "nsp.bias"}
    loss = mlm_only.loss(mlm_only.forward(mlm_model.eval(), batch), batch)
    logits = out.prediction_logits
    ce = torch.nn.functional.cross_entropy(
        logits.view(-1, logits.shape[-1]), labels.view(-1), ignore_index=-100
    )
    torch.testing.assert_close(loss, ce, atol=1e-5, rtol=1e-5)


def test_metrics_are_accuracy_and_perplexity_over_masked_tokens(tiny):
    task = PretrainingTask(next_sentence=True)
    model, _ = task.build_model(str(tiny))
    tokenizer = Tokenizer.from_pretrained(tiny)
    feats = _features(task, tokenizer)
    order = [2, 0, 1]  # the engine runs features in any order; decode maps them back
    batch = task.collate([feats[i] for i in order])
    with torch.no_grad():
        outputs = task.forward(model.eval(), batch)
    predictions = task.decode([outputs], [feats[i] for i in order], EXAMPLES)
    metrics = task.metrics(predictions, EXAMPLES)

    logp = torch.log_softmax(outputs.mlm_logits, -1)
    losses, correct = [], 0
    for row, i in enumerate(order):
        for k, target in enumerate(EXAMPLES[i]["masked_ids"]):
            losses.append(-float(logp[row, k, target]))
            correct += int(logp[row, k].argmax()) == target
    assert [p["mlm_count"] for p in predictions] == [2, 1, 3]
    assert metrics["mlm_loss"] == pytest.approx(np.mean(losses), rel=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(np.mean(losses)), rel=1e-5)
    assert metrics["mlm_accuracy"] == pytest.approx(correct / 6)
    nsp = outputs.nsp_logits.argmax(-1).tolist()
    expected_nsp = np.mean([nsp[row] == EXAMPLES[i]["next_sentence_label"] for row, i in enumerate(order)])
    assert metrics["nsp_accuracy"] == pytest.approx(expected_nsp)


def test_registry_round_trip_and_from_scratch_config():
    config = {"vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
              "intermediate_size": 20, "max_position_embeddings": 32}  # fmt: skip
    task = build_task("pretraining", {"next_sentence": False, "model_config": config})
    assert build_task("pretraining", task.to_json()) == task
    model, report = task.build_model("ignored")
    assert report is None and type(model).__name__ == "BertForPreTraining" and model.config.vocab_size == 50


def test_bad_instances_are_explained(tiny):
    task = PretrainingTask()
    tokenizer = Tokenizer.from_pretrained(tiny)
    assert (
        task.check({**EXAMPLES[0], "masked_positions": [9, 2]}) == "a masked position is outside the 8 tokens"
    )
    assert (
        task.check({**EXAMPLES[0], "masked_ids": [1]}) == "masked_positions and masked_ids differ in length"
    )
    with pytest.raises(ValueError, match="max_seq_length is 4"):
        task.features(EXAMPLES[0], tokenizer, 4)
    with pytest.raises(ValueError, match="another vocab"):
        task.features({**EXAMPLES[0], "input_ids": [6, 5000, 7]}, tokenizer, 16)
    with pytest.raises(ValueError, match="'masked_ids' must be a list of integers"):
        task.example_from_dict({"input_ids": [1, 2], "masked_positions": [1]}, "in.jsonl:3")
    assert task.example_from_dict({"input_ids": [1, 2], "masked_positions": [1], "masked_ids": [5]})[
        "token_type_ids"
    ] == [0, 0]


def test_split_by_document_never_shares_a_document():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 40, size=500)
    b = np.where(rng.random(500) < 0.5, a, rng.integers(0, 40, size=500))
    shards = Shards({}, {"document_a": a, "document_b": b, "lengths": np.ones(500, dtype=np.int32)})
    train, dev = split_by_document(shards, 0.2, seed=1)
    train_docs = set(a[train]) | set(b[train])
    dev_docs = set(a[dev]) | set(b[dev])
    assert train and dev and not train_docs & dev_docs
    assert len(dev_docs) <= 8
    with pytest.raises(ValueError, match="held-out fraction"):
        split_by_document(shards, 1.5)


def test_shard_examples_unpad_rows():
    arrays = {"input_ids": np.array([[6, 8, 7, 9, 7, 0]]), "lengths": np.array([5]), "a_lengths": np.array([3]),
              "masked_positions": np.array([[1, 0]]), "masked_ids": np.array([[44, 0]]), "num_masked": np.array([1]),
              "next_sentence_labels": np.array([1])}  # fmt: skip
    assert shard_examples(Shards({}, arrays)) == [
        {"input_ids": [6, 8, 7, 9, 7], "token_type_ids": [0, 0, 0, 1, 1], "masked_positions": [1],
         "masked_ids": [44], "next_sentence_label": 1}
    ]  # fmt: skip
