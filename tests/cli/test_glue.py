"""Real accuracy, end to end through `bertkit train`: all-MiniLM-L6-v2 fine-tuned on GLUE SST-2 and MRPC.

The subsets and hyperparameters are chosen to fit CI's time budget on a 2-core CPU (bf16 autocast, which this
CPU runs natively, about halves the step time) while clearing the targets with a margin; measured figures are in
the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertkit.cli.main import main


def _train(task: str, data: Path, model: Path, out: Path, *options: str) -> dict:
    argv = ["train", "--task", task, "--data-dir", str(data), "--model", str(model), "--output-dir", str(out),
            "--seed", "1", "--precision", "bf16", "--warmup-ratio", "0.1", "--no-progress", *options]  # fmt: skip
    assert main(argv) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
def test_sst2_dev_accuracy(data_dir: Path, minilm_dir: Path, tmp_path: Path) -> None:
    # first 16,000 of SST-2's 67,349 training sentences, 1 epoch, batch 32, lr 1e-4, 10% warmup, max length 64
    # (SST-2's longest sentence has 66 tokens), bf16 autocast, seed 1; measured 0.868
    metrics = _train("sst2", data_dir / "glue/SST-2", minilm_dir, tmp_path / "sst2", "--max-train-examples", "16000",
                     "--epochs", "1", "--batch-size", "32", "--lr", "1e-4", "--max-seq-length", "64")  # fmt: skip
    assert metrics["accuracy"] >= 0.85, metrics


@pytest.mark.slow
def test_mrpc_dev_accuracy(data_dir: Path, minilm_dir: Path, tmp_path: Path) -> None:
    # all 3,668 MRPC training pairs, 2 epochs, batch 32, lr 1e-4, 10% warmup, max length 128, bf16, seed 1;
    # the better of the two per-epoch evaluations is kept; measured 0.826. The majority class gives 0.684.
    metrics = _train("mrpc", data_dir / "glue/MRPC", minilm_dir, tmp_path / "mrpc", "--epochs", "2",
                     "--batch-size", "32", "--lr", "1e-4", "--max-seq-length", "128")  # fmt: skip
    assert metrics["accuracy"] >= 0.75, metrics


@pytest.mark.slow
def test_sst2_reference_recipe_against_trainer(minilm_dir: Path, tmp_path: Path) -> None:
    # The issue's reference: transformers' Trainer with the first 8,000 SST-2 training sentences, 1 epoch, batch 32,
    # lr 5e-5, max length 128, seed 1 reaches 0.833; bertkit must be within 0.5 points or better. Same recipe with
    # the Trainer's other defaults (no warmup, no weight decay, fp32), on the sample shipped in examples/data/sst2
    # (those 8,000 sentences and the full dev set). bench/bench_train.py runs both side by side.
    data = Path(__file__).resolve().parents[2] / "examples" / "data" / "sst2"
    argv = ["train", "--task", "sst2", "--data-dir", str(data), "--model", str(minilm_dir), "--output-dir",
            str(tmp_path / "ref"), "--epochs", "1", "--batch-size", "32", "--lr", "5e-5", "--max-seq-length", "128",
            "--seed", "1", "--warmup-ratio", "0", "--weight-decay", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.833 - 0.005, metrics
