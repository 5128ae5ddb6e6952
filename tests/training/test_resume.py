"""Exact resume: a `bertkit train` run killed with SIGKILL mid-epoch and started again ends with the same
metrics and the same weights as a run never killed (model, optimizer, schedule, data order and RNG restored).
Tiny model with dropout on, so the restored RNG matters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


def write_toy_tsv(path: Path, examples) -> Path:  # noqa: ANN001
    path.write_text(
        "sentence\tlabel\n" + "".join(f"{e.text}\t{e.label}\n" for e in examples), encoding="utf-8"
    )
    return path


def train_command(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bertkit.cli.main", "train", "--task", "classification",
            "--train-file", str(data / "train.tsv"), "--dev-file", str(data / "dev.tsv"),
            "--text", "sentence", "--label", "label", "--model", str(model), "--output-dir", str(out),
            "--max-seq-length", "32", "--lr", "2e-3", "--seed", "7", "--no-progress", *extra]  # fmt: skip


def eval_records(out: Path) -> list[dict]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records if r["type"] == "eval"]


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tiny_model_dir: Path, tmp_path: Path, toy) -> None:  # noqa: ANN001
    data = tmp_path / "data"
    data.mkdir()
    write_toy_tsv(data / "train.tsv", toy(400, 0))
    write_toy_tsv(data / "dev.tsv", toy(80, 1))
    options = ("--epochs", "3", "--batch-size", "8", "--save-steps", "5", "--eval-steps", "25")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    straight = tmp_path / "straight"
    subprocess.run(
        train_command(tiny_model_dir, data, straight, *options), check=True, env=env, capture_output=True
    )

    killed = tmp_path / "killed"
    proc = subprocess.Popen(train_command(tiny_model_dir, data, killed, *options), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        steps = sorted((killed / "checkpoints").glob("step-*")) if (killed / "checkpoints").is_dir() else []
        if (
            steps and int(steps[-1].name.split("-")[1]) >= 40
        ):  # after an evaluation (step 25), mid-epoch (50 steps each)
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "metrics.json").exists()
    left = sorted((killed / "checkpoints").glob("step-*"))
    assert left and int(left[-1].name.split("-")[1]) < 150  # 400 / 8 x 3 = 150 steps in all

    resumed = subprocess.run(train_command(tiny_model_dir, data, killed, *options), env=env, capture_output=True,
                             text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr

    a, b = (
        json.loads((straight / "metrics.json").read_text()),
        json.loads((killed / "metrics.json").read_text()),
    )
    for key in ("accuracy", "f1", "mcc", "best_step", "steps"):
        assert a[key] == b[key], key
    assert eval_records(straight) == eval_records(killed)
    wa, wb = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key
