"""The training loop on a tiny model: it learns, accumulation equals a larger batch, checkpointing and bf16
run, early stopping keeps the best model, resume refuses changed options, and the folder is complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bertkit.runtime import Runtime
from bertkit.tasks.classification import ClassificationTask
from bertkit.tokenization import Tokenizer
from bertkit.training.checkpoint import list_checkpoints, save_checkpoint
from bertkit.training.config import TrainConfig
from bertkit.training.loop import evaluate, train
from bertkit.training.optim import build_optimizer

FAST = dict(max_seq_length=32, progress=False, log_steps=5, eval_batch_size=32)


def _setup(model_dir: Path, labels=("neg", "pos")):  # noqa: ANN202
    task = ClassificationTask(labels=labels)
    model, _ = task.build_model(str(model_dir))
    return task, model, Tokenizer.from_pretrained(model_dir)


def test_learns_the_toy_task_and_writes_the_folder(toy, tiny_model_dir: Path, tmp_path: Path) -> None:
    task, model, tok = _setup(tiny_model_dir)
    train_ex, dev_ex = toy(320, 0), toy(100, 1)
    config = TrainConfig(epochs=4, batch_size=16, lr=2e-3, warmup_ratio=0.1, seed=3, **FAST)
    result = train(task, model, tok, train_ex, dev_ex, config, tmp_path / "out")
    assert result.metrics["accuracy"] >= 0.95
    out = tmp_path / "out"
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "bertkit.json", "labels.txt",
            "train_config.json", "metrics.json", "metrics.jsonl", "learning_curves.png", "confusion_matrix.png"} <= names  # fmt: skip
    assert "checkpoints" not in names  # removed once the run is complete
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == result.metrics["accuracy"] and metrics["steps"] == result.steps == 80
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["type"] == "eval"]
    assert [r["step"] for r in evals] == [20, 40, 60, 80]  # once per epoch
    assert all({"loss", "lr", "examples_per_second"} <= set(r) for r in records if r["type"] == "train")
    assert json.loads((out / "bertkit.json").read_text())["task"] == "classification"
    assert TrainConfig.load(out / "train_config.json") == config
    # the saved model is the best evaluation's
    best = max(evals, key=lambda r: r["accuracy"])
    assert metrics["best_step"] == best["step"] and metrics["accuracy"] == best["accuracy"]


def test_accumulation_equals_the_larger_batch(toy, tiny_model_no_dropout: Path, tmp_path: Path) -> None:
    examples = toy(48, 5)
    states = []
    for i, (batch, accum) in enumerate([(8, 1), (4, 2), (2, 4)]):
        task, model, tok = _setup(tiny_model_no_dropout)
        torch.manual_seed(0)
        model.classifier.reset_parameters()
        config = TrainConfig(epochs=2, batch_size=batch, grad_accum=accum, lr=1e-3, seed=1, **FAST)
        train(task, model, tok, examples, None, config, tmp_path / f"o{i}")
        states.append(model.state_dict())
    for other in states[1:]:
        for key, value in states[0].items():
            torch.testing.assert_close(other[key], value, rtol=1e-5, atol=1e-6)


def test_gradient_checkpointing_gives_the_same_model(
    toy, tiny_model_no_dropout: Path, tmp_path: Path
) -> None:
    states = []
    for flag in (False, True):
        task, model, tok = _setup(tiny_model_no_dropout)
        torch.manual_seed(0)
        model.classifier.reset_parameters()
        config = TrainConfig(epochs=1, batch_size=8, lr=1e-3, gradient_checkpointing=flag, **FAST)
        train(task, model, tok, toy(40, 2), None, config, tmp_path / f"gc{flag}")
        states.append(model.state_dict())
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        {"precision": "bf16", "lr": 5e-3},
        # uncorrected moments make the first steps ~3x larger than Adam's: a smaller lr
        {"bias_correction": False, "schedule": "cosine", "lr": 1e-3},
    ],
)
def test_bf16_and_google_adam_train(toy, tiny_model_dir: Path, tmp_path: Path, options: dict) -> None:
    task, model, tok = _setup(tiny_model_dir)
    config = TrainConfig(epochs=3, batch_size=16, **options, **FAST)
    result = train(task, model, tok, toy(240, 0), toy(60, 1), config, tmp_path / "o")
    assert result.metrics["accuracy"] >= 0.85


class ScriptedTask(ClassificationTask):
    """Classification whose dev metric follows a script, to test best-model keeping and early stopping."""

    def __init__(self, script: list[float], **kw):  # noqa: ANN003
        super().__init__(**kw)
        self.script = list(script)
        self.calls = 0

    def metrics(self, predictions, examples):  # noqa: ANN001, ANN201
        value = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return {"accuracy": value}


def test_early_stopping_keeps_the_best_model(toy, tiny_model_dir: Path, tmp_path: Path) -> None:
    task = ScriptedTask([0.5, 0.9, 0.7, 0.8, 0.95], labels=("neg", "pos"))
    model, _ = task.build_model(str(tiny_model_dir))
    tok = Tokenizer.from_pretrained(tiny_model_dir)
    snapshots = {}

    config = TrainConfig(epochs=10, batch_size=8, lr=1e-3, eval_steps=2, early_stopping_patience=2, **FAST)
    original = task.metrics

    def spy(predictions, examples):  # noqa: ANN001, ANN202
        snapshots[len(snapshots) + 1] = {k: v.clone() for k, v in model.state_dict().items()}
        return original(predictions, examples)

    task.metrics = spy  # type: ignore[method-assign]
    result = train(task, model, tok, toy(80, 0), toy(8, 1), config, tmp_path / "o")
    # evals at steps 2, 4, 6, 8: 0.5, 0.9 (best), 0.7, 0.8 -> two without improvement -> stop at step 8
    assert result.stopped_early and result.steps == 8 and result.best_step == 4
    reloaded, _ = ClassificationTask(labels=("neg", "pos")).build_model(str(tmp_path / "o"))
    for key, value in reloaded.state_dict().items():
        torch.testing.assert_close(value, snapshots[2][key])
        torch.testing.assert_close(
            model.state_dict()[key], snapshots[2][key]
        )  # the returned model is the best


def test_evaluate_matches_manual_predictions(toy, tiny_model_dir: Path) -> None:
    task, model, tok = _setup(tiny_model_dir)
    examples = toy(37, 4)
    metrics, preds = evaluate(task, model, tok, examples, TrainConfig(eval_batch_size=5, max_seq_length=32),
                              Runtime(torch.device("cpu")))  # fmt: skip
    model.eval()
    with torch.no_grad():
        for ex, pred in zip(examples, preds, strict=True):
            enc = tok.encode(ex.text, max_length=32)
            logits = model(
                torch.tensor([enc.ids]),
                torch.tensor([enc.type_ids]),
                torch.ones(1, len(enc.ids), dtype=torch.long),
            )
            assert pred["label"] == ("neg", "pos")[int(logits.argmax())]
            assert pred["probabilities"]["pos"] == pytest.approx(float(logits.softmax(-1)[0, 1]), abs=1e-5)
    assert metrics["accuracy"] == pytest.approx(
        sum(p["label"] == e.label for p, e in zip(preds, examples, strict=True)) / 37
    )


def test_resume_refuses_other_options(toy, tiny_model_dir: Path, tmp_path: Path) -> None:
    task, model, tok = _setup(tiny_model_dir)
    config = TrainConfig(epochs=1, batch_size=8, **FAST)
    from bertkit.training.checkpoint import TrainState

    opt = build_optimizer(model, lr=config.lr, weight_decay=config.weight_decay)  # the engine's param groups
    save_checkpoint(tmp_path, model, opt, TrainState(step=3, num_features=16), config, [{}])
    (tmp_path / "checkpoints" / ".tmp-step-00000009-1").mkdir()  # a half-written one is ignored
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000003"]
    with pytest.raises(ValueError, match=r"batch_size: checkpoint 8, now 4.*--no-resume"):
        train(task, model, tok, toy(16, 0), None, config.replace(batch_size=4), tmp_path)
    with pytest.raises(ValueError, match="trained on 16 features, this data gives 20"):
        train(task, model, tok, toy(20, 0), None, config, tmp_path)
    state = tmp_path / "checkpoints" / "step-00000003" / "state.json"
    state.write_text(state.read_text()[:40])  # a damaged checkpoint: named, with the way out
    with pytest.raises(ValueError, match=r"step-00000003/state.json:\d+: not valid JSON .*delete it to resume"):
        train(task, model, tok, toy(16, 0), None, config, tmp_path)


def test_config_is_strict(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown training option.*learning_rate"):
        TrainConfig.from_dict({"learning_rate": 1e-5})
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainConfig(schedule="poly")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        from bertkit.runtime import start

        start("cpu", "fp16")


def test_max_seq_length_beyond_the_model_is_refused(tiny_model_dir: Path, tmp_path: Path, toy) -> None:  # noqa: ANN001
    task, model, tok = _setup(tiny_model_dir)
    config = TrainConfig(epochs=1, batch_size=8, progress=False, max_seq_length=128)
    with pytest.raises(ValueError, match="max_seq_length 128 exceeds the model's max_position_embeddings 64"):
        train(task, model, tok, toy(8, 0), None, config, tmp_path)
