"""Tests for bertkit/data/shards.py: instances written to shards come back row for row, in order, across shard
files; shards refuse a folder without them, an old format, a missing shard and another vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bertkit.data.corpus import Instance, PretrainingDataConfig
from bertkit.data.shards import META_FILE, load_shards, vocab_fingerprint, write_shards


def _instances(n: int) -> list[Instance]:
    """n instances of lengths 5, 6, ...: [CLS] A [SEP] B [SEP] with B one token, one or two masked tokens."""
    out = []
    for i in range(n):
        length = 5 + i
        ids = [101] + [1000 + 10 * i + j for j in range(length - 4)] + [102, 2000 + i, 102]
        positions = [1] if i % 2 else [1, length - 2]
        out.append(Instance(ids, length - 2, positions, [7000 + p for p in positions], bool(i % 2), i == 3,
                            i, (i + 1) % n, [j % 3 == 2 for j in range(len(ids))]))  # fmt: skip
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory, english_tokenizer) -> tuple[Path, list[Instance]]:
    instances = _instances(5)
    config = PretrainingDataConfig(max_seq_length=16, max_predictions_per_seq=3, instances_per_shard=2)
    out = write_shards(instances, tmp_path_factory.mktemp("shards"), config, english_tokenizer, {"note": "x"})
    return out, instances


def test_instances_come_back_in_order_across_shards(written, english_tokenizer):
    folder, instances = written
    shards = load_shards(folder, english_tokenizer)
    assert shards.meta["shards"] == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    assert shards.meta["num_instances"] == len(shards) == 5 and shards.meta["note"] == "x"
    assert shards.meta["vocab_sha256"] == vocab_fingerprint(english_tokenizer)
    assert shards.meta["config"]["max_seq_length"] == 16
    for i, inst in enumerate(instances):
        row = shards.instance(i)
        assert row["input_ids"] == inst.input_ids
        assert row["token_type_ids"] == [0] * inst.a_length + [1] * (len(inst.input_ids) - inst.a_length)
        assert row["masked_positions"] == inst.masked_positions and row["masked_ids"] == inst.masked_ids
        assert row["next_sentence_label"] == int(inst.is_random_next)
    a = shards.arrays
    assert a["input_ids"].shape == (5, 16) and a["input_ids"].dtype == np.int32
    assert (a["input_ids"][0, 5:] == english_tokenizer.pad_token_id).all()  # padded with the vocab's [PAD]
    assert a["forced_random"].tolist() == [False, False, False, True, False]
    assert a["document_b"].tolist() == [1, 2, 3, 4, 0]
    assert a["continuation"][4, : len(instances[4].continuation)].tolist() == instances[4].continuation


def test_writing_again_replaces_the_old_shards(tmp_path, english_tokenizer):
    config = PretrainingDataConfig(instances_per_shard=2)
    write_shards(_instances(5), tmp_path, config, english_tokenizer)
    write_shards(_instances(2), tmp_path, config, english_tokenizer)
    assert sorted(p.name for p in tmp_path.glob("shard-*.npz")) == ["shard-00000.npz"]
    assert len(load_shards(tmp_path)) == 2


def test_shards_belong_to_their_vocabulary(tmp_path, written, chinese_tokenizer):
    meta = json.loads((written[0] / META_FILE).read_text())
    folder = tmp_path / "s"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="bertkit pretrain-data"):
        load_shards(folder)
    (folder / "meta.json").write_text(json.dumps({**meta, "format": "old"}))
    with pytest.raises(ValueError, match="regenerate"):
        load_shards(folder)
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="another vocabulary"):
        load_shards(folder, chinese_tokenizer)
    with pytest.raises(FileNotFoundError, match="shard-00000.npz is listed in .*meta.json but missing"):
        load_shards(folder)
