"""The compact feature store: the features a task makes come back equal from memory-mapped uint16/uint8 arrays,
at ~3 bytes per token; the cache builds a store once per key (data file, tokenizer files, task options)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from bertkit.data.examples import TextExample
from bertkit.data.feature_store import (
    FeatureCache,
    FeatureStore,
    UnstorableFeature,
    cache_key,
    file_identity,
    tokenizer_fingerprint,
    write_store,
)
from bertkit.tasks.classification import ClassificationTask
from bertkit.tokenization import Tokenizer

_spec = importlib.util.spec_from_file_location(
    "bertkit_tests_tiny_bert", Path(__file__).parents[1] / "training" / "tiny_bert.py"
)
tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    folder = tmp_path_factory.mktemp("tok")
    (folder / "vocab.txt").write_text(
        "\n".join(tiny.SPECIALS + tiny.WORDS + tiny.POSITIVE + tiny.NEGATIVE + [".", "!"]) + "\n"
    )
    return Tokenizer.from_vocab(folder / "vocab.txt", do_lower_case=True)


def _features(task: ClassificationTask, examples: list[TextExample], tokenizer: Tokenizer, length: int = 8):
    out = []
    for i, feats in enumerate(task.features_batch(examples, tokenizer, length)):
        for f in feats:
            f["example_index"] = i
            out.append(f)
    return out


@pytest.mark.parametrize(
    ("options", "pair", "labels"),
    [
        ({"labels": ("neg", "pos")}, False, None),
        ({"labels": ("neg", "pos"), "window_stride": 2}, False, None),  # several windows per example
        ({"problem_type": "regression"}, True, ["0.5", "4.25", "3"]),
        ({"labels": ("a", "b", "c"), "problem_type": "multi_label_classification"}, False, ["a,c", "b", ""]),
    ],
)
def test_round_trip_equals_the_tasks_features(options, pair, labels, tokenizer, tmp_path: Path) -> None:
    examples = tiny.toy_examples(50, 3, pair=pair)
    if labels:
        examples = [TextExample(e.text, e.text_pair, labels[i % 3], e.source) for i, e in enumerate(examples)]
    task = ClassificationTask(**options)
    features = _features(task, examples, tokenizer)
    store = write_store(tmp_path / "s", [features[:7], features[7:30], features[30:]])
    assert len(features) > len(examples) or "window_stride" not in options
    assert len(store) == len(features) and list(store) == features  # values and Python types equal
    assert store[-1] == features[-1]
    assert store.lengths().tolist() == [len(f["input_ids"]) for f in features]
    reopened = FeatureStore(tmp_path / "s")
    assert reopened[5] == features[5]
    assert reopened.meta["columns"]["input_ids"]["dtype"] == "uint8"  # a 35-token vocab fits a byte
    assert reopened.meta["columns"]["token_type_ids"]["dtype"] == "uint8"


def test_ids_narrow_to_uint16_or_stay_int32_and_bytes_per_token(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    feats = [{"input_ids": rng.integers(0, 30522, int(n)).tolist(), "token_type_ids": [0] * int(n), "label": 1,
              "example_index": i} for i, n in enumerate(rng.integers(5, 60, 500))]  # fmt: skip
    store = write_store(tmp_path / "bert", [feats])
    assert store.meta["columns"]["input_ids"]["dtype"] == "uint16"
    assert isinstance(store._columns["input_ids"][1], np.memmap)  # memory-mapped, not loaded
    tokens = int(store.lengths().sum())
    # 2 bytes per id + 1 per token type + 2 x 8 bytes of offsets and 2 x 8 of scalars per feature (+ meta)
    assert store.nbytes() <= 3 * tokens + 32 * len(feats) + 2 * 8 + 4096
    big = [{"input_ids": [5, 70_000], "label": 0}]
    store = write_store(tmp_path / "big", [big])
    assert store.meta["columns"]["input_ids"]["dtype"] == "int32" and store[0] == big[0]


def test_empty_and_unstorable(tmp_path: Path) -> None:
    assert len(write_store(tmp_path / "empty", [])) == 0
    with pytest.raises(UnstorableFeature, match="offsets"):  # QA's (start, end) pairs
        write_store(tmp_path / "qa", [[{"input_ids": [1, 2], "offsets": [(0, 1), (1, 2)]}]])
    with pytest.raises(UnstorableFeature, match="str"):  # tagging's words
        write_store(tmp_path / "tag", [[{"input_ids": [1], "unit_words": "EU"}]])
    with pytest.raises(UnstorableFeature, match="differ in their columns"):
        write_store(tmp_path / "mixed", [[{"input_ids": [1], "label": 0}, {"input_ids": [2]}]])


def test_cache_builds_once_per_key(tokenizer: Tokenizer, tmp_path: Path) -> None:
    data = tmp_path / "train.tsv"
    data.write_text("a\tb\n")
    task = ClassificationTask(labels=("neg", "pos"))
    features = _features(task, tiny.toy_examples(20, 0), tokenizer)

    def parts() -> dict:
        return {"data": file_identity(data), "tokenizer": tokenizer_fingerprint(tokenizer),
                "task": task.to_json(), "max_seq_length": 16}  # fmt: skip

    cache = FeatureCache(tmp_path / "cache")
    store, built = cache.get_or_build(parts(), lambda: [features])
    assert built and list(store) == features

    def fail() -> list:
        raise AssertionError("a cached store must not be rebuilt")

    again, built = cache.get_or_build(parts(), fail)
    assert not built and again.folder == store.folder and list(again) == features
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [store.folder.name]  # no leftovers

    first = cache_key(parts())
    os.utime(data, ns=(0, 0))  # the data file changed (mtime)
    assert cache_key(parts()) != first
    lower = tokenizer_fingerprint(tokenizer)
    folder = tmp_path / "tok-cased"
    tokenizer.save_pretrained(folder)
    assert tokenizer_fingerprint(Tokenizer.from_vocab(folder / "vocab.txt", do_lower_case=False)) != lower
    assert tokenizer_fingerprint(Tokenizer.from_vocab(folder / "vocab.txt", do_lower_case=True)) == lower


def test_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache")

    def chunks():
        yield [{"input_ids": [1, 2], "label": 0}]
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cache.get_or_build({"k": 1}, chunks)
    assert list((tmp_path / "cache").iterdir()) == []
    assert cache.get({"k": 1}) is None
