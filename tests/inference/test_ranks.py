"""`bertkit encode` and `bertkit predict` under torchrun: ranks split the input and one output comes out in input
order, equal to a single process's (2 gloo processes on CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bertkit.inference.ranks import share

import tiny_bert as tiny


def test_shares_cover_the_input_in_order() -> None:
    for count in range(12):
        for world in range(1, 5):
            parts = [share(count, rank, world) for rank in range(world)]
            assert [i for p in parts for i in range(count)[p]] == list(range(count))
            sizes = [p.stop - p.start for p in parts]
            assert max(sizes) - min(sizes) <= 1


def _bertkit(*args: str, ranks: int = 1) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)] if ranks > 1 else []
    run = subprocess.run([sys.executable, *launcher, "-m", "bertkit.cli.main", *args], env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    return run


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path: Path) -> None:
    """~40 s on the 2-core CI machine: 5 bertkit processes (2 of them under torchrun) and a 1-epoch tiny training."""
    model = tiny.make_tiny_model(tmp_path / "model", dropout=0.0)
    examples = tiny.toy_examples(37, 5, pair=True)  # 37: the ranks get 18 and 19 rows
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"id": f"r{i}", "text": e.text, "text_pair": e.text_pair}) + "\n"
                              for i, e in enumerate(examples)))  # fmt: skip

    common = ["--model", str(model), "--input", str(inputs), "--no-progress", "--max-batch-tokens", "128"]
    _bertkit("encode", *common, "--output", str(tmp_path / "one.npy"))
    two = _bertkit("encode", *common, "--output", str(tmp_path / "two.npy"), ranks=2)
    assert "(2 ranks)" in two.stdout
    one_v, two_v = np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy")
    assert one_v.shape == (37, 32)
    np.testing.assert_allclose(two_v, one_v, rtol=0, atol=1e-5)
    assert (tmp_path / "two.ids.txt").read_text() == (tmp_path / "one.ids.txt").read_text()
    assert (tmp_path / "one.ids.txt").read_text().split() == [f"r{i}" for i in range(37)]
    assert sorted(p.name for p in tmp_path.glob("two*")) == ["two.ids.txt", "two.npy"]  # no part files left

    _bertkit("encode", *common, "--output", str(tmp_path / "two.jsonl"), ranks=2)
    rows = [json.loads(line) for line in (tmp_path / "two.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(37)]
    np.testing.assert_allclose(np.array([r["vector"] for r in rows]), one_v, atol=2e-6)

    data = tmp_path / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{e.text}\t{e.label}\n" for e in tiny.toy_examples(80, 0)))
    folder = tmp_path / "clf"
    _bertkit("train", "--task", "classification", "--train-file", str(data), "--text", "sentence", "--model",
             str(model), "--output-dir", str(folder), "--epochs", "1", "--max-seq-length", "32", "--no-progress")  # fmt: skip
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": e.text}) + "\n" for e in examples))
    _bertkit("predict", "--model", str(folder), "--input", str(texts), "--output", str(tmp_path / "p1.jsonl"))
    _bertkit("predict", "--model", str(folder), "--input", str(texts), "--output", str(tmp_path / "p2.jsonl"),
             "--chunk-size", "10", ranks=2)  # fmt: skip (4 chunks of 5 + 5 lines per rank, the last 4 + 3)
    p1 = [json.loads(line) for line in (tmp_path / "p1.jsonl").read_text().splitlines()]
    p2 = [json.loads(line) for line in (tmp_path / "p2.jsonl").read_text().splitlines()]
    assert len(p1) == len(p2) == 37
    assert [p["label"] for p in p2] == [p["label"] for p in p1]
    for a, b in zip(p1, p2, strict=True):
        assert b["probabilities"] == pytest.approx(a["probabilities"], abs=1e-6)
