"""Real accuracy through `bertkit train`: all-MiniLM-L6-v2 fine-tuned on all of GLUE MRPC (slow).

In its own file so that the two pytest-xdist workers can run it beside the other long GLUE runs (the suite
distributes whole files); the budget note is in test_glue.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_mrpc_dev_accuracy(glue_train, data_dir: Path, minilm_dir: Path, tmp_path: Path) -> None:
    # all 3,668 MRPC training pairs, 2 epochs, batch 32, lr 1e-4, 10% warmup, max length 128, bf16, seed 1;
    # the better of the two per-epoch evaluations is kept; measured 0.821 (0.826 before the 2026-12-03 masks; fp32 on AVX2, 2026-12-05, 0.821 too). The majority class gives 0.684.
    metrics = glue_train("mrpc", data_dir / "glue/MRPC", minilm_dir, tmp_path / "mrpc", "--epochs", "2",
                         "--batch-size", "32", "--lr", "1e-4", "--max-seq-length", "128")  # fmt: skip
    assert metrics["accuracy"] >= 0.75, metrics
