"""`bertkit predict` streams: a chunk of lines at a time is read, predicted and written, so memory holds one
chunk whatever the size of the input, and the output equals one prediction over the whole input."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
import torch

from bertkit.cli.main import main
from bertkit.inference.predict_file import predict_file
from bertkit.inference.predictor import Predictor
from bertkit.runtime import Runtime
from bertkit.tasks.classification import ClassificationTask
from bertkit.tokenization import Tokenizer
from bertkit.training.checkpoint import save_model_folder
from bertkit.training.config import TrainConfig

import tiny_bert as tiny


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A windowed classifier (windows of 10 tokens, stride 3, mean-pooled) with a random head."""
    tmp = tmp_path_factory.mktemp("stream")
    task = ClassificationTask(labels=["neg", "pos", "meh"], window_stride=3, pooling="mean")
    base = tiny.make_tiny_model(tmp / "base")
    model, _ = task.build_model(str(base))
    torch.manual_seed(1)
    model.classifier.weight.data.normal_(0, 1.0)
    out = tmp / "model"
    save_model_folder(out, model, Tokenizer.from_pretrained(base), task, TrainConfig(max_seq_length=10))
    return out


def _inputs(n: int = 23) -> list[dict]:
    """Short texts and long ones (several windows each), one pair."""
    rows = [{"text": e.text if i % 3 else " ".join([e.text] * 4)} for i, e in enumerate(tiny.toy_examples(n, 3))]
    return rows + [{"text": "good", "text_pair": "the plot was dull"}]


class Spy(Predictor):
    """Records the number of examples of every predict_examples call."""

    calls: list[int]

    def predict_examples(self, examples):  # noqa: ANN001, ANN201
        self.calls.append(len(examples))
        return super().predict_examples(examples)


def _spy(folder: Path) -> Spy:
    spy = Spy.from_pretrained(folder, batch_size=4, device="cpu")
    spy.calls = []
    return spy


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("chunk", [1, 5, 4096])
def test_chunks_predict_as_the_whole_input_in_input_order(folder: Path, tmp_path: Path, chunk: int) -> None:
    inputs = _inputs()
    source = tmp_path / "in.jsonl"
    lines = [json.dumps(x) for x in inputs]
    lines[2] = json.dumps(inputs[2]["text"])  # a bare JSON string is a text
    source.write_text("\n".join(lines[:7] + ["", "  "] + lines[7:]) + "\n")  # blank lines are skipped
    whole = Predictor.from_pretrained(folder, batch_size=4, device="cpu").predict(inputs)
    assert len({round(p["probabilities"]["pos"], 6) for p in whole}) > 20  # inputs tell apart: order is checked

    spy = _spy(folder)
    assert predict_file(spy, str(source), str(tmp_path / "out.jsonl"), chunk_size=chunk) == len(inputs)
    assert spy.calls == [min(chunk, len(inputs) - i) for i in range(0, len(inputs), chunk)]
    got = _read(tmp_path / "out.jsonl")
    assert [p["label"] for p in got] == [p["label"] for p in whole]
    for a, b in zip(got, whole, strict=True):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)


def test_a_bad_line_in_a_file_stops_the_run_before_any_prediction(folder: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    rows = [json.dumps(x) for x in _inputs()]
    source.write_text("\n".join(rows + ['{"sentence": "no text field"}']) + "\n")
    spy = _spy(folder)
    with pytest.raises(ValueError, match=rf"in.jsonl:{len(rows) + 1}: field 'text' must be a string"):
        predict_file(spy, str(source), str(tmp_path / "out.jsonl"), chunk_size=5)
    assert spy.calls == [] and not (tmp_path / "out.jsonl").exists()
    source.write_text(rows[0] + "\n[1, 2]\n")
    with pytest.raises(ValueError, match=r"in.jsonl:2: expected a JSON object"):
        predict_file(spy, str(source), str(tmp_path / "out.jsonl"))
    source.write_bytes(rows[0].encode() + b'\n{"text": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"in.jsonl:2: bytes 13-14 are not valid UTF-8"):
        predict_file(spy, str(source), str(tmp_path / "out.jsonl"))


def test_standard_input_streams_and_keeps_what_was_predicted(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Standard input is read as it comes: each chunk is written before the next is read, and a bad line names
    itself and how many predictions before it were written (and they were)."""
    rows = [json.dumps(x) for x in _inputs()]
    out = tmp_path / "out.jsonl"

    class Stdin(io.StringIO):
        def __iter__(self):  # noqa: ANN204
            for number, line in enumerate(self.getvalue().splitlines(keepends=True), start=1):
                written = len(out.read_text().splitlines()) if out.exists() else 0
                assert written == (number - 1) // 5 * 5, (number, written)  # earlier chunks are out already
                yield line

    monkeypatch.setattr("sys.stdin", Stdin("\n".join(rows[:12] + ['{"text": 3}']) + "\n"))
    spy = _spy(folder)
    with pytest.raises(ValueError, match=r"<stdin>:13: field 'text' must be a string.*\(the 10 predictions "
                       r"before it were written\)"):  # fmt: skip
        predict_file(spy, "-", str(out), chunk_size=5)
    assert spy.calls == [5, 5] and len(_read(out)) == 10

    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(rows) + "\n"))
    capsys.readouterr()
    assert main(["predict", "--model", str(folder), "--input", "-", "--chunk-size", "7", "--batch-size", "4"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    whole = Predictor.from_pretrained(folder, batch_size=4, device="cpu").predict(_inputs())
    assert [p["label"] for p in printed] == [p["label"] for p in whole]


def test_gzip_input_and_the_refusals(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rows = [json.dumps(x) for x in _inputs()]
    plain, packed = tmp_path / "in.jsonl", tmp_path / "in.jsonl.gz"
    plain.write_text("\n".join(rows) + "\n")
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    predictor = Predictor.from_pretrained(folder, device="cpu")
    predict_file(predictor, str(plain), str(tmp_path / "a.jsonl"))
    predict_file(predictor, str(packed), str(tmp_path / "new" / "b.jsonl"))  # its folder is made
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "new" / "b.jsonl").read_text()

    two_ranks = Runtime(torch.device("cpu"), rank=0, world_size=2)
    with pytest.raises(ValueError, match=r"--input - \(standard input\) cannot be split across torchrun ranks"):
        predict_file(predictor, "-", None, two_ranks)
    with pytest.raises(ValueError, match="chunk size 0: must be at least 1"):
        predict_file(predictor, str(plain), None, chunk_size=0)
    assert main(["predict", "--model", str(folder), "--input", str(tmp_path / "none.jsonl")]) == 2
    assert "--input" in capsys.readouterr().err
