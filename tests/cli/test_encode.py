"""`bertkit encode`: every input format, rows in input order, ids file, JSONL and token output, whitening, errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from bertkit.cli.main import main
from bertkit.inference.encode_file import encode_file
from bertkit.inference.encode_inputs import InputFile, open_inputs, read_inputs
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


def _files(tmp_path: Path) -> dict[str, tuple[Path, dict]]:
    """The same rows in every format: .txt (blank line kept), .tsv by header, .jsonl with pairs and ids, .gz."""
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    (tmp_path / "in.tsv").write_text("label\tsentence\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(TEXTS)))
    rows = [{"text": t or ".", "text_pair": "ok", "id": f"r{i}"} for i, t in enumerate(TEXTS)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "in.jsonl.gz").write_bytes(gzip.compress((tmp_path / "in.jsonl").read_bytes()))
    return {"txt": (tmp_path / "in.txt", {}), "tsv": (tmp_path / "in.tsv", {"text": "sentence"}),
            "jsonl": (tmp_path / "in.jsonl", {}), "gz": (tmp_path / "in.jsonl.gz", {})}  # fmt: skip


def test_a_file_streams_the_rows_it_reads_into_lists(tmp_path):
    """open_inputs reads the file again at each rows() call, rows equal to read_inputs' lists, any slice."""
    for name, (path, columns) in _files(tmp_path).items():
        lists, stream = read_inputs(path, **columns), open_inputs(path, **columns)
        assert stream.count == lists.count == len(TEXTS), name
        assert stream.has_pairs == lists.has_pairs == (name in ("jsonl", "gz")), name
        assert list(stream.rows()) == list(lists.rows()) == list(stream.rows()), name
        assert list(stream.rows(2, 4)) == list(lists.rows(2, 4)) == list(lists.rows())[2:4], name
    assert list(open_inputs(tmp_path / "in.tsv", text="sentence").rows(0, 2)) == [
        ("hello world", None, "2"), ("the quick brown fox jumps over the lazy dog", None, "3")]  # fmt: skip
    assert list(open_inputs(tmp_path / "in.jsonl").rows(3, 4)) == [(".", "ok", "r3")]


def test_encoding_reads_one_chunk_ahead_of_what_it_wrote(tmp_path, tiny, monkeypatch):
    """The reader never runs more than one chunk ahead of the vectors written, and no row outlives its chunk, so
    memory holds a chunk of texts whatever the size of the file; the output equals encoding the lists."""
    path = tmp_path / "in.txt"
    words = ("hello", "world", "the", "quick", "fox", "dog", "lazy", "brown")
    texts = [f"{a} {b} {c}" for a in words for b in words for c in TEXTS[:-1] + ["."]][:300]
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    drawn, freed, written, chunk = [0], [0], [0], 7

    class Row(tuple):
        __slots__ = ()

        def __del__(self) -> None:
            freed[0] += 1

    class Counted(InputFile):
        def rows(self, start=0, stop=None):  # noqa: ANN001, ANN202
            for row in super().rows(start, stop):
                drawn[0] += 1
                yield Row(row)

    original = FeatureExtractor.encode_iter

    def small_chunks(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        for part in original(self, *args, **{**kwargs, "chunk_size": chunk}):
            written[0] += len(part)
            assert written[0] - chunk < drawn[0] <= written[0] + 1, (drawn, written)  # the next row may be drawn
            assert drawn[0] - freed[0] <= 128, (drawn, freed)  # nor kept once written (tee frees blocks of 57)
            yield part

    extractor = FeatureExtractor.from_pretrained(tiny, pooling="mean", device="cpu")
    want = extractor.encode(texts)
    monkeypatch.setattr(FeatureExtractor, "encode_iter", small_chunks)
    encode_file(extractor, Counted(path), tmp_path / "o.npy")
    assert drawn[0] == written[0] == len(texts) == 300
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), want, atol=1e-6)
    assert (tmp_path / "o.ids.txt").read_text().split() == [str(i) for i in range(1, 301)]
