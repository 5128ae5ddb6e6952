"""DDP through torchrun on CPU (gloo): 2 processes x batch 4 give the same model as 1 process x batch 8.
Dropout is off in this tiny model: each rank draws its own dropout masks, so only dropout-free runs match."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


def _command(model: Path, data: Path, out: Path, batch: int) -> list[str]:
    return ["-m", "bertkit.cli.main", "train", "--task", "classification",
            "--train-file", str(data / "train.tsv"), "--dev-file", str(data / "dev.tsv"),
            "--text", "sentence", "--label", "label", "--model", str(model), "--output-dir", str(out),
            "--max-seq-length", "32", "--lr", "2e-3", "--seed", "3", "--epochs", "2", "--batch-size", str(batch),
            "--no-progress", "--no-save-best"]  # fmt: skip


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tiny_model_no_dropout: Path, tmp_path: Path, toy) -> None:  # noqa: ANN001
    data = tmp_path / "data"
    data.mkdir()
    for name, examples in (("train.tsv", toy(203, 0)), ("dev.tsv", toy(40, 1))):  # 203: a ragged last batch
        (data / name).write_text("sentence\tlabel\n" + "".join(f"{e.text}\t{e.label}\n" for e in examples))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run([sys.executable, *_command(tiny_model_no_dropout, data, one, 8)], check=True, env=env,
                   capture_output=True)  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         *_command(tiny_model_no_dropout, data, two, 4)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    assert "rank 1 of 2" in run.stderr
    wa, wb = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-4, atol=2e-5)
    ma, mb = json.loads((one / "metrics.json").read_text()), json.loads((two / "metrics.json").read_text())
    assert ma["steps"] == mb["steps"]
    assert abs(ma["accuracy"] - mb["accuracy"]) <= 1 / 40
