"""`bertkit pretrain-data` and `bertkit pretrain` end to end on the tiny fixture model; flag checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertkit.cli.main import main
from bertkit.data.shards import load_shards
from bertkit.inference.features import FeatureExtractor


@pytest.fixture(scope="module")
def tiny(fixtures_dir: Path) -> str:
    return str(fixtures_dir / "tiny-bert-hf")


def test_pretrain_data_then_pretrain(tmp_path, tiny, data_dir, capsys):
    sample = str(data_dir / "mlm_corpus/bert_sample_text.txt")
    assert main(["pretrain-data", "--input", sample, "--output-dir", str(tmp_path / "shards"), "--model", tiny,
                 "--max-seq-length", "32", "--dupe-factor", "3", "--whole-word-mask", "--seed", "5"]) == 0  # fmt: skip
    assert "instances from 3 documents" in capsys.readouterr().out
    meta = json.loads((tmp_path / "shards/meta.json").read_text())
    assert (
        meta["config"]["whole_word_mask"]
        and meta["config"]["max_seq_length"] == 32
        and meta["config"]["seed"] == 5
    )
    assert len(load_shards(tmp_path / "shards")) == meta["num_instances"]

    assert main(["pretrain", "--data", str(tmp_path / "shards"), "--model", tiny, "--output-dir", str(tmp_path / "out"),
                 "--dev-fraction", "0.67", "--max-steps", "4", "--batch-size", "4", "--no-progress", "--device", "cpu",
                 "--no-nsp"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out.split("\nmodel folder")[0])
    assert set(report["after"]) == {"mlm_accuracy", "mlm_loss", "perplexity"} and report["steps"] == 4
    assert json.loads((tmp_path / "out/bertkit.json").read_text())["task"] == "pretraining"
    assert FeatureExtractor.from_pretrained(tmp_path / "out", device="cpu").encode(["hello world"]).shape == (
        1,
        32,
    )


def test_flag_errors(tmp_path, tiny, data_dir, capsys):
    sample = str(data_dir / "mlm_corpus/bert_sample_text.txt")
    assert main(["pretrain-data", "--input", sample, "--output-dir", str(tmp_path / "s"), "--vocab",
                 str(Path(tiny) / "vocab.txt")]) == 2  # fmt: skip
    assert "add --lower or --cased" in capsys.readouterr().err
    assert main(["pretrain-data", "--input", sample, "--output-dir", str(tmp_path / "s")]) == 2
    assert "give --model" in capsys.readouterr().err
    assert main(["pretrain", "--data", str(tmp_path / "none"), "--model", tiny, "--model-config", "c.json",
                 "--output-dir", str(tmp_path / "o")]) == 2  # fmt: skip
    assert "not both" in capsys.readouterr().err
    assert (
        main(
            [
                "pretrain",
                "--data",
                str(tmp_path / "none"),
                "--model",
                tiny,
                "--output-dir",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "make pretraining shards with `bertkit pretrain-data`" in capsys.readouterr().err


def test_pretrain_from_scratch_twice_with_one_seed_gives_identical_weights(tmp_path, tiny, data_dir, capsys):
    """The model is built after seeding: --seed reproduces a from-scratch run bit for bit (and another seed
    does not, so the comparison can fail)."""
    sample = str(data_dir / "mlm_corpus/bert_sample_text.txt")
    assert main(["pretrain-data", "--input", sample, "--output-dir", str(tmp_path / "shards"), "--model", tiny,
                 "--max-seq-length", "32", "--dupe-factor", "1"]) == 0  # fmt: skip
    config = {"vocab_size": 332, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
              "intermediate_size": 24, "max_position_embeddings": 32}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))

    def weights(name: str, seed: int) -> bytes:
        out = tmp_path / name
        assert main(["pretrain", "--data", str(tmp_path / "shards"), "--model-config", str(tmp_path / "config.json"),
                     "--vocab", tiny, "--output-dir", str(out), "--max-steps", "2", "--batch-size", "4", "--dev-fraction", "0.67",
                     "--no-progress", "--device", "cpu", "--seed", str(seed)]) == 0  # fmt: skip
        return (out / "model.safetensors").read_bytes()

    first = weights("a", 7)
    assert weights("b", 7) == first
    assert weights("c", 8) != first
    capsys.readouterr()


def test_the_pretraining_defaults_live_in_the_library():
    from bertkit.training.pretrain import pretrain_config

    assert pretrain_config().lr == 1e-4
    assert pretrain_config({"lr": 3e-5, "seed": 1}).lr == 3e-5
    with pytest.raises(ValueError, match="unknown training option"):
        pretrain_config({"learning_rate": 1e-4})
