"""`bertkit train / predict / eval` end to end on a tiny model: the output folder, predictions on stdout and in a
file, metrics that agree, config files, seeds, and bad input files that stop with file:line or go to --rejects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertkit.cli.main import main

import tiny_bert as tiny


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.make_tiny_model(tmp_path_factory.mktemp("cli") / "model")


def _tsv(path: Path, examples, header: bool = True) -> Path:  # noqa: ANN001
    rows = "".join(f"{e.text}\t{e.label}\n" for e in examples)
    path.write_text(("sentence\tlabel\n" if header else "") + rows, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    _tsv(folder / "train.tsv", tiny.toy_examples(200, 0))
    _tsv(folder / "dev.tsv", tiny.toy_examples(60, 1))
    return folder


FAST = ["--max-seq-length", "32", "--lr", "3e-3", "--batch-size", "8", "--no-progress"]


def _train(model_dir: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["train", "--task", "classification", "--train-file", str(data / "train.tsv"),
                 "--dev-file", str(data / "dev.tsv"), "--text", "sentence", "--label", "label",
                 "--model", str(model_dir), "--output-dir", str(out), *FAST, *extra])  # fmt: skip


def test_train_predict_eval(
    model_dir: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    assert _train(model_dir, data, out, "--epochs", "3") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9 and {"f1", "mcc", "f1_macro"} <= set(metrics)
    capsys.readouterr()

    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "the movie was great"}\n\n"the plot was awful"\n{"text": "it is dull"}\n')
    assert main(["predict", "--model", str(out), "--input", str(inputs)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["label"] for p in lines] == ["pos", "neg", "neg"]
    assert all(set(p) == {"label", "probabilities"} for p in lines)
    assert (
        main(["predict", "--model", str(out), "--input", str(inputs), "--output", str(tmp_path / "p.jsonl")])
        == 0
    )
    assert [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()] == lines

    capsys.readouterr()
    assert main(["eval", "--model", str(out), "--dev-file", str(data / "dev.tsv"), "--text", "sentence"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["accuracy"] == pytest.approx(metrics["accuracy"])


def test_config_file_seeds_and_predict_phase(model_dir: Path, data: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    _tsv(tmp_path / "test.tsv", tiny.toy_examples(5, 2))
    config.write_text(json.dumps({
        "task": "classification", "train_file": str(data / "train.tsv"), "dev_file": str(data / "dev.tsv"),
        "test_file": str(tmp_path / "test.tsv"), "fields": {"text": "sentence", "label": "label"},
        "model": str(model_dir), "epochs": 1, "max_seq_length": 32, "lr": 2e-3, "progress": False,
    }))  # fmt: skip
    out = tmp_path / "seeds"
    assert (
        main(["train", "--config", str(config), "--output-dir", str(out), "--seeds", "1,2", "--do-predict"])
        == 0
    )
    summary = json.loads((out / "seeds.json").read_text())
    acc = summary["metrics"]["accuracy"]
    assert summary["seeds"] == [1, 2] and len(acc["values"]) == 2
    assert acc["mean"] == pytest.approx(sum(acc["values"]) / 2)
    assert acc["std"] == pytest.approx(abs(acc["values"][0] - acc["values"][1]) / 2**0.5)
    for seed in (1, 2):
        assert json.loads((out / f"seed-{seed}" / "train_config.json").read_text())["seed"] == seed
        assert len((out / f"seed-{seed}" / "predictions.jsonl").read_text().splitlines()) == 5


def test_a_config_file_that_is_not_json_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "run.json"
    config.write_text('{"epochs": 1,\n "lr": 1e-4,}\n')
    assert main(["train", "--config", str(config), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{config}:2: not valid JSON (Expecting property name enclosed in double quotes at column 13)" in err
    assert "expected a JSON object of options (--config)" in err
    assert not (tmp_path / "out").exists()


def test_bad_rows_stop_with_file_and_line(
    model_dir: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    good = tiny.toy_examples(40, 0)
    rows = ["sentence\tlabel"] + [f"{e.text}\t{e.label}" for e in good]
    rows[5] = "no label column here"
    rows[9] = "\tpos"  # empty text
    (bad / "train.tsv").write_bytes(("\n".join(rows) + "\n").encode() + b"caf\xe9 latin-1 bytes\tpos\n")
    (bad / "dev.tsv").write_text("sentence\tlabel\nthe movie\tpos\nthe film\tmaybe\n")
    argv = ["train", "--task", "classification", "--train-file", str(bad / "train.tsv"), "--dev-file",
            str(bad / "dev.tsv"), "--text", "sentence", "--model", str(model_dir), "--output-dir",
            str(tmp_path / "o"), *FAST, "--epochs", "1"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "3 bad row(s) in the training data" in err
    assert f"{bad / 'train.tsv'}:6: has 1 columns but the header has 2" in err
    assert f"{bad / 'train.tsv'}:10: the text is empty" in err
    assert f"{bad / 'train.tsv'}:42: bytes 3-4 are not valid UTF-8" in err
    assert "--rejects FILE" in err
    assert not (tmp_path / "o" / "model.safetensors").exists()  # stopped before any compute

    rejects = tmp_path / "rejects.jsonl"
    assert main([*argv, "--rejects", str(rejects)]) == 0
    got = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["source"].rsplit(":", 1)[1] for r in got] == ["6", "10", "42", "3"]
    assert got[0]["row"] == "no label column here" and got[3]["source"].startswith(str(bad / "dev.tsv"))
    assert "unknown label 'maybe'" in got[3]["reason"]
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["accuracy"] in (
        0.0,
        1.0,
    )  # 1 dev row left


def test_header_read_as_data_is_caught(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _tsv(tmp_path / "train.tsv", tiny.toy_examples(30, 0))
    argv = ["train", "--task", "classification", "--train-file", str(tmp_path / "train.tsv"), "--text", "0",
            "--label", "1", "--model", str(model_dir), "--output-dir", str(tmp_path / "o"), *FAST]  # fmt: skip
    assert main(argv) == 2
    assert (
        "the label 'label' appears on this line only: is the first line a header? Pass --header"
        in capsys.readouterr().err
    )


def test_regression_and_multilabel_jsonl(model_dir: Path, tmp_path: Path) -> None:
    rows = [{"text": e.text, "score": 4.0 if e.label == "pos" else 1.0, "tags": ["pos", "x"] if e.label == "pos" else ["neg"]}
            for e in tiny.toy_examples(120, 0)]  # fmt: skip
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    common = ["--task", "classification", "--train-file", str(tmp_path / "train.jsonl"), "--dev-file",
              str(tmp_path / "train.jsonl"), "--model", str(model_dir), *FAST, "--epochs", "8"]  # fmt: skip
    # 8 epochs: at 4 the regression's Pearson ranged 0.06-0.73 over seeds 1-8 (it passed on the default seed by
    # luck and failed once dropout's masks changed); at 8 it is 0.91-1.0 for all eight
    assert (
        main(
            [
                "train",
                *common,
                "--label",
                "score",
                "--problem-type",
                "regression",
                "--output-dir",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    reg = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert reg["pearson"] > 0.6 and "spearman" in reg
    assert main(["train", *common, "--label", "tags", "--problem-type", "multi_label_classification",
                 "--output-dir", str(tmp_path / "m")]) == 0  # fmt: skip
    multi = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert multi["f1_micro"] > 0.8
    assert (tmp_path / "m" / "labels.txt").read_text().split() == ["neg", "pos", "x"]


def test_usage_errors(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert main(["train", "--task", "sst2", "--output-dir", str(tmp_path)]) == 2
    assert "no training data" in capsys.readouterr().err
    assert main(["train", "--output-dir", str(tmp_path)]) == 2
    assert "--task is required" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path), "--input", str(tmp_path / "none.jsonl")]) == 2
    assert "bertkit.json not found" in capsys.readouterr().err


def test_shipped_sst2_sample_reads_clean() -> None:
    """examples/data/sst2 (the README's main command) is GLUE SST-2 in its layout: 8,000 train, 872 dev."""
    from bertkit.data.validate import split_valid
    from bertkit.tasks import build_task, get_preset, read_split

    folder = Path(__file__).parents[2] / "examples" / "data" / "sst2"
    preset = get_preset("sst2")
    task = build_task(preset.family, dict(preset.options))
    for split, count in (("train", 8000), ("dev", 872)):
        good, bad = split_valid(read_split(preset, folder, split), task.check)
        assert (len(good), bad) == (count, [])
    inputs = (Path(__file__).parents[2] / "examples" / "sst2_inputs.jsonl").read_text().splitlines()
    assert all(isinstance(json.loads(line)["text"], str) for line in inputs)


def test_chinese_preset_with_a_tiny_model(data_dir: Path, models_dir: Path, tmp_path: Path) -> None:
    """ChnSentiCorp through its preset with a tiny random model on the real bert-base-chinese vocab."""
    import torch

    from bertkit.model.config import BertConfig
    from bertkit.model.heads import BertForPreTraining
    from bertkit.tokenization import Tokenizer

    folder = tmp_path / "zh"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=21128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128)  # fmt: skip
    BertForPreTraining(config).save_pretrained(folder)
    Tokenizer.from_vocab(
        models_dir / "vocab" / "bert-base-chinese-vocab.txt", do_lower_case=True
    ).save_pretrained(folder)
    out = tmp_path / "run"
    argv = ["train", "--task", "chnsenticorp", "--data-dir", str(data_dir / "chnsenticorp"), "--model", str(folder),
            "--output-dir", str(out), "--max-train-examples", "200", "--max-eval-examples", "100", "--epochs", "1",
            "--max-seq-length", "64", "--no-progress", "--do-predict"]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "f1", "mcc"} <= set(metrics)
    predictions = (out / "predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 1200  # ChnSentiCorp's test split, in file order
    assert json.loads(predictions[0])["source"].endswith("test.tsv:2")
    tok = Tokenizer.from_pretrained(out)
    assert tok.tokenize("选择珠江花园的原因") == list("选择珠江花园的原因")


def test_generic_families_pick_their_reader_from_the_file(model_dir: Path, tmp_path: Path) -> None:
    """--task tagging with CoNLL files and --task multiple_choice with JSONL: no classification column defaults
    leak into other families; bertkit eval with no --task reads the family from the model folder."""
    sentences = [("John lives in Paris".split(), ["B-PER", "O", "O", "B-LOC"]),
                 ("Mary visited Berlin".split(), ["B-PER", "O", "B-LOC"])] * 20  # fmt: skip
    conll = "".join("".join(f"{w} {t}\n" for w, t in zip(ws, ts, strict=True)) + "\n" for ws, ts in sentences)
    (tmp_path / "train.conll").write_text(conll, encoding="utf-8")
    out = tmp_path / "tagger"
    assert main(["train", "--task", "tagging", "--train-file", str(tmp_path / "train.conll"),
                 "--dev-file", str(tmp_path / "train.conll"), "--model", str(model_dir), "--output-dir", str(out),
                 "--epochs", "2", *FAST]) == 0  # fmt: skip
    info = json.loads((out / "bertkit.json").read_text())
    assert info["task"] == "tagging" and {"O", "B-PER", "B-LOC", "I-PER", "I-LOC"} == set(info["options"]["labels"])  # BIO completed
    report = tmp_path / "eval.json"
    assert main(["eval", "--model", str(out), "--dev-file", str(tmp_path / "train.conll"), "--output",
                 str(report)]) == 0  # fmt: skip
    assert json.loads(report.read_text())["f1"] == pytest.approx(json.loads((out / "metrics.json").read_text())["f1"])

    rows = [{"context": "A cat", "question": "is a", "choices": ["animal", "rock"], "label": 0}] * 16
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "mc"
    assert main(["train", "--task", "multiple_choice", "--train-file", str(tmp_path / "mc.jsonl"), "--dev-file",
                 str(tmp_path / "mc.jsonl"), "--model", str(model_dir), "--output-dir", str(out), *FAST]) == 0  # fmt: skip
    assert json.loads((out / "metrics.json").read_text())["total"] == 16
