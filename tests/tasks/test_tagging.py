"""Token tagging / NER: alignment and windows, oracle decoding with exact offsets, the three heads, saving
(transformers and the Predictor load it), the lr hook; slow end-to-end runs on CoNLL-2003, MSRA and
People's Daily."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bertkit.data.examples import TaggedExample, TextExample
from bertkit.data.readers.conll import read_conll, write_conll
from bertkit.data.tag_schemes import is_valid
from bertkit.engine import featurize, run_model
from bertkit.inference.predictor import Predictor
from bertkit.model.bert import BertModel
from bertkit.model.config import BertConfig
from bertkit.tasks import build_task, get_preset
from bertkit.tasks.tagging import TaggingTask, TagOutput
from bertkit.tokenization import Tokenizer
from bertkit.training.checkpoint import save_model_folder
from bertkit.training.config import TrainConfig
from bertkit.training.optim import build_optimizer, set_lr

CPU = torch.device("cpu")
# Mixed Chinese text: full-width punctuation, full-width and ASCII digits, Latin letters, a zero-width space.
ZH = "新华社北京３月５日电（记者ＩＢＭ）：江泽民在iPhone 2008发布会上说，“中国\u200b银行”很好。"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and a shared 2-core machine makes two threads spin."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model(folder: Path, vocab: Path, lower: bool, hidden: int = 32) -> Path:
    tok = Tokenizer.from_vocab(vocab, do_lower_case=lower)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=128)  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def en_model(tmp_path_factory, models_dir) -> Path:
    return tiny_model(
        tmp_path_factory.mktemp("tiny-en"), models_dir / "vocab" / "bert-base-uncased-vocab.txt", True
    )


@pytest.fixture(scope="module")
def zh_model(tmp_path_factory, models_dir) -> Path:
    return tiny_model(
        tmp_path_factory.mktemp("tiny-zh"), models_dir / "vocab" / "bert-base-chinese-vocab.txt", True
    )


def en_examples() -> list[TaggedExample]:
    rows = [
        (
            ["Peter", "Blackburn", "lives", "in", "Johannesburg", "."],
            ["B-PER", "I-PER", "O", "O", "B-LOC", "O"],
        ),
        (["EU", "rejects", "German", "call"], ["B-ORG", "O", "B-MISC", "O"]),
        (["Unbelievablyincomprehensibleness", "of", "Anglo-Dutch", "deals"], ["O", "O", "B-MISC", "O"]),
    ]
    task = TaggingTask()
    return [task.example_from_dict({"tokens": w, "tags": t}, f"row{i}") for i, (w, t) in enumerate(rows)]


# ---- alignment and windows ---------------------------------------------------------------------------------


def test_features_label_first_pieces_only(en_model):
    tok = Tokenizer.from_pretrained(en_model)
    examples = en_examples()
    task = TaggingTask().prepare(examples)
    assert task.labels == ("O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER")
    (feat,) = task.features(examples[0], tok, 64)
    enc = tok.encode(list(examples[0].words), is_split_into_words=True)
    assert feat["input_ids"] == enc.ids
    firsts = [i for i, w in enumerate(enc.word_ids) if w is not None and w != enc.word_ids[i - 1]]
    assert feat["label_positions"] == firsts  # never [CLS], [SEP] or a continuation piece
    assert [task.labels[k] for k in feat["label_ids"]] == list(examples[0].tags)
    (every,) = TaggingTask(labels=task.labels, all_pieces=True).features(examples[0], tok, 64)
    assert every["label_positions"] == list(range(1, len(enc.ids) - 1))


def test_long_sentences_and_long_words_slide_windows(en_model):
    tok = Tokenizer.from_pretrained(en_model)
    words = ["Peter", "Blackburn"] + ["and"] * 40 + ["Unbelievablyincomprehensibleness" * 2, "Paris"]
    tags = ["B-PER", "I-PER"] + ["O"] * 40 + ["O", "B-LOC"]
    ex = TaggingTask().example_from_dict({"tokens": words, "tags": tags})
    task = TaggingTask(labels=("O", "B-LOC", "I-LOC", "B-PER", "I-PER"), window_stride=3)
    feats = task.features(ex, tok, 12)
    assert len(feats) > 4 and all(len(f["input_ids"]) <= 12 for f in feats)
    assert any(not f["units"] for f in feats)  # a window inside the long word has no first piece
    covered = {u for f in feats for u in f["units"]}
    assert covered == set(range(len(words)))  # nothing truncated
    assert feats[0]["open_end"] and not feats[0]["open_start"] and feats[-1]["open_start"]
    # oracle scores per window -> merged back: exactly the gold tags
    outputs, order = oracle_outputs(task, feats)
    pred = task.decode(outputs, order, [ex])[0]
    assert pred["tags"] == tags
    assert [(e["text"], e["type"]) for e in pred["entities"]] == [
        ("Peter Blackburn", "PER"),
        ("Paris", "LOC"),
    ]


def oracle_outputs(task: TaggingTask, feats: list[dict], crf: bool = False):
    """One batch per feature, scores one-hot on the gold label (and a zero CRF), in reversed run order."""
    for i, f in enumerate(feats):
        f.setdefault("example_index", 0)
        f["_i"] = i
    order = list(reversed(feats))
    outputs = []
    n = len(task.labels)
    for f in order:
        scores = torch.full((1, len(f["units"]), n), -5.0)
        for k, label in enumerate(f["label_ids"]):
            scores[0, k, label] = 5.0
        extra = (torch.zeros(n), torch.zeros(n, n), torch.zeros(n)) if crf else ()
        outputs.append(TagOutput(scores, *extra))
    return outputs, order


@pytest.mark.parametrize("head", ["softmax", "crf"])
def test_chinese_offsets_map_back_exactly(zh_model, head):
    tok = Tokenizer.from_pretrained(zh_model)
    names = [("新华社", "ORG"), ("北京", "LOC"), ("ＩＢＭ", "ORG"), ("江泽民", "PER"), ("iPhone", "MISC"),
             ("中国\u200b银行", "ORG")]  # fmt: skip
    entities = [(ZH.index(n), ZH.index(n) + len(n), t) for n, t in names]
    record = {"text": ZH, "entities": [[s, e, t] for s, e, t in entities]}
    task = TaggingTask(labels=("O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"),
                       head=head, split="chars")  # fmt: skip
    ex = task.example_from_dict(record, "zh")
    assert ex.words[:3] == ("新", "华", "社") and "\u200b" in ex.words  # one word per character
    feats = task.features(ex, tok, 16)
    assert len(feats) > 2  # windows over a 16-token budget
    outputs, order = oracle_outputs(task, feats, crf=head == "crf")
    pred = task.decode(outputs, order, [ex])[0]
    got = [(e["start"], e["end"], e["type"]) for e in pred["entities"]]
    assert got == entities
    for e in pred["entities"]:
        assert e["text"] == ZH[e["start"] : e["end"]]
    assert [e["text"] for e in pred["entities"]] == [n for n, _ in names]


def test_softmax_output_is_repaired_and_crf_respects_the_scheme(en_model):
    task = TaggingTask(labels=("O", "B-PER", "I-PER", "B-LOC", "I-LOC"))
    ex = TaggedExample(("a", "b", "c", "d"), text="a b c d", offsets=((0, 1), (2, 3), (4, 5), (6, 7)))
    feat = {"input_ids": [1, 2, 3, 4, 5, 6], "label_positions": [1, 2, 3, 4], "units": [0, 1, 2, 3],
            "unit_words": [0, 1, 2, 3], "example_index": 0}  # fmt: skip
    scores = torch.tensor(
        [[[9.0, 0, 0, 0, 0], [0, 0, 9, 0, 0], [0, 0, 0, 0, 9], [9, 0, 0, 0, 0]]]
    )  # O I-PER I-LOC O
    soft = task.decode([TagOutput(scores)], [feat], [ex])[0]
    assert soft["tags"] == ["O", "B-PER", "B-LOC", "O"]  # conlleval's reading, written validly
    n = 5
    crf_task = TaggingTask(labels=task.labels, head="crf")
    crf = crf_task.decode(
        [TagOutput(scores, torch.zeros(n), torch.zeros(n, n), torch.zeros(n))], [feat], [ex]
    )[0]
    assert is_valid(crf["tags"], "IOB2") and crf["tags"] != ["O", "I-PER", "I-LOC", "O"]


# ---- heads, loss, saving ---------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["softmax", "crf", "lstm_crf"])
def test_heads_train_save_and_reload(en_model, tmp_path, head):
    tok = Tokenizer.from_pretrained(en_model)
    examples = en_examples()
    task = TaggingTask(head=head).prepare(examples)
    model, report = task.build_model(str(en_model))
    if head != "softmax":
        assert any(k.startswith("crf.") for k in report.initialized)
    feats = featurize(task, examples, tok, 12)
    batch = task.collate(feats)
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.01, lr_scales=task.lr_scales())
    model.train()
    losses = []
    for _ in range(8):
        loss = task.loss(task.forward(model, batch), batch)
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert losses[-1] < losses[0]
    model.eval()
    save_model_folder(tmp_path, model, tok, task, TrainConfig(max_seq_length=12))
    saved = set(load_file(str(tmp_path / "model.safetensors")))  # one file holds every head weight
    assert {k for k in saved if k.startswith(("crf.", "lstm."))} == {
        k for k in model.state_dict() if k.startswith(("crf.", "lstm."))
    }
    assert any(k.startswith("crf.") for k in saved) == (head != "softmax")
    assert any(k.startswith("lstm.") for k in saved) == (head == "lstm_crf")
    assert not (tmp_path / "tagging_head.safetensors").exists()
    again, _ = build_task(
        "tagging", json.loads((tmp_path / "bertkit.json").read_text())["options"]
    ).build_model(str(tmp_path), from_finetuned=True)
    with torch.no_grad():
        a = task.forward(model, batch)
        b = task.forward(again, batch)
    assert torch.equal(a.scores, b.scores)
    predictor = Predictor.from_pretrained(tmp_path, device="cpu")
    inputs = [{"text": "Peter Blackburn lives in Johannesburg."}, {"tokens": ["EU", "rejects"]}]
    out = predictor.predict(inputs)
    examples = predictor.examples(inputs)
    outputs, order = run_model(task, model, featurize(task, examples, tok, 12), 8, CPU)
    assert out == task.decode(outputs, order, examples)  # the Predictor rebuilds the same tagger
    assert len(out[1]["tags"]) == 2
    for e in out[0]["entities"]:
        assert e["text"] == "Peter Blackburn lives in Johannesburg."[e["start"] : e["end"]]


@pytest.mark.parametrize("head", ["softmax", "crf", "lstm_crf"])
def test_saved_folder_loads_in_transformers(en_model, tmp_path, head):
    transformers = pytest.importorskip("transformers")
    tok = Tokenizer.from_pretrained(en_model)
    task = TaggingTask(head=head).prepare(en_examples())
    model, _ = task.build_model(str(en_model))
    model.eval()
    model.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf, info = transformers.AutoModelForTokenClassification.from_pretrained(
            tmp_path, output_loading_info=True
        )
    assert not info["missing_keys"] and not info["mismatched_keys"]
    assert hf.config.id2label == dict(enumerate(task.labels))
    hf.eval()
    enc = tok(["Peter Blackburn lives in Johannesburg ."])
    with torch.no_grad():
        theirs = hf(**enc).logits
        ours = model(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"])
    if head == "lstm_crf":
        assert theirs.shape == ours.shape  # the BiLSTM is bertkit's: transformers sees BERT + classifier only
    else:  # the CRF sits on top of these scores: transformers computes the same emissions
        assert torch.allclose(theirs, ours, atol=1e-5)


def test_crf_loss_is_the_mean_window_nll(en_model):
    tok = Tokenizer.from_pretrained(en_model)
    examples = en_examples()
    task = TaggingTask(head="crf").prepare(examples)
    model, _ = task.build_model(str(en_model))
    batch = task.collate(featurize(task, examples, tok, 64))
    with torch.no_grad():
        out = task.forward(model, batch)
        loss = task.loss(out, batch)
        mask = batch["label_mask"]
        per_row = model.crf.nll(out.scores, batch["label_ids"], mask)
    assert float(loss) == pytest.approx(float(per_row.mean()), rel=1e-5)


def test_head_parameters_get_a_higher_learning_rate(en_model):
    task = TaggingTask(head="lstm_crf", head_lr_scale=50.0).prepare(en_examples())
    model, _ = task.build_model(str(en_model))
    optimizer = build_optimizer(model, lr=1e-4, weight_decay=0.01, lr_scales=task.lr_scales())
    set_lr(optimizer, 2e-5)
    scaled = {id(p) for g in optimizer.param_groups if g.get("lr_scale") == 50.0 for p in g["params"]}
    head = {id(p) for n, p in model.named_parameters() if n.startswith(("crf.", "lstm."))}
    assert scaled == head
    for g in optimizer.param_groups:
        assert g["lr"] == pytest.approx(2e-5 * g.get("lr_scale", 1.0))


def test_check_and_options():
    task = TaggingTask(labels=("O", "B-PER", "I-PER"))
    assert task.check(TaggedExample(("a",), ("B-PER",))) is None
    assert task.check(TaggedExample(("a", "b"), ("O",))) == "2 words but 1 tags"
    assert task.check(TaggedExample(("a",), ("B-LOC",))).startswith("unknown label 'B-LOC'")
    assert task.check(TaggedExample((), ())) == "the sentence has no words"
    assert task.check(TaggedExample((), None), labelled=False) is None
    assert "not a tagging example" in task.check(TextExample("a text", label="x"))
    assert build_task("tagging", task.to_json()) == task
    with pytest.raises(ValueError, match="head must be one of"):
        TaggingTask(head="crf2")
    with pytest.raises(ValueError, match="do not belong to scheme"):
        TaggingTask(labels=("O", "S-PER"), scheme="BIO")
    with pytest.raises(ValueError, match="only 'O'"):
        TaggingTask().prepare([TaggedExample(("a",), ("O",))])
    assert get_preset("peoples_daily").options["split"] == "chars"
    assert get_preset("conll2003").family == "tagging"


# ---- slow: real data ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_on_conll2003_subset(minilm_dir, data_dir, tmp_path):
    """all-MiniLM-L6-v2, softmax head, first 1000 CoNLL-2003 train sentences, 2 epochs, max_seq_length 64,
    lr 2e-4 (MiniLM wants more than BERT-base's 5e-5), batch 16, one thread; scored on the first 500 dev
    sentences. Measured: dev entity micro-F1 0.80 (asserted >= 0.70)."""
    from bertkit.training.loop import train

    seqeval_metrics = pytest.importorskip("seqeval.metrics")
    train_examples = list(read_conll(data_dir / "conll2003" / "train.txt"))[:1000]
    dev = list(read_conll(data_dir / "conll2003" / "valid.txt"))[:500]
    task = TaggingTask().prepare(train_examples)
    model, _ = task.build_model(str(minilm_dir))
    tok = Tokenizer.from_pretrained(minilm_dir)
    config = TrainConfig(epochs=2, batch_size=16, lr=2e-4, max_seq_length=64, num_threads=1, progress=False,
                         save_best=False)  # fmt: skip
    result = train(task, model, tok, train_examples, dev, config, tmp_path)
    assert result.metrics["f1"] >= 0.70, result.metrics
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert {"f1", "precision", "recall"} <= set(saved)
    # the real predictions, scored by seqeval: identical numbers
    predictor = Predictor.from_pretrained(tmp_path, device="cpu")
    predictions = predictor.predict_examples(dev)
    gold = [list(e.tags) for e in dev]
    pred = [p["tags"] for p in predictions]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert saved["f1"] == pytest.approx(seqeval_metrics.f1_score(gold, pred), abs=1e-12)
        assert saved["precision"] == pytest.approx(seqeval_metrics.precision_score(gold, pred), abs=1e-12)
        assert saved["recall"] == pytest.approx(seqeval_metrics.recall_score(gold, pred), abs=1e-12)
    for example, p in zip(dev, predictions, strict=True):
        for e in p["entities"]:
            assert e["text"] == example.text[e["start"] : e["end"]]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bertkit.cli.main", *args], capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("preset", "train_file", "dev_file", "options"),
    [
        ("msra", "msra/train.txt.gz", "msra/test.txt", {"head": "crf"}),
        # the base lr (2e-3, for a random tiny model) is already high: the LSTM gets 5x, not the default 100x
        ("peoples_daily", "peoples_daily/example.dev", "peoples_daily/example.test",
         {"head": "lstm_crf", "head_lr_scale": 5}),
    ],
)  # fmt: skip
def test_chinese_cli_train_and_predict(
    tmp_path_factory, models_dir, data_dir, preset, train_file, dev_file, options
):
    """A tiny random BERT (hidden 64, 2 layers) with the real bert-base-chinese vocab, trained through
    `bertkit train` on 1000 sentences for 6 epochs (lr 2e-3, max_seq_length 64, scored on 300), then `bertkit predict` on
    mixed Chinese text: every entity's text is input[start:end]. People's Daily has no train split here, so it
    trains on example.dev and scores on example.test."""
    tmp = tmp_path_factory.mktemp(preset)
    model = tiny_model(tmp / "model", models_dir / "vocab" / "bert-base-chinese-vocab.txt", True, hidden=64)
    folder = data_dir / "chinese_ner"
    train = itertools.islice(read_conll(folder / train_file, joiner=""), 1000)
    write_conll(tmp / "train.txt", [(list(e.words), list(e.tags)) for e in train])
    dev = itertools.islice(read_conll(folder / dev_file, joiner=""), 300)
    write_conll(tmp / "dev.txt", [(list(e.words), list(e.tags)) for e in dev])
    out = tmp / "out"
    run = _cli("train", "--task", preset, "--train-file", str(tmp / "train.txt"), "--dev-file", str(tmp / "dev.txt"),
               "--model", str(model), "--output-dir", str(out), "--epochs", "6", "--batch-size", "16", "--lr", "2e-3",
               "--max-seq-length", "64", "--num-threads", "1", "--no-progress", "--task-options",
               json.dumps(options))  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    # it learned something: measured dev F1 0.287 (MSRA, crf) and 0.263 (People's Daily, lstm_crf)
    assert metrics["f1"] > 0.1, metrics
    texts = [ZH, "新华社北京电，江泽民主席在人民大会堂会见美国ＩＢＭ公司总裁。"]
    lines = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    (tmp / "in.jsonl").write_text(lines, encoding="utf-8")
    pred = _cli("predict", "--model", str(out), "--input", str(tmp / "in.jsonl"))
    assert pred.returncode == 0, pred.stderr[-3000:]
    lines = [json.loads(line) for line in pred.stdout.splitlines()]
    assert len(lines) == 2
    for text, line in zip(texts, lines, strict=True):
        assert len(line["tags"]) == len(text.replace(" ", ""))
        for e in line["entities"]:
            assert e["text"] == text[e["start"] : e["end"]] and e["type"] in ("PER", "LOC", "ORG")
