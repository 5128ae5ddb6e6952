"""Distillation (bertkit.training.distill*, `bertkit distill`) on a tiny 4-layer model and the toy sentiment set:
the student's layers, the soft losses against their formulas, teacher outputs computed once, ensembles, unlabelled
text, and the output folder (metrics.json report, bertkit predict, transformers)."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bertkit.cli.main import main
from bertkit.engine import featurize, run_model
from bertkit.inference.predictor import Predictor
from bertkit.model.config import BertConfig
from bertkit.model.heads import BertForPreTraining, SpanLogits
from bertkit.runtime import Runtime
from bertkit.tasks.tagging import TagOutput
from bertkit.tokenization import Tokenizer
from bertkit.training.config import TrainConfig
from bertkit.training.distill_student import layer_indices, parse_layers, student_from_layers
from bertkit.training.distill_targets import (
    ChoiceTargets,
    ClassificationTargets,
    SpanTargets,
    TaggingTargets,
    mean_outputs,
)
from bertkit.training.distill_teachers import distilled_examples, load_teachers, read_unlabeled, teacher_pass

import tiny_bert as tiny

FAST = ["--max-seq-length", "32", "--batch-size", "8", "--no-progress"]


def _tsv(path: Path, examples) -> Path:  # noqa: ANN001
    path.write_text(
        "sentence\tlabel\n" + "".join(f"{e.text}\t{e.label}\n" for e in examples), encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("distill-data")
    _tsv(folder / "train.tsv", tiny.toy_examples(160, 0))
    _tsv(folder / "dev.tsv", tiny.toy_examples(60, 1))
    (folder / "unlabeled.txt").write_text("".join(f"{e.text}\n\n" for e in tiny.toy_examples(40, 2)))
    return folder


def _data_flags(data: Path) -> list[str]:
    return ["--task", "classification", "--train-file", str(data / "train.tsv"),
            "--dev-file", str(data / "dev.tsv"), "--text", "sentence", "--label", "label"]  # fmt: skip


@pytest.fixture(scope="module")
def teachers(tmp_path_factory: pytest.TempPathFactory, data: Path) -> list[Path]:
    """Two fine-tuned 4-layer tiny teachers (seeds 1 and 2) on the toy set."""
    root = tmp_path_factory.mktemp("distill-teachers")
    base = tiny.make_tiny_model(root / "base")
    config = BertConfig.from_json(base / "config.json").replace(num_hidden_layers=4)
    torch.manual_seed(0)
    BertForPreTraining(config).save_pretrained(base)
    out = root / "teachers"
    assert main(["train", *_data_flags(data), "--model", str(base), "--output-dir", str(out), "--seeds", "1,2",
                 "--epochs", "3", "--lr", "3e-3", *FAST]) == 0  # fmt: skip
    return [out / "seed-1", out / "seed-2"]


def test_layer_choice() -> None:
    assert layer_indices(3, 6) == [0, 2, 4]  # DistilBERT: every other layer
    assert layer_indices(2, 6) == [0, 3]
    assert layer_indices(6, 6) == list(range(6))
    assert layer_indices((1, 5), 6) == [1, 5]
    assert parse_layers("3") == 3 and parse_layers("0,2,4") == (0, 2, 4) and parse_layers("4,") == (4,)
    for bad in (7, (0, 6), (2, 1)):
        with pytest.raises(ValueError, match="student-layers"):
            layer_indices(bad, 6)
    with pytest.raises(ValueError, match="count"):
        parse_layers("two")


def test_student_from_layers_keeps_the_named_layers(teachers: list[Path]) -> None:
    _, models = load_teachers([str(teachers[0])])
    teacher = models[0]
    student, keep = student_from_layers(teacher, (1, 3))
    assert keep == [1, 3] and student.config.num_hidden_layers == 2 and student.bert.config is student.config
    t_state, s_state = teacher.state_dict(), student.state_dict()
    for j, i in enumerate(keep):
        prefix = f"bert.encoder.layers.{j}."
        for key in [k for k in s_state if k.startswith(prefix)]:
            assert torch.equal(s_state[key], t_state[key.replace(prefix, f"bert.encoder.layers.{i}.")])
    others = [k for k in s_state if ".layers." not in k]
    assert others and all(torch.equal(s_state[k], t_state[k]) for k in others)  # embeddings, pooler, head
    assert teacher.config.num_hidden_layers == 4 and len(teacher.bert.encoder.layers) == 4  # untouched
    assert student.bert.encoder.steps == 2  # runs its two layers as its own steps
    reloaded = type(student)(student.config)  # what its saved folder loads into
    reloaded.load_state_dict(student.state_dict())
    ids, mask = torch.tensor([[2, 7, 8, 3], [2, 9, 3, 0]]), torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with torch.no_grad():
        assert torch.equal(reloaded.eval()(ids, None, mask), student.eval()(ids, None, mask))
    full, _ = student_from_layers(teacher, 4)  # every layer: the teacher's function exactly
    ids = torch.tensor([[2, 7, 8, 3], [2, 9, 3, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        assert torch.allclose(full(ids, None, mask), teacher(ids, None, mask), atol=1e-6)


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Reference: sum p log(p / q) with plain loops' semantics (0 log 0 = 0)."""
    return torch.where(p > 0, p * (p.log() - q.log()), torch.zeros_like(p)).sum(-1)


