"""Training through the feature cache: the store is tokenized once and reused by every seed and by a later run
(which does not tokenize at all), and the model trained from it is bit-identical to one trained from lists."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from safetensors.torch import load_file

import bertkit.feature_cache as feature_cache
from bertkit.cli.main import main
from bertkit.data.examples import TextExample
from bertkit.data.feature_store import FeatureStore
from bertkit.feature_cache import cache_parts, data_files

import tiny_bert as tiny


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny.make_tiny_model(tmp_path_factory.mktemp("fc") / "model")


def _train(model_dir: Path, data: Path, out: Path, *extra: str) -> int:
    return main(["train", "--task", "classification", "--train-file", str(data / "train.tsv"), "--dev-file",
                 str(data / "dev.tsv"), "--text", "sentence", "--model", str(model_dir), "--output-dir", str(out),
                 "--max-seq-length", "32", "--batch-size", "8", "--epochs", "1", "--no-progress", *extra])  # fmt: skip


def test_seeds_and_later_runs_reuse_one_store(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, examples in (("train.tsv", tiny.toy_examples(120, 0)), ("dev.tsv", tiny.toy_examples(30, 1))):
        (data / name).write_text("sentence\tlabel\n" + "".join(f"{e.text}\t{e.label}\n" for e in examples))
    cache = tmp_path / "cache"
    with caplog.at_level(logging.INFO, logger="bertkit.data.feature_store"):
        assert _train(model_dir, data, tmp_path / "a", "--seeds", "1,2", "--feature-cache", str(cache)) == 0
    written = [r for r in caplog.records if r.getMessage().startswith("features written")]
    reused = [r for r in caplog.records if r.getMessage().startswith("features from the cache")]
    assert (len(written), len(reused)) == (2, 2)  # train + dev tokenized once; seed 2 opened both
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 2

    def no_tokenizing(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a cached run must not tokenize")

    monkeypatch.setattr(feature_cache, "feature_chunks", no_tokenizing)
    assert _train(model_dir, data, tmp_path / "b", "--seed", "1", "--feature-cache", str(cache)) == 0
    monkeypatch.undo()

    assert _train(model_dir, data, tmp_path / "c", "--seed", "1", "--feature-cache", "off") == 0
    stored, listed = load_file(tmp_path / "b" / "model.safetensors"), load_file(tmp_path / "c" / "model.safetensors")
    assert stored.keys() == listed.keys()
    assert all(stored[k].equal(listed[k]) for k in stored)  # same batches, same ids: the same model
    seed1 = load_file(tmp_path / "a" / "seed-1" / "model.safetensors")
    assert all(seed1[k].equal(stored[k]) for k in stored)  # the --seeds run trained on the same store

    (data / "train.tsv").write_text((data / "train.tsv").read_text() + "the film was great\tpos\n")
    assert _train(model_dir, data, tmp_path / "d", "--seed", "1", "--feature-cache", str(cache)) == 0
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 3  # the edited file: a new store


def test_the_key_follows_the_examples_the_file_and_the_options(model_dir: Path, tmp_path: Path) -> None:
    from bertkit.tasks.classification import ClassificationTask
    from bertkit.tokenization import Tokenizer

    data = tmp_path / "x.tsv"
    data.write_text("a\tpos\n")
    examples = [TextExample("the movie", None, "pos", f"{data}:1")]
    assert data_files(examples) == [str(data)]
    tok = Tokenizer.from_pretrained(model_dir)
    task = ClassificationTask(labels=("neg", "pos"))
    key = cache_parts(task, examples, tok, 32)
    assert key == cache_parts(task, list(examples), tok, 32)
    assert key != cache_parts(task, examples, tok, 64)
    assert key != cache_parts(ClassificationTask(labels=("pos", "neg")), examples, tok, 32)
    assert key != cache_parts(task, [TextExample("the film", None, "pos", f"{data}:1")], tok, 32)
    store = feature_cache.cached_featurize(task, examples, tok, 32, tmp_path / "c")
    assert isinstance(store, FeatureStore) and store[0]["example_index"] == 0


def test_evaluation_streams_from_the_store_with_the_same_predictions(model_dir: Path, tmp_path: Path) -> None:
    """run_model over a store builds one batch of feature dicts at a time and hands back its run order as a view
    of the store; outputs, run order and decoded predictions equal those of the in-memory features, long
    texts split into windows (several features per example) included."""
    import torch

    from bertkit.data.feature_store import StoreView
    from bertkit.engine import featurize, run_model
    from bertkit.tasks.classification import ClassificationTask
    from bertkit.tokenization import Tokenizer

    examples = tiny.toy_examples(60, 3)
    tok = Tokenizer.from_pretrained(model_dir)
    task = ClassificationTask(labels=("neg", "pos"), window_stride=4)
    model, _ = task.build_model(str(model_dir))
    listed = featurize(task, examples, tok, 8)
    store = feature_cache.cached_featurize(task, examples, tok, 8, tmp_path / "c")
    assert store is not None and len(store) == len(listed) > len(examples)  # windows
    out_l, order_l = run_model(task, model, listed, 16, torch.device("cpu"))
    out_s, order_s = run_model(task, model, store, 16, torch.device("cpu"))
    assert isinstance(order_s, StoreView) and list(order_s) == order_l
    assert all(torch.equal(a, b) for a, b in zip(out_l, out_s, strict=True))
    assert task.decode(out_s, order_s, examples) == task.decode(out_l, order_l, examples)


def _tiny_english_model(folder: Path, vocab_model: Path) -> Path:
    import torch

    from bertkit.model.bert import BertModel
    from bertkit.model.config import BertConfig
    from bertkit.tokenization import Tokenizer

    torch.manual_seed(0)
    tok = Tokenizer.from_pretrained(vocab_model)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64)  # fmt: skip
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _squad_article(src: Path, dst: Path, title: str) -> Path:
    doc = json.loads(src.read_text(encoding="utf-8"))
    articles = [a for a in doc["data"] if a["title"] == title]
    dst.write_text(json.dumps({"version": doc["version"], "data": articles}), encoding="utf-8")
    return dst


@pytest.mark.parametrize("family", ["squad", "socialiqa", "conll2003"])
def test_every_family_trains_from_the_store_as_from_lists(
    family: str, data_dir: Path, minilm_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """QA (offsets as rows, max_context bools), multiple choice (ids per choice) and tagging train through the
    cache: the features are tokenized once, a later run reads them without tokenizing, and the model it trains
    and its dev metrics are bit-identical to a run with the features in memory (--feature-cache off)."""
    model = _tiny_english_model(tmp_path / "tiny", minilm_dir)
    if family == "squad":
        squad = data_dir / "squad" / "dev-v1.1.json"
        data = ["--task", "squad", "--train-file", str(_squad_article(squad, tmp_path / "train.json", "Construction")),
                "--dev-file", str(_squad_article(squad, tmp_path / "dev.json", "Jacksonville,_Florida")),
                "--max-seq-length", "96", "--task-options", '{"doc_stride": 48}']  # fmt: skip  (98 and 96 questions)
    elif family == "socialiqa":
        data = ["--task", "socialiqa", "--data-dir", str(data_dir / "socialiqa"), "--max-train-examples", "160",
                "--max-eval-examples", "100", "--max-seq-length", "48"]  # fmt: skip
    else:
        data = ["--task", "conll2003", "--data-dir", str(data_dir / "conll2003"), "--max-train-examples", "200",
                "--max-eval-examples", "100", "--max-seq-length", "24",
                "--task-options", '{"window_stride": 8}']  # fmt: skip

    def run(out: str, cache: str) -> dict:
        argv = ["train", *data, "--model", str(model), "--output-dir", str(tmp_path / out), "--batch-size", "16",
                "--epochs", "1", "--lr", "1e-3", "--seed", "3", "--no-progress", "--feature-cache", cache]  # fmt: skip
        assert main(argv) == 0
        return json.loads((tmp_path / out / "metrics.json").read_text())

    cache = str(tmp_path / "cache")
    with caplog.at_level(logging.INFO, logger="bertkit"):
        run("first", cache)
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "stay in memory" in m]
    assert len([m for m in messages if m.startswith("features written")]) == 2  # train and dev

    def no_tokenizing(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a cached run must not tokenize")

    monkeypatch.setattr(feature_cache, "feature_chunks", no_tokenizing)
    stored = run("cached", cache)
    monkeypatch.undo()
    listed = run("lists", "off")
    timing = ("train_seconds", "train_examples_per_second")
    assert {k: v for k, v in stored.items() if k not in timing} == {k: v for k, v in listed.items() if k not in timing}
    assert {"f1", "accuracy"} & stored.keys()
    a, b = load_file(tmp_path / "cached" / "model.safetensors"), load_file(tmp_path / "lists" / "model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    if family == "squad":  # `bertkit eval` on the same dev file opens the store the training run made
        monkeypatch.setattr(feature_cache, "feature_chunks", no_tokenizing)
        report = tmp_path / "eval.json"
        assert main(["eval", "--model", str(tmp_path / "cached"), "--dev-file", data[data.index("--dev-file") + 1],
                     "--feature-cache", cache, "--output", str(report)]) == 0  # fmt: skip
        again = json.loads(report.read_text())
        assert again["f1"] == pytest.approx(stored["f1"]) and again["total"] == stored["total"]


def test_an_unusable_cache_folder_leaves_the_features_in_memory_with_a_warning(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bertkit.tasks.classification import ClassificationTask
    from bertkit.tokenization import Tokenizer

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder's parent should be")
    examples = tiny.toy_examples(20, 0)
    task, tok = ClassificationTask(labels=("neg", "pos")), Tokenizer.from_pretrained(model_dir)
    with caplog.at_level(logging.WARNING, logger="bertkit.feature_cache"):
        features = feature_cache.featurize_stored(task, examples, tok, 16, str(blocker / "cache"))
    assert isinstance(features, list) and features == feature_cache.featurize(task, examples, tok, 16)
    (record,) = [r for r in caplog.records if "cannot be used" in r.getMessage()]
    assert str(blocker / "cache") in record.getMessage() and "--feature-cache off" in record.getMessage()
