"""ServeConfig and `bertkit serve` flags: every option has a doc line and a BERTKIT_* twin; precedence."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from bertkit.cli import serve as serve_cli
from bertkit.serving.config import ServeConfig


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    serve_cli.add_parser(p.add_subparsers(dest="command"))
    return p


def test_every_option_has_a_doc_line_a_flag_and_an_env_twin():
    help_text = parser()._subparsers._group_actions[0].choices["serve"].format_help()
    for f in dataclasses.fields(ServeConfig):
        assert f.metadata["doc"], f.name
        assert "--" + f.name.replace("_", "-") in help_text
        assert ServeConfig.env_name(f.name) in help_text


def test_flag_beats_env_beats_default():
    env = {
        "BERTKIT_PORT": "9001",
        "BERTKIT_MAX_WAIT_MS": "0.5",
        "BERTKIT_NORMALIZE": "yes",
        "BERTKIT_API_KEY": "k",
    }
    assert ServeConfig.from_env(env).port == 9001
    assert ServeConfig.from_env(env, port=9002).port == 9002
    c = ServeConfig.from_env(env)
    assert (c.max_wait_ms, c.normalize, c.api_key, c.host) == (0.5, True, "k", "127.0.0.1")
    args = parser().parse_args(["serve", "--model", "m", "--no-normalize", "--max-texts", "8"])
    names = {f.name for f in dataclasses.fields(ServeConfig)}
    c = ServeConfig.from_env(env, **{k: v for k, v in vars(args).items() if k in names})
    assert (c.model, c.normalize, c.max_texts, c.port) == ("m", False, 8, 9001)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BERTKIT_PORT": "eighty"}, "BERTKIT_PORT='eighty': expected int"),
        ({"BERTKIT_NORMALIZE": "maybe"}, "expected true/false"),
        ({"BERTKIT_BACKEND": "tf"}, "backend must be one of torch, onnx"),
        ({"BERTKIT_MAX_TEXTS": "100", "BERTKIT_MAX_QUEUE": "10"}, "max_texts .100. exceeds max_queue"),
        ({"BERTKIT_MAX_BATCH_TOKENS": "0"}, "max_batch_tokens must be at least 1"),
        ({"BERTKIT_QUANTIZE": "int8", "BERTKIT_BACKEND": "onnx"}, "quantize applies to the torch backend"),
        ({"BERTKIT_COMPILE": "true", "BERTKIT_QUANTIZE": "int8"}, "compile applies to the torch backend in full"),
        ({"BERTKIT_COMPILE": "1", "BERTKIT_BACKEND": "onnx"}, "drop --quantize int8 or --compile"),
    ],
)
def test_bad_values_name_the_variable_and_the_fix(env, message):
    with pytest.raises(ValueError, match=message):
        ServeConfig.from_env(env)