def test_soft_losses_match_their_formulas() -> None:
    torch.manual_seed(0)
    t, s, T = torch.randn(5, 3), torch.randn(5, 3), 2.0
    single = ClassificationTargets("single_label_classification")
    target = single.collate(single.rows(single.probabilities(t, T), [{}] * 5))
    expected = _kl(torch.softmax(t / T, -1), torch.softmax(s / T, -1)).mean() * T**2
    assert torch.allclose(single.loss(s, target, {}, T), expected, atol=1e-6)
    assert single.loss(t, target, {}, T).abs() < 1e-6  # zero when the student matches the teacher

    multi = ClassificationTargets("multi_label_classification")
    p, q = torch.sigmoid(t / T), torch.sigmoid(s / T)
    bernoulli = (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).mean() * T**2
    assert torch.allclose(multi.loss(s, multi.probabilities(t, T), {}, T), bernoulli, atol=1e-5)
    assert multi.loss(t, multi.probabilities(t, T), {}, T).abs() < 1e-5

    reg = ClassificationTargets("regression")
    assert torch.allclose(
        reg.loss(s[:, :1], reg.probabilities(t[:, :1], T), {}, T), F.mse_loss(s[:, :1], t[:, :1])
    )

    # tagging: windows of 3 and 1 labelled units; padding units count nothing
    tag = TaggingTargets()
    scores_t, scores_s = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    feats = [{"label_positions": [1, 2, 3]}, {"label_positions": [1]}]
    rows = tag.rows(tag.probabilities(TagOutput(scores_t), T), feats)
    assert [tuple(r.shape) for r in rows] == [(3, 4), (1, 4)]
    mask = torch.tensor([[True, True, True], [True, False, False]])
    got = tag.loss(TagOutput(scores_s), tag.collate(rows), {"label_mask": mask}, T)
    ref = _kl(torch.softmax(scores_t / T, -1)[mask], torch.softmax(scores_s / T, -1)[mask]).mean() * T**2
    assert torch.allclose(got, ref, atol=1e-6)

    # QA: start and end distributions over each window's own positions (windows of 4 and 2 tokens)
    span = SpanTargets()
    low = torch.finfo(torch.float32).min
    pad = torch.tensor([[False] * 4, [False, False, True, True]])
    st, et, ss, es = (torch.randn(2, 4).masked_fill(pad, low) for _ in range(4))
    feats = [{"input_ids": [0] * 4}, {"input_ids": [0] * 2}]
    rows = span.rows(span.probabilities(SpanLogits(st, et), T), feats)
    assert [tuple(r.shape) for r in rows] == [(2, 4), (2, 2)]
    got = span.loss(SpanLogits(ss, es), span.collate(rows), {}, T)
    sm = lambda x: torch.softmax(x / T, -1)  # noqa: E731
    ref = (_kl(sm(st), sm(ss)) + _kl(sm(et), sm(es))).mean() / 2 * T**2
    assert torch.allclose(got, ref, atol=1e-5)
    assert span.loss(SpanLogits(st, et), span.collate(rows), {}, T).abs() < 1e-5

    choice = ChoiceTargets()
    ct, cs = torch.randn(2, 3), torch.randn(2, 3)
    cs[1, 2] = ct[1, 2] = low  # the second example has two choices
    rows = choice.rows(choice.probabilities(ct, T), [{"input_ids": [[0]] * 3}, {"input_ids": [[0]] * 2}])
    ref = _kl(torch.softmax(ct / T, -1), torch.softmax(cs / T, -1)).mean() * T**2
    assert torch.allclose(choice.loss(cs, choice.collate(rows), {}, T), ref, atol=1e-5)

    both = mean_outputs([SpanLogits(st, et), SpanLogits(ss, es)])
    assert isinstance(both, SpanLogits) and torch.allclose(both.start_logits, (st + ss) / 2)


