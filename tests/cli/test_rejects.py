"""`--rejects` for every family's file format (issue 10 item 5): a CoNLL file, a SQuAD file and a choice JSONL file
with planted bad records. Without --rejects `bertkit train` stops before any compute naming each record's place;
with it, exactly those records go to the rejects file and training runs on the rest."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bertkit.cli.main import main

import tiny_bert as tiny

FAST = ["--max-seq-length", "32", "--lr", "3e-3", "--batch-size", "8", "--no-progress", "--epochs", "1"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.make_tiny_model(tmp_path_factory.mktemp("rejects") / "model")


def _conll(folder: Path) -> tuple[Path, list[tuple[str, str, str]], int]:
    good = "the NN B-PER\nmovie NN O\n\nthe NN B-LOC\nfilm NN I-LOC\nwas VB O\n\n"
    bad_width = "a NN B-PER\nplot O\n\n"  # line 2 of this sentence has 2 columns, not 3
    bad_tag = "story NN Q-MISC\n\n"
    text = good * 3 + bad_width + good + bad_tag + good
    path = folder / "train.conll"
    path.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    width_line = lines.index("plot O") + 1
    tag_line = lines.index("story NN Q-MISC") + 1
    expected = [(f"{path}:{width_line}", "a NN B-PER\nplot O", "2 columns where the sentence's earlier lines have 3"),
                (f"{path}:{tag_line}", "story NN Q-MISC", "tag 'Q-MISC'")]  # fmt: skip
    return path, expected, 10  # 5 good blocks of 2 sentences


def _squad(folder: Path) -> tuple[Path, list[tuple[str, str, str]], int]:
    context = "the movie was great and the plot was dull"
    good = [{"id": f"g{i}", "question": "what was great ?", "answers": [{"text": "the movie", "answer_start": 0}]}
            for i in range(6)]  # fmt: skip
    no_question = {"id": "b1", "answers": [{"text": "the plot", "answer_start": 24}]}
    bad_start = {"id": "b2", "question": "what ?", "answers": [{"text": "dull", "answer_start": "37"}]}
    qas = good[:2] + [no_question] + good[2:5] + [bad_start] + good[5:]
    path = folder / "train.json"
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas}]}]}), encoding="utf-8")  # fmt: skip
    at = f"{path}#data[0].paragraphs[0].qas"
    expected = [(f"{at}[2]", json.dumps(no_question), "missing field 'question'"),
                (f"{at}[6]", json.dumps(bad_start), "answers[0]: field 'answer_start' should be int")]  # fmt: skip
    return path, expected, 6


def _choice(folder: Path) -> tuple[Path, list[tuple[str, str, str]], int]:
    good = {"context": "the movie was great", "question": "it was", "choices": ["good", "bad"], "label": 0}
    one_choice = {"context": "the plot", "choices": ["dull"], "label": 0}
    bad_label = {"context": "the film", "choices": ["good", "bad"], "label": 2}
    rows = [json.dumps(good)] * 4 + [json.dumps(one_choice)] + [json.dumps(good)] * 4 + ["{not json"]
    rows += [json.dumps(bad_label)] + [json.dumps(good)] * 2
    path = folder / "train.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    expected = [(f"{path}:5", rows[4], "field 'choices' should be a list of at least two strings"),
                (f"{path}:10", "{not json", "not valid JSON"),
                (f"{path}:11", rows[10], "label 2 is outside 0..1")]  # fmt: skip
    return path, expected, 10


CASES = {"tagging": _conll, "qa": _squad, "multiple_choice": _choice}


@pytest.mark.parametrize("family", sorted(CASES))
def test_rejects_holds_exactly_the_bad_records_and_training_uses_the_rest(
    family: str, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    train, expected, good_count = CASES[family](tmp_path)
    argv = ["train", "--task", family, "--train-file", str(train), "--model", str(model_dir),
            "--output-dir", str(tmp_path / "out"), *FAST]  # fmt: skip

    assert main(argv) == 2  # the default: stop before any compute, every bad record named
    err = capsys.readouterr().err
    assert f"{len(expected)} bad row(s) in the training data" in err
    for source, _, reason in expected:
        assert f"{source}: " in err and reason in err
    assert not (tmp_path / "out").exists()

    rejects = tmp_path / "rejects.jsonl"
    with caplog.at_level(logging.INFO, logger="bertkit.training.experiment"):
        assert main([*argv, "--rejects", str(rejects)]) == 0
    got = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert [(r["source"], r["row"]) for r in got] == [(s, row) for s, row, _ in expected]
    assert all(reason in r["reason"] for r, (_, _, reason) in zip(got, expected, strict=True))
    assert f"data: {good_count} train, 0 dev" in caplog.text  # trained on every good record
    assert (tmp_path / "out" / "model.safetensors").is_file()
