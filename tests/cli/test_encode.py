"""`bertkit encode`: every input format, rows in input order, ids file, JSONL and token output, whitening, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bertkit.cli.main import main
from bertkit.inference.encode_file import read_inputs
from bertkit.inference.features import FeatureExtractor
from bertkit.inference.whitening import Whitening

TEXTS = ["hello world", "the quick brown fox jumps over the lazy dog", "bert", "", "a good new model"]


@pytest.fixture(scope="module")
def tiny(fixtures_dir: Path) -> str:
    return str(fixtures_dir / "tiny-bert-hf")


@pytest.fixture(scope="module")
def expected(tiny: str) -> np.ndarray:
    return FeatureExtractor.from_pretrained(tiny, pooling="mean", normalize=True, device="cpu").encode(TEXTS)


def _run(*args: str) -> int:
    return main(["encode", "--no-progress", *args])


def test_txt_rows_follow_the_lines_and_ids_file(tmp_path, tiny, expected, capsys):
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    out = tmp_path / "out" / "vectors.npy"
    assert _run("--model", tiny, "--input", str(tmp_path / "in.txt"), "--output", str(out), "--pooling", "mean",
                "--normalize") == 0  # fmt: skip
    np.testing.assert_allclose(np.load(out), expected, atol=1e-6)
    assert (tmp_path / "out/vectors.ids.txt").read_text().split() == ["1", "2", "3", "4", "5"]
    assert "5 rows" in capsys.readouterr().out


def test_jsonl_ids_pairs_and_jsonl_output(tmp_path, tiny):
    rows = [{"text": t, "text_pair": "ok", "id": f"r{i}"} for i, t in enumerate(TEXTS)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert _run("--model", tiny, "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o.jsonl"),
                "--pooling", "cls", "--no-normalize") == 0  # fmt: skip
    lines = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    want = FeatureExtractor.from_pretrained(tiny, pooling="cls", device="cpu").encode(
        TEXTS, ["ok"] * len(TEXTS)
    )
    assert [x["id"] for x in lines] == [f"r{i}" for i in range(len(TEXTS))]
    np.testing.assert_allclose(np.array([x["vector"] for x in lines]), want, atol=1e-5)


def test_tsv_columns_by_header(tmp_path, tiny, expected):
    body = "label\tsentence\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(TEXTS))
    (tmp_path / "in.tsv").write_text(body, encoding="utf-8")
    inputs = read_inputs(tmp_path / "in.tsv", text="sentence")
    assert inputs.texts == TEXTS and inputs.ids == ["2", "3", "4", "5", "6"]
    out = tmp_path / "o.npy"
    assert _run("--model", tiny, "--input", str(tmp_path / "in.tsv"), "--output", str(out), "--text", "sentence",
                "--pooling", "mean", "--normalize") == 0  # fmt: skip
    np.testing.assert_allclose(np.load(out), expected, atol=1e-6)


@pytest.mark.parametrize("layers", [["--layers", "-1,-2"], ["--layers", "-1", "-2"], ["--layers=-1,-2"]])
def test_token_features_in_googles_jsonl(tmp_path, tiny, layers):
    (tmp_path / "in.txt").write_text("hello world\nbert\n", encoding="utf-8")
    out = tmp_path / "tokens.jsonl"
    assert (
        _run("--model", tiny, "--input", str(tmp_path / "in.txt"), "--output", str(out), "--tokens", *layers)
        == 0
    )
    first = json.loads(out.read_text().splitlines()[0])
    assert [t["token"] for t in first["features"]] == ["[CLS]", "hello", "world", "[SEP]"]
    assert [layer["index"] for layer in first["features"][1]["layers"]] == [-1, -2]
    feats = FeatureExtractor.from_pretrained(tiny, device="cpu").encode_tokens(
        ["hello world"], layers=[-1, -2]
    )
    np.testing.assert_allclose(first["features"][1]["layers"][1]["values"], feats[0].values[1, 1], atol=1e-5)


def test_fit_then_apply_whitening(tmp_path, tiny):
    corpus = [f"{a} {b} {c}" for a in ("the", "a", "this", "that") for b in ("good", "new", "long", "quick", "lazy")
              for c in ("model", "word", "test", "dog", "fox", "apple")]  # fmt: skip
    (tmp_path / "corpus.txt").write_text("\n".join(corpus), encoding="utf-8")
    white = tmp_path / "white.npz"
    assert _run("--model", tiny, "--input", str(tmp_path / "corpus.txt"), "--output", str(tmp_path / "a.npy"),
                "--pooling", "mean", "--no-normalize", "--fit-whitening", str(white)) == 0  # fmt: skip
    fitted = np.load(tmp_path / "a.npy")
    k = fitted.shape[1]  # mean-pooled LayerNorm outputs vary in at most 31 of the 32 directions
    assert 8 <= k <= 31
    np.testing.assert_allclose(np.cov(fitted, rowvar=False), np.eye(k), atol=1e-3)
    assert _run("--model", tiny, "--input", str(tmp_path / "corpus.txt"), "--output", str(tmp_path / "b.npy"),
                "--pooling", "mean", "--no-normalize", "--whitening", str(white)) == 0  # fmt: skip
    np.testing.assert_allclose(np.load(tmp_path / "b.npy"), fitted, atol=1e-4)
    assert Whitening.load(white).dim == k


def test_errors_name_the_file_and_line(tmp_path, tiny, capsys):
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"txt": "typo"}\n', encoding="utf-8")
    assert (
        _run("--model", tiny, "--input", str(tmp_path / "bad.jsonl"), "--output", str(tmp_path / "o.npy"))
        == 2
    )
    assert (
        f"{tmp_path / 'bad.jsonl'}:2: field 'text' must be a string (no such field)"
        in capsys.readouterr().err
    )
    (tmp_path / "mixed.jsonl").write_text(
        '{"text": "a", "text_pair": "b"}\n{"text": "c"}\n', encoding="utf-8"
    )
    assert (
        _run("--model", tiny, "--input", str(tmp_path / "mixed.jsonl"), "--output", str(tmp_path / "o.npy"))
        == 2
    )
    assert "some rows have 'text_pair'" in capsys.readouterr().err
    (tmp_path / "in.txt").write_text("a\n", encoding="utf-8")
    assert (
        _run(
            "--model",
            tiny,
            "--input",
            str(tmp_path / "in.txt"),
            "--output",
            str(tmp_path / "t.npy"),
            "--tokens",
        )
        == 2
    )
    assert "write them to .jsonl" in capsys.readouterr().err
    assert (
        _run("--model", tiny, "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o.csv")) == 2
    )
    assert ".npy (with an ids file beside it) or .jsonl" in capsys.readouterr().err
    (tmp_path / "latin1.txt").write_bytes("ok\ncaf\xe9\n".encode("latin-1"))
    assert (
        _run("--model", tiny, "--input", str(tmp_path / "latin1.txt"), "--output", str(tmp_path / "o.npy"))
        == 2
    )
    assert f"{tmp_path / 'latin1.txt'}:2:" in capsys.readouterr().err
