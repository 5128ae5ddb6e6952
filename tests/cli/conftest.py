"""Fixtures of the CLI tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertkit.cli.main import main


@pytest.fixture
def glue_train(train_precision):
    """`bertkit train` on a GLUE task (seed 1, bf16 where native, 10% warmup) -> its metrics.json."""

    def run(task: str, data: Path, model: Path, out: Path, *options: str) -> dict:
        argv = ["train", "--task", task, "--data-dir", str(data), "--model", str(model), "--output-dir", str(out),
                "--seed", "1", "--precision", train_precision, "--warmup-ratio", "0.1", "--no-progress", *options]  # fmt: skip
        assert main(argv) == 0
        return json.loads((out / "metrics.json").read_text())

    return run
