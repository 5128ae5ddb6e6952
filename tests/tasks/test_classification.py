"""ClassificationTask (features, windows and pooling, losses, decode, metrics, checks) and the presets
reading the official file layouts (the real files in ../shared/data, and official layouts written here)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bertkit.data.examples import TextExample
from bertkit.data.validate import Reject, split_valid
from bertkit.tasks import FAMILIES, PRESETS, build_task, get_preset, read_split
from bertkit.tasks.classification import ClassificationTask, discover_labels
from bertkit.tokenization import Tokenizer


@pytest.fixture(scope="module")
def tok(minilm_dir: Path) -> Tokenizer:
    return Tokenizer.from_pretrained(minilm_dir)


def _feats(task, examples, tok, max_len):  # noqa: ANN001, ANN202
    out = []
    for i, per in enumerate(task.features_batch(examples, tok, max_len)):
        for f in per:
            f["example_index"] = i
            out.append(f)
    return out


def test_features_match_the_tokenizer(tok: Tokenizer) -> None:
    task = ClassificationTask(labels=["neg", "pos"])
    ex = [TextExample("A fine film.", None, "pos"), TextExample("Dull.", "Very dull!", "neg")]
    f0, f1 = (per[0] for per in [task.features(e, tok, 16) for e in ex])
    assert f0["input_ids"] == tok.encode("A fine film.").ids and f0["label"] == 1
    enc = tok.encode("Dull.", "Very dull!")
    assert f1["input_ids"] == enc.ids and f1["token_type_ids"] == enc.type_ids and f1["label"] == 0
    assert task.features_batch(ex, tok, 16) == [[f0], [f1]]  # the mixed single/pair batch path
    assert len(task.features(TextExample("word " * 100, None, "pos"), tok, 16)[0]["input_ids"]) == 16


def test_windows_cover_the_document(tok: Tokenizer) -> None:
    task = ClassificationTask(labels=["a", "b"], window_stride=4)
    text = " ".join(f"w{i}" for i in range(60))
    windows = task.features(TextExample(text, None, "b"), tok, 16)
    tokens = tok.tokenize(text)
    assert len(windows) > 1 and all(w["label"] == 1 for w in windows)
    body = [w["input_ids"][1:-1] for w in windows]
    assert all(len(w["input_ids"]) <= 16 for w in windows)
    # consecutive windows share 4 tokens; together they hold every token in order
    rebuilt = body[0] + [t for b in body[1:] for t in b[4:]]
    assert rebuilt == tok.convert_tokens_to_ids(tokens)


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_pooling_in_any_run_order(pooling: str) -> None:
    task = ClassificationTask(labels=["a", "b", "c"], pooling=pooling)
    logits = torch.randn(7, 3)
    owner = [0, 0, 1, 2, 2, 2, 1]
    feats = [{"example_index": e} for e in owner]
    perm = list(range(7))
    random.Random(0).shuffle(perm)
    outputs = [logits[perm[:3]], logits[perm[3:]]]  # two batches, in a shuffled run order
    pooled = task.pool(outputs, [feats[i] for i in perm], 3)
    for e in range(3):
        rows = logits[[i for i, o in enumerate(owner) if o == e]]
        want = rows.mean(0) if pooling == "mean" else rows.max(0).values
        torch.testing.assert_close(pooled[e], want)
    preds = task.decode(outputs, [feats[i] for i in perm], [None] * 3)
    for e, p in enumerate(preds):
        assert p["label"] == "abc"[int(pooled[e].argmax())]
        assert sum(p["probabilities"].values()) == pytest.approx(1.0)


def test_losses() -> None:
    logits = torch.randn(4, 3)
    single = ClassificationTask(labels=["a", "b", "c"])
    labels = torch.tensor([0, 2, 1, 1])
    torch.testing.assert_close(single.loss(logits, {"labels": labels}), F.cross_entropy(logits, labels))
    multi = ClassificationTask(labels=["a", "b", "c"], problem_type="multi_label_classification")
    hot = torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(
        multi.loss(logits, {"labels": hot}), F.binary_cross_entropy_with_logits(logits, hot)
    )
    reg = ClassificationTask(problem_type="regression")
    y = torch.tensor([0.5, 4.0, 2.0, 1.0])
    torch.testing.assert_close(reg.loss(logits[:, :1], {"labels": y}), F.mse_loss(logits[:, 0], y))


def test_multilabel_and_regression_decode_and_metrics(tok: Tokenizer) -> None:
    multi = ClassificationTask(
        labels=["x", "y", "z"], problem_type="multi_label_classification", threshold=0.5
    )
    f = multi.features(TextExample("t", None, "x, z"), tok, 8)[0]
    assert f["label"] == [1.0, 0.0, 1.0]
    assert multi.features(TextExample("t", None, ("y",)), tok, 8)[0]["label"] == [0.0, 1.0, 0.0]
    logits = torch.tensor([[2.0, -2.0, 0.1], [-3.0, -3.0, -3.0]])
    preds = multi.decode([logits], [{"example_index": 0}, {"example_index": 1}], [None, None])
    assert preds[0]["labels"] == ["x", "z"] and preds[1]["labels"] == []
    m = multi.metrics(preds, [TextExample("a", None, "x,z"), TextExample("b", None, "y")])
    assert m["accuracy"] == 0.5 and m["f1_micro"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 1))

    reg = ClassificationTask(problem_type="regression")
    assert reg.labels == ("score",) and reg.main_metric == "pearson"
    assert reg.features(TextExample("a", "b", "3.800"), tok, 8)[0]["label"] == 3.8
    preds = reg.decode(
        [torch.tensor([[1.0], [2.0], [3.5]])], [{"example_index": i} for i in range(3)], [0, 1, 2]
    )
    assert [p["score"] for p in preds] == [1.0, 2.0, 3.5]
    m = reg.metrics(preds, [TextExample("a", None, v) for v in ("1", "2.5", "3")])
    assert set(m) == {"pearson", "spearman", "corr", "mse"} and m["spearman"] == pytest.approx(1.0)


def test_single_label_metrics_and_confusion() -> None:
    task = ClassificationTask(labels=["0", "1"])
    examples = [TextExample("t", None, lab) for lab in ("0", "1", "1", "0")]
    preds = [{"label": lab} for lab in ("0", "1", "0", "0")]
    m = task.metrics(preds, examples)
    assert m["accuracy"] == 0.75 and m["f1"] == pytest.approx(2 / 3)
    assert task.confusion(preds, examples).tolist() == [[2, 0], [1, 1]]


@pytest.mark.parametrize("kind", ["single-2", "single-3", "multi", "regression"])
def test_score_equals_metrics_of_decoded_predictions(kind: str) -> None:
    """The dev pass scores from arrays (task.score); the numbers are exactly metrics(decode(...)): windows pooled
    in a shuffled run order, tied logits (the first maximum wins in both), and a multi-label threshold that
    float32 cannot hold (0.7), met by probabilities of exactly float32(0.7) (decode compares in float64)."""
    g = torch.Generator().manual_seed(0)
    n, windows = 60, 90
    owner = list(range(n)) + torch.randint(0, n, (windows - n,), generator=g).tolist()
    rng = random.Random(0)
    if kind.startswith("single"):
        labels = ["a", "b", "c"][: int(kind[-1])]
        task = ClassificationTask(labels=labels, pooling="max")
        logits = torch.randn(windows, len(labels), generator=g)
        logits[:10] = 0.25  # ties: equal logits, equal probabilities
        examples = [TextExample("t", None, rng.choice(labels)) for _ in range(n)]
    elif kind == "multi":
        labels = ["x", "y", "z"]
        task = ClassificationTask(
            labels=labels, problem_type="multi_label_classification", threshold=0.7, pooling="max"
        )
        logits = torch.randn(windows, 3, generator=g)
        on = torch.tensor(0.7, dtype=torch.float32)  # float32(0.7) < 0.7: under the threshold in float64 only
        up = torch.nextafter(on, torch.tensor(1.0))
        even = torch.tensor(owner) % 2 == 0
        logits[even, 0] = torch.logit(on.double()).float()  # sigmoid gives float32(0.7) back exactly
        logits[~even, 0] = torch.logit(up.double()).float()
        examples = [TextExample("t", None, ",".join(rng.sample(labels, rng.randint(0, 3)))) for _ in range(n)]
    else:
        task = ClassificationTask(problem_type="regression")
        logits = torch.randn(windows, 1, generator=g) * 2
        examples = [TextExample("t", None, f"{rng.uniform(0, 5):.3f}") for _ in range(n)]
    order = list(range(windows))
    rng.shuffle(order)
    feats = [{"example_index": owner[i]} for i in order]
    outputs = [logits[order[:40]], logits[order[40:]]]
    want = task.metrics(task.decode(outputs, feats, examples), examples)
    assert task.score(outputs, feats, examples) == want
    if kind == "multi":  # the boundary rows really sit where float32 and float64 disagree
        probs = torch.sigmoid(task.pool(outputs, feats, n))[:, 0]
        assert torch.all(probs[::2] == on) and torch.all(probs[1::2] == up)


def test_check_reasons() -> None:
    task = ClassificationTask(labels=["neg", "pos"])
    assert task.check(TextExample("  ", None, "pos")) == "the text is empty"
    assert task.check(TextExample("a", "", "pos")) == "the second text (text_pair) is empty"
    assert task.check(TextExample("a", None, None)) == "no label"
    assert task.check(TextExample("a", None, None), labelled=False) is None
    assert task.check(TextExample("a", None, "meh")) == "unknown label 'meh'; the labels are neg, pos"
    reg = ClassificationTask(problem_type="regression")
    assert "is not a number" in reg.check(TextExample("a", None, "high"))
    assert "not a finite number" in reg.check(TextExample("a", None, "nan"))
    multi = ClassificationTask(labels=["x", "y"], problem_type="multi_label_classification")
    assert multi.check(TextExample("a", None, "x,w")) == "unknown label 'w'; the labels are x, y"


def test_prepare_discovers_labels() -> None:
    assert discover_labels([TextExample("a", label="10"), TextExample("b", label="9")]) == ("9", "10")
    task = ClassificationTask().prepare([TextExample("a", label="pos"), TextExample("b", label="neg")])
    assert task.labels == ("neg", "pos")
    with pytest.raises(ValueError, match="at least 2"):
        ClassificationTask().prepare([TextExample("a", label="pos")])


def test_json_round_trip_and_registry() -> None:
    task = ClassificationTask(labels=["a", "b"], window_stride=32, pooling="max", main_metric="f1")
    assert build_task(task.name, json.loads(json.dumps(task.to_json()))) == task
    assert FAMILIES["classification"].endswith(":ClassificationTask")
    with pytest.raises(ValueError, match="unknown task family"):
        build_task("nope")
    with pytest.raises(ValueError, match="unexpected keyword"):
        build_task("classification", {"labelz": ["a"]})
    ex = task.example_from_dict({"text": "hi", "text_pair": "there"}, "req[0]")
    assert ex == TextExample("hi", "there", None, "req[0]")
    with pytest.raises(ValueError, match="field 'text' must be a string"):
        task.example_from_dict({"txt": "hi"}, "req[1]")


# ---- presets on the real files -------------------------------------------------------------------------
REAL = {  # preset, folder, split -> examples (../shared/data/README.md counts)
    ("sst2", "glue/SST-2", "train"): 67349,
    ("sst2", "glue/SST-2", "dev"): 872,
    ("sst2", "glue/SST-2", "test"): 1821,
    ("cola", "glue/CoLA", "train"): 8551,
    ("cola", "glue/CoLA", "dev"): 1043,
    ("cola", "glue/CoLA", "test"): 1063,
    ("mrpc", "glue/MRPC", "train"): 3668,
    ("mrpc", "glue/MRPC", "dev"): 408,
    ("mrpc", "glue/MRPC", "test"): 1725,
    ("stsb", "glue/STS-B", "train"): 5749,
    ("stsb", "glue/STS-B", "dev"): 1500,
    ("rte", "glue/RTE", "train"): 2490,
    ("rte", "glue/RTE", "dev"): 277,
    ("rte", "glue/RTE", "test"): 3000,
    ("wnli", "glue/WNLI", "train"): 635,
    ("qnli", "glue/QNLI", "dev"): 5463,
    ("chnsenticorp", "chnsenticorp", "train"): 9600,
    ("chnsenticorp", "chnsenticorp", "test"): 1200,
    ("thucnews", "thucnews", "dev"): 10000,
    ("afqmc", "afqmc", "dev"): 4316,
    ("afqmc", "afqmc", "test"): 3861,
    ("ocnli", "ocnli", "dev"): 2950,  # 3000 minus 50 labelled '-'
    ("ocnli", "ocnli", "train"): 50437,
}


@pytest.mark.parametrize(("name", "folder", "split"), list(REAL))
def test_presets_read_the_real_files(data_dir: Path, name: str, folder: str, split: str) -> None:
    preset = get_preset(name)
    task = build_task(preset.family, dict(preset.options))
    items = read_split(preset, data_dir / folder, split)
    good, bad = split_valid(
        items, lambda e: task.check(e, labelled=split != "test" or name in ("chnsenticorp",))
    )
    assert bad == [] and len(good) == REAL[(name, folder, split)]
    if split != "test" or name == "chnsenticorp":
        assert {e.label for e in good} <= set(task.labels) or task.regression


def test_real_rows_land_in_the_right_fields(data_dir: Path) -> None:
    first = read_split(get_preset("mrpc"), data_dir / "glue/MRPC", "train")[0]
    assert first.label == "1" and first.text.startswith("Amrozi accused his brother")
    sts = read_split(get_preset("stsb"), data_dir / "glue/STS-B", "dev")[0]
    assert (sts.text, sts.text_pair, sts.label) == (
        "A man with a hard hat is dancing.",
        "A man wearing a hard hat is dancing.",
        "5.000",
    )
    cola = read_split(get_preset("cola"), data_dir / "glue/CoLA", "train")[0]
    assert cola.label == "1" and cola.text.startswith("Our friends won't buy this analysis")
    thuc = read_split(get_preset("thucnews"), data_dir / "thucnews", "dev")
    assert thuc[0].label in PRESETS["thucnews"].options["labels"]
    classes = (data_dir / "thucnews/class.txt").read_text().split()
    assert list(PRESETS["thucnews"].options["labels"]) == classes


# ---- presets on official layouts we do not have here ---------------------------------------------------
def test_mnli_qqp_xnli_lcqmc_layouts(tmp_path: Path) -> None:
    mnli = tmp_path / "mnli"
    mnli.mkdir()
    head = "index\tpromptID\tpairID\tgenre\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2"
    (mnli / "train.tsv").write_text(
        f"{head}\tlabel1\tgold_label\n0\t1\t1e\tgov\tb\tb\tp\tp\tP one.\tH one.\tneutral\tneutral\n"
    )
    (mnli / "dev_matched.tsv").write_text(
        f"{head}\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label\n"
        "0\t1\t1e\tgov\tb\tb\tp\tp\tP two.\tH two.\tneutral\tentailment\tneutral\tneutral\tneutral\tneutral\n"
    )
    (mnli / "dev_mismatched.tsv").write_text(
        (mnli / "dev_matched.tsv").read_text().replace("P two.", "P three.")
    )
    assert read_split(get_preset("mnli"), mnli, "train")[0] == TextExample(
        "P one.", "H one.", "neutral", f"{mnli}/train.tsv:2"
    )
    assert read_split(get_preset("mnli"), mnli, "dev")[0].text == "P two."
    assert read_split(get_preset("MNLI-mm"), mnli, "dev")[0].text == "P three."

    qqp = tmp_path / "qqp"
    qqp.mkdir()
    (qqp / "train.tsv").write_text(
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n1\t2\t3\tQ1?\tQ2?\t1\n"
    )
    (qqp / "test.tsv").write_text("id\tquestion1\tquestion2\n0\tT1?\tT2?\n")
    q = read_split(get_preset("qqp"), qqp, "train")[0]
    assert (q.text, q.text_pair, q.label) == ("Q1?", "Q2?", "1")
    assert read_split(get_preset("qqp"), qqp, "test")[0].text_pair == "T2?"

    xnli = tmp_path / "xnli"
    (xnli / "multinli").mkdir(parents=True)
    (xnli / "multinli/multinli.train.zh.tsv").write_text("premise\thypo\tlabel\n前提\t假设\tcontradictory\n")
    cols = "language\tgold_label\ts1b\ts2b\ts1p\ts2p\tsentence1\tsentence2\tpromptID\tpairID\tgenre"
    (xnli / "xnli.dev.tsv").write_text(
        f"{cols}\nen\tneutral\tb\tb\tp\tp\tE1\tE2\t1\t1\tg\nzh\tentailment\tb\tb\tp\tp\t中一\t中二\t1\t1\tg\n"
    )
    assert read_split(get_preset("xnli"), xnli, "train")[0].label == "contradiction"
    assert [(e.text, e.label) for e in read_split(get_preset("xnli"), xnli, "dev")] == [
        ("中一", "entailment")
    ]

    lcqmc = tmp_path / "lcqmc"
    lcqmc.mkdir()
    (lcqmc / "train.txt").write_text("喜欢打篮球的男生喜欢什么样的女生\t爱打篮球的男生喜欢什么样的女生\t1\n")
    assert read_split(get_preset("lcqmc"), lcqmc, "train")[0].label == "1"


def test_clue_json_layouts(tmp_path: Path) -> None:
    (tmp_path / "train.json").write_text(
        json.dumps({"sentence1": "a", "sentence2": "b", "label": "1"}) + "\n"
    )
    (tmp_path / "test.json").write_text(json.dumps({"id": 0, "sentence1": "c", "sentence2": "d"}) + "\n")
    assert read_split(get_preset("afqmc"), tmp_path, "train")[0].label == "1"
    assert read_split(get_preset("afqmc"), tmp_path, "test")[0].label is None
    (tmp_path / "train.50k.json").write_text(
        "\n".join(
            json.dumps({"sentence1": "a", "sentence2": "b", "label": lab}) for lab in ("neutral", "-", "x")
        )
    )
    rows = read_split(get_preset("ocnli"), tmp_path, "train")
    assert [r.label for r in rows] == ["neutral", "x"]  # '-' skipped by the preset, 'x' left for validation
    task = build_task("classification", dict(get_preset("ocnli").options))
    assert "unknown label 'x'" in task.check(rows[1])


def test_missing_split_and_unknown_preset(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="looked for .*train.tsv"):
        read_split(get_preset("sst2"), tmp_path, "train")
    with pytest.raises(ValueError, match="unknown task 'sst3'"):
        get_preset("sst3")
    assert get_preset("SST-2") is PRESETS["sst2"] and get_preset("sts-b") is PRESETS["stsb"]


def test_every_preset_names_a_known_family_and_reader() -> None:
    from bertkit.data.readers import READERS

    for name, preset in PRESETS.items():
        assert preset.family in FAMILIES, name
        assert preset.reader in READERS, name
        assert {"train", "dev"} <= set(preset.files), name
        assert not isinstance(next(iter(preset.files.values())), str), name


def test_bad_rows_in_a_preset_file_are_rejects(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood\t1\nno tab here\n")
    items = read_split(get_preset("sst2"), tmp_path, "train")
    assert isinstance(items[1], Reject) and items[1].source.endswith("train.tsv:3")