def test_ensemble_soft_targets_are_the_teachers_mean(teachers: list[Path], data: Path) -> None:
    task, models = load_teachers([str(t) for t in teachers])
    tokenizer = Tokenizer.from_pretrained(teachers[0])
    examples = tiny.toy_examples(20, 5)
    config = TrainConfig(max_seq_length=32, eval_batch_size=8)
    runtime = Runtime(torch.device("cpu"), "fp32")
    features = featurize(task, examples, tokenizer, 32)
    teacher_pass(task, models, features, 3.0, config, runtime)
    probs = []
    for model in models:
        outputs, order = run_model(task, model, featurize(task, examples, tokenizer, 32), 8, runtime.device)
        by_example = {f["example_index"]: row for o, fs in zip(outputs, [order], strict=False) for f, row in
                      zip(fs, torch.cat(outputs), strict=True)}  # fmt: skip
        probs.append(torch.stack([torch.softmax(by_example[i] / 3.0, -1) for i in range(len(examples))]))
    expected = (probs[0] + probs[1]) / 2
    got = torch.stack([f["soft"] for f in sorted(features, key=lambda f: f["example_index"])])
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(probs[0], probs[1], atol=1e-3)  # two different teachers


def test_distill_cli_end_to_end(teachers: list[Path], data: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Two teachers into a 2-layer student with unlabelled text: the teachers run once over each window
    (never per epoch), metrics.json holds the report, and OUT predicts and loads in transformers."""
    from bertkit.training import distill_teachers as distill_mod

    calls = {"rows": 0}
    original = distill_mod.teacher_pass

    def counting(task, models, features, *args):  # noqa: ANN001, ANN202
        calls["rows"] += len(features) * len(models)
        return original(task, models, features, *args)

    monkeypatch.setattr(distill_mod, "teacher_pass", counting)
    out = tmp_path / "student"
    assert main(["distill", "--teacher", str(teachers[0]), "--teacher", str(teachers[1]), "--student-layers", "2",
                 *_data_flags(data), "--unlabeled", str(data / "unlabeled.txt"), "--output-dir", str(out),
                 "--epochs", "3", "--lr", "3e-3", "--temperature", "2", "--seed", "3", *FAST]) == 0  # fmt: skip
    assert calls["rows"] == 2 * (60 + 160 + 40)  # dev once, train once, unlabelled once; 3 epochs add nothing

    metrics = json.loads((out / "metrics.json").read_text())
    report = metrics["distillation"]
    assert {"accuracy", "f1"} <= set(metrics) and report["student"]["accuracy"] == metrics["accuracy"]
    assert report["retained"] == pytest.approx(metrics["accuracy"] / report["teacher"]["accuracy"])
    assert report["teacher"]["accuracy"] >= 0.9 and metrics["accuracy"] >= 0.85
    assert len(report["single_teachers"]) == 2 and report["student_layers"] == [0, 2]
    assert report["unlabeled_examples"] == 40 and report["labelled_examples"] == 160
    params = report["parameters"]
    assert (
        params["per_teacher"][0] == params["per_teacher"][1]
        and params["teacher"] == 2 * params["per_teacher"][0]
    )
    assert 0 < params["student"] < params["per_teacher"][0]
    speed = report["speed"]
    assert speed["teacher"]["examples_per_second"] > 0 and speed["student"]["latency_ms_p50"] > 0
    assert report["speedup"] == pytest.approx(
        speed["student"]["examples_per_second"] / speed["teacher"]["examples_per_second"], rel=1e-2
    )
    assert (out / "distillation.png").is_file() or importlib.util.find_spec("matplotlib") is None
    info = json.loads((out / "bertkit.json").read_text())
    assert info["task"] == "classification" and info["options"]["labels"] == ["neg", "pos"]

    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()

    texts = ["the movie was great", "it is dull and poor"]
    ours = Predictor.from_pretrained(out).predict([{"text": t} for t in texts])
    tok = transformers.BertTokenizerFast.from_pretrained(out)
    with torch.no_grad():
        probs = torch.softmax(hf(**tok(texts, return_tensors="pt", padding=True)).logits, -1)
    for row, pred in zip(probs.tolist(), ours, strict=True):
        assert row == pytest.approx([pred["probabilities"]["neg"], pred["probabilities"]["pos"]], abs=1e-4)


def test_unlabeled_text_gets_the_teachers_labels(teachers: list[Path], data: Path) -> None:
    task, models = load_teachers([str(teachers[0])])
    unlabeled = read_unlabeled(data / "unlabeled.txt", task)
    assert len(unlabeled) == 40 and all(e.label is None for e in unlabeled)
    done = distilled_examples(task, models, [], unlabeled, Tokenizer.from_pretrained(teachers[0]), 2.0,
                              TrainConfig(max_seq_length=32), Runtime(torch.device("cpu"), "fp32"))  # fmt: skip
    predicted = Predictor.from_pretrained(teachers[0]).predict([{"text": e.text} for e in unlabeled])
    assert [d.example.label for d in done] == [p["label"] for p in predicted]
    assert all(f["label"] == task.labels.index(d.example.label) for d in done for f in d.features)
    assert all(abs(float(f["soft"].sum()) - 1) < 1e-5 for d in done for f in d.features)


def test_unlabeled_reads_gzip_and_names_a_line_that_is_not_utf8(teachers: list[Path], data: Path,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    """A gzipped --unlabeled file reads as the plain one (before: a UnicodeDecodeError for the whole file), and a
    line that is not UTF-8 is named with its number."""
    task, _ = load_teachers([str(teachers[0])])
    plain = read_unlabeled(data / "unlabeled.txt", task)
    packed = tmp_path / "unlabeled.txt.gz"
    packed.write_bytes(gzip.compress((data / "unlabeled.txt").read_bytes()))
    assert [e.text for e in read_unlabeled(packed, task)] == [e.text for e in plain]
    jsonl = tmp_path / "unlabeled.jsonl.gz"
    jsonl.write_bytes(gzip.compress("".join(json.dumps({"text": e.text}) + "\n" for e in plain).encode()))
    assert [e.text for e in read_unlabeled(jsonl, task)] == [e.text for e in plain]
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"fine words\ncaf\xe9 is good\n")
    with pytest.raises(ValueError, match=r"latin1.txt:2: .*UTF-8"):
        read_unlabeled(bad, task)
    listed = tmp_path / "listed.jsonl"
    listed.write_text('{"text": "fine", "label": "pos"}\n["a list"]\n')
    with pytest.raises(ValueError, match=r"listed.jsonl:2: expected a JSON object, found list"):
        read_unlabeled(listed, task)


def test_bad_input_is_named(teachers: list[Path], data: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = str(tmp_path / "x")
    assert main(["distill", "--teacher", str(data), "--student-layers", "2", *_data_flags(data),
                 "--output-dir", out]) == 2  # fmt: skip
    assert "no bertkit.json" in capsys.readouterr().err
    assert main(["distill", "--teacher", str(teachers[0]), "--student-layers", "9", *_data_flags(data),
                 "--output-dir", out, *FAST]) == 2  # fmt: skip
    assert "the teacher has 4 layers" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"txt": "oops"}\n')
    task, _ = load_teachers([str(teachers[0])])
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        read_unlabeled(bad, task)
    with pytest.raises(SystemExit):  # argparse: --student-layers and --student exclude each other
        main(["distill", "--teacher", str(teachers[0]), "--student-layers", "2", "--student", str(teachers[1]),
              *_data_flags(data), "--output-dir", out])  # fmt: skip


def _student_config(tmp_path: Path, teacher: Path, **changes: int) -> Path:
    config = json.loads((teacher / "config.json").read_text())
    config.update(num_hidden_layers=2, **changes)
    for key in ("id2label", "label2id", "architectures"):
        config.pop(key, None)
    path = tmp_path / f"student-{'-'.join(f'{k}{v}' for k, v in changes.items())}" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(config))
    return path


def test_intermediate_matching_cli(teachers: list[Path], data: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """--hidden-weight and --attention-weight into a narrower random student: the teacher's intermediates are
    computed once, both losses fall, the projection exists and is not saved, OUT loads in transformers."""
    from bertkit.training import distill as distill_mod

    calls = {"rows": 0}
    original = distill_mod.teacher_intermediates

    def counting(task, teacher, features, *args):  # noqa: ANN001, ANN202
        calls["rows"] += len(features)
        return original(task, teacher, features, *args)

    monkeypatch.setattr(distill_mod, "teacher_intermediates", counting)
    student = _student_config(tmp_path, teachers[0], hidden_size=16, intermediate_size=32)
    out = tmp_path / "matched"
    assert main(["distill", "--teacher", str(teachers[0]), "--student", str(student), *_data_flags(data),
                 "--hidden-weight", "1", "--attention-weight", "1", "--output-dir", str(out), "--no-speed",
                 "--epochs", "3", "--lr", "3e-3", "--seed", "3", *FAST]) == 0  # fmt: skip
    assert calls["rows"] == 160  # once per training window; 3 epochs add nothing
    report = json.loads((out / "metrics.json").read_text())["distillation"]["intermediate"]
    assert report["layer_map"] == [[0, 1], [1, 3]] and report["projection"] is True  # uniform map, 2 of 4
    for name in ("hidden_loss", "attention_loss"):
        assert report[name]["steps"] == 60  # 160 / 8 per epoch x 3
        assert report[name]["last_steps"] < 0.8 * report[name]["first_steps"], (name, report[name])

    transformers = pytest.importorskip("transformers")
    hf, info = transformers.AutoModelForSequenceClassification.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]  # no projection in the folder
    from safetensors.torch import load_file

    assert not [k for k in load_file(out / "model.safetensors") if "proj" in k and "attention" not in k]
    texts = ["the movie was great", "it is dull and poor"]
    ours = Predictor.from_pretrained(out).predict([{"text": t} for t in texts])
    tok = transformers.BertTokenizerFast.from_pretrained(out)
    with torch.no_grad():
        probs = torch.softmax(hf.eval()(**tok(texts, return_tensors="pt", padding=True)).logits, -1)
    for row, pred in zip(probs.tolist(), ours, strict=True):
        assert row == pytest.approx([pred["probabilities"]["neg"], pred["probabilities"]["pos"]], abs=1e-4)


def test_intermediate_matching_bad_input(teachers: list[Path], data: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = str(tmp_path / "x")
    flags = [*_data_flags(data), "--output-dir", out, "--no-speed", *FAST]
    assert main(["distill", "--teacher", str(teachers[0]), "--student-layers", "2", "--hidden-weight", "1",
                 "--layer-map", "0:1,1:4", *flags]) == 2  # fmt: skip
    assert "--layer-map '0:1,1:4': teacher layer 4 is out of range 0..3" in capsys.readouterr().err
    two_heads = _student_config(tmp_path, teachers[0], num_attention_heads=2)
    assert main(["distill", "--teacher", str(teachers[0]), "--student", str(two_heads), "--attention-weight", "1",
                 *flags]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "--attention-weight" in err and "student 2, teacher 4" in err
    assert main(["distill", "--teacher", str(teachers[0]), "--student-layers", "2", "--attention-weight", "1",
                 "--gradient-checkpointing", *flags]) == 2  # fmt: skip
    assert "do not work with --gradient-checkpointing" in capsys.readouterr().err
