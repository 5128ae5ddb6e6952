"""The compact feature store: the features a task makes come back equal from memory-mapped uint16/uint8 arrays,
at ~3 bytes per token; the cache builds a store once per key (data file, tokenizer files, task options)."""

from __future__ import annotations

import json
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

import tiny_bert as tiny


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


def typed(value):  # noqa: ANN001, ANN201
    """value with the type of every part spelled out: [True] and [1] are equal in Python, not here."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(v) for v in value])
    return (type(value).__name__, value)


def _family_features(family: str, data: Path, models: Path, minilm: Path) -> list[dict]:
    """Real features of a task family that is not classification, featurized as a training run does."""
    from bertkit.data.readers.choice import read_c3, read_socialiqa
    from bertkit.data.readers.conll import read_conll
    from bertkit.data.readers.squad import read_squad
    from bertkit.engine import featurize
    from bertkit.tasks.multiple_choice import MultipleChoiceTask
    from bertkit.tasks.qa import QATask
    from bertkit.tasks.tagging import TaggingTask

    english = Tokenizer.from_pretrained(minilm)
    chinese = Tokenizer.from_vocab(models / "vocab" / "bert-base-chinese-vocab.txt", do_lower_case=True)
    if family == "squad":  # several windows per long context; offsets as (start, end) tuples; max_context bools
        return featurize(QATask(doc_stride=32), list(read_squad(data / "squad" / "dev-v1.1.json"))[:300], english, 96)
    if family == "cmrc2018":
        examples = list(read_squad(data / "cmrc2018" / "cmrc2018_dev.json"))[:200]
        return featurize(QATask(metric="cmrc2018", doc_stride=64), examples, chinese, 128)
    if family == "socialiqa":  # input_ids: one list per choice
        d = data / "socialiqa"
        return featurize(MultipleChoiceTask(), list(read_socialiqa(d / "dev.jsonl", d / "dev-labels.lst"))[:300],
                         english, 64)  # fmt: skip
    if family == "c3":  # 2 to 4 choices per question
        return featurize(MultipleChoiceTask(), list(read_c3(data / "c3" / "dev.json"))[:200], chinese, 128)
    if family == "conll2003":  # open_start / open_end: bools; windows of long sentences
        examples = list(read_conll(data / "conll2003" / "valid.txt"))[:400]
        return featurize(TaggingTask(window_stride=8).prepare(examples), examples, english, 24)
    examples = list(read_conll(data / "chinese_ner" / "peoples_daily" / "example.dev", joiner=""))[:300]
    return featurize(TaggingTask(split="chars").prepare(examples), examples, chinese, 64)


@pytest.mark.parametrize("family", ["squad", "cmrc2018", "socialiqa", "c3", "conll2003", "peoples_daily"])
def test_every_family_round_trips_with_its_types(family, data_dir, models_dir, minilm_dir, tmp_path: Path) -> None:
    features = _family_features(family, data_dir, models_dir, minilm_dir)
    store = write_store(tmp_path / "s", [features[:50], features[50:51], features[51:]])
    assert len(store) == len(features) > 50
    assert [typed(f) for f in store] == [typed(f) for f in features]
    assert store.lengths().tolist() == [len(f["input_ids"]) for f in features]
    kinds = {k: c["kind"] for k, c in store.meta["columns"].items()}
    assert kinds["input_ids"] == ("nested" if family in ("socialiqa", "c3") else "ragged")
    assert store.meta["columns"]["input_ids"]["dtype"] == "uint16"  # both vocabs are under 65,536
    if family in ("squad", "cmrc2018"):
        assert kinds["offsets"] == "rows" and store.meta["columns"]["max_context"]["elem"] == "bool"
        tokens = sum(len(f["input_ids"]) for f in features)
        # ids 2 + types 1 + offsets 2 x 2 (contexts under 65,536 characters) + max_context 1 bytes per token
        assert store.nbytes() <= 8 * tokens + 80 * len(features) + 4096
    if family in ("conll2003", "peoples_daily"):
        assert store.meta["columns"]["open_end"]["elem"] == "bool"
        assert any(f["open_start"] for f in features) or family == "peoples_daily"  # windows were cut


def test_empty_first_lists_and_wide_values(tmp_path: Path) -> None:
    features = [
        {"ids": [], "pairs": [], "choices": [], "flags": [], "flag": False},
        {"ids": [7, 70_000], "pairs": [(0, 3), (4, 2**31 - 1)], "choices": [[1, 2], [], [3]], "flags": [True, False],
         "flag": True},
        {"ids": [-1], "pairs": [(5, 5)], "choices": [[]], "flags": [], "flag": False},
    ]  # fmt: skip
    store = write_store(tmp_path / "s", [features[:1], features[1:]])
    assert [typed(f) for f in store] == [typed(f) for f in features]
    columns = store.meta["columns"]
    assert (columns["ids"]["dtype"], columns["pairs"]["dtype"], columns["flags"]["dtype"]) == ("int32", "int32", "uint8")
    assert store.column("flag").tolist() == [False, True, False]
    assert store.lengths("choices").tolist() == [0, 3, 1]
    with pytest.raises(ValueError, match="holds lists"):
        store.column("pairs")


@pytest.mark.parametrize(
    ("column", "first", "later", "match"),
    [
        ("soft", [[0.1, 0.9]], [[0.2, 0.8]], "soft"),  # a list of lists of floats
        ("x", None, None, "NoneType"),
        ("word", "EU", "UN", "str"),  # a lone string
        ("ids", [1, 2], [1, True], "mixes value types"),
        ("ids", [1, 2], [1, 2.5], "mixes value types"),  # never truncated to an int
        ("flags", [True], [1], "mixes value types"),
        ("pairs", [(0, 1)], [(0, 1, 2)], "not 2-tuples"),
        ("pairs", [(0, 1)], [[0, 1]], "not 2-tuples"),
        ("choices", [[1], [2]], [[1], (2,)], "lists of ints with other values"),
        ("choices", [[1], [2]], [[1], [2.0]], "mixes value types"),
        ("words", ["a"], ["b"], "list"),  # a list of strings
        ("label", 1, True, "mixes value types"),
    ],
)
def test_what_has_no_column_form_is_refused(column, first, later, match, tmp_path: Path) -> None:
    with pytest.raises(UnstorableFeature, match=match):
        write_store(tmp_path / "s", [[{"input_ids": [1], column: first}], [{"input_ids": [2], column: later}]])
    assert len(write_store(tmp_path / "empty", [])) == 0


def test_features_with_different_columns_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnstorableFeature, match="differ in their columns"):
        write_store(tmp_path / "mixed", [[{"input_ids": [1], "label": 0}, {"input_ids": [2]}]])


def test_a_store_of_an_older_format_is_refused_with_the_fix(tmp_path: Path) -> None:
    store = write_store(tmp_path / "s", [[{"input_ids": [1, 2], "label": 0}]])
    meta = json.loads((store.folder / "meta.json").read_text())
    (store.folder / "meta.json").write_text(json.dumps({**meta, "format_version": 1}))
    with pytest.raises(ValueError, match="format 1, this bertkit reads 2; delete the folder"):
        FeatureStore(store.folder)


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
