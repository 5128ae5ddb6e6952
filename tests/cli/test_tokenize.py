"""bertkit tokenize: JSONL in, JSONL out."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from bertkit.cli import tokenize


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bertkit")
    tokenize.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["tokenize", *argv])


def _run(monkeypatch, capsys, args: argparse.Namespace, stdin: str) -> tuple[int, list[dict], str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = tokenize.run(args)
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_texts_and_pairs(monkeypatch, capsys, fixtures_dir):
    lines = '{"text": "Hello, world"}\n\n{"text": "hello", "text_pair": "world hello"}\n'
    code, out, _ = _run(monkeypatch, capsys, _args("--model", str(fixtures_dir / "tiny-bert-hf")), lines)
    assert code == 0 and len(out) == 2
    assert out[0]["tokens"] == ["[CLS]", "hello", ",", "world", "[SEP]"]
    assert out[0]["input_ids"] == [6, 173, 26, 174, 7] and out[0]["offsets"][1] == [0, 5]
    assert out[1]["token_type_ids"] == [0, 0, 0, 1, 1, 1]


def test_max_seq_length_and_vocab_casing(monkeypatch, capsys, fixtures_dir):
    args = _args("--vocab", str(fixtures_dir / "tiny-bert-tf/vocab.txt"), "--cased", "--max-seq-length", "4")
    code, out, _ = _run(monkeypatch, capsys, args, '{"text": "Hello world hello"}\n')
    assert code == 0 and out[0]["tokens"] == ["[CLS]", "Hello", "world", "[SEP]"]


def test_bad_json_names_the_line(monkeypatch, capsys, fixtures_dir):
    args = _args("--model", str(fixtures_dir / "tiny-bert-hf"))
    code, out, err = _run(monkeypatch, capsys, args, '{"text": "a"}\n{"text": \n')
    assert code == 1 and "line 2" in err and len(out) == 1


@pytest.mark.parametrize(
    "argv",
    [["--vocab", "v.txt"], ["--model", "m", "--lower"]],
)
def test_casing_flags_go_with_a_vocab_file_only(monkeypatch, capsys, argv):
    code, _, err = _run(monkeypatch, capsys, _args(*argv), "")
    assert code == 2 and "--lower" in err
