"""Helpers for the per-head tests (one tiny model folder per head, real dev inputs), loaded by file path.

Each head (classifier, regression, multi-label; tagger softmax / crf / lstm_crf; QA; multiple choice) is a tiny
random-but-deterministic BERT (hidden 32, BERT-Base's cased WordPiece vocab, so real text gets real pieces)
in a model folder written as `bertkit train` writes it; inputs are the first dev records of public datasets in
../shared/data (SST-2, STS-B, CoNLL-2003, SQuAD v1.1, SocialIQa) with their gold labels.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

CONLL_LABELS = ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
HEADS = {  # head -> (task family, options, which real inputs)
    "classifier": ("classification", {"labels": ["0", "1"]}, "sst2"),
    "regression": ("classification", {"problem_type": "regression"}, "stsb"),
    "multi_label": ("classification", {"labels": ["0", "1"], "problem_type": "multi_label_classification"},
                    "sst2"),
    "tagger_softmax": ("tagging", {"labels": CONLL_LABELS, "head": "softmax"}, "conll"),
    "tagger_crf": ("tagging", {"labels": CONLL_LABELS, "head": "crf"}, "conll"),
    "tagger_lstm_crf": ("tagging", {"labels": CONLL_LABELS, "head": "lstm_crf"}, "conll"),
    "qa": ("qa", {"doc_stride": 16, "max_query_length": 16}, "squad"),
    "multiple_choice": ("multiple_choice", {}, "socialiqa"),
}  # fmt: skip
N = 24  # inputs per head
ANSWER_KEYS = ("label", "labels", "tags", "answer", "score")  # what each task's prediction decides


def make_base(out: Path, models_dir: Path) -> Path:
    """A random tiny BERT (2 layers, hidden 32) with BERT-Base's cased vocab, saved as an encoder folder."""
    from bertkit.model.bert import BertModel
    from bertkit.model.config import BertConfig
    from bertkit.tokenization import Tokenizer

    tokenizer = Tokenizer.from_vocab(models_dir / "vocab/bert-base-cased-vocab.txt", do_lower_case=False)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=128)  # fmt: skip
    torch.manual_seed(0)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def predict(folder: Path, inputs: Path, output: Path) -> list[dict]:
    """`bertkit predict --model folder --input inputs --output output`, read back."""
    from bertkit.cli.main import main

    assert main(["predict", "--model", str(folder), "--input", str(inputs), "--output", str(output)]) == 0
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def write_inputs(path: Path, inputs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in inputs), encoding="utf-8")
    return path


def assert_varied(predictions: list[dict]) -> None:
    """A model with one answer for (nearly) every input cannot show that a path kept its head."""
    answers = Counter(json.dumps(next(p[k] for k in ANSWER_KEYS if k in p)) for p in predictions)
    assert answers.most_common(1)[0][1] <= 0.8 * len(predictions), answers


def real_inputs(kind: str, data: Path) -> list[dict]:
    """The first N dev records of a public dataset, with their gold labels, as `bertkit predict` reads them."""
    if kind == "sst2":
        lines = (data / "glue/SST-2/dev.tsv").read_text(encoding="utf-8").splitlines()[1 : N + 1]
        return [{"text": t.strip(), "label": y} for t, y in (line.split("\t") for line in lines)]
    if kind == "stsb":
        lines = (data / "glue/STS-B/dev.tsv").read_text(encoding="utf-8").splitlines()[1 : N + 1]
        rows = [line.split("\t") for line in lines]
        return [{"text": r[7], "text_pair": r[8], "label": float(r[9])} for r in rows]
    if kind == "conll":
        out, words, tags = [], [], []
        for line in (data / "conll2003/valid.txt").read_text(encoding="utf-8").splitlines():
            if line.startswith("-DOCSTART-"):
                continue
            if not line.strip():
                if words:
                    out.append({"tokens": words, "tags": tags})
                words, tags = [], []
                if len(out) == N:
                    return out
                continue
            parts = line.split()
            words, tags = [*words, parts[0]], [*tags, parts[-1]]
        return out
    if kind == "squad":
        squad = json.loads((data / "squad/dev-v1.1.json").read_text(encoding="utf-8"))
        out = []
        for paragraph in squad["data"][0]["paragraphs"]:
            for q in paragraph["qas"]:
                out.append({"id": q["id"], "question": q["question"], "context": paragraph["context"],
                            "answers": q["answers"]})  # fmt: skip
        return out[: N // 2]  # long contexts: many windows each
    if kind == "socialiqa":
        lines = (data / "socialiqa/dev.jsonl").read_text(encoding="utf-8").splitlines()[:N]
        labels = (data / "socialiqa/dev-labels.lst").read_text(encoding="utf-8").split()
        return [
            {"context": r["context"], "question": r["question"],
             "choices": [r["answerA"], r["answerB"], r["answerC"]], "label": int(y) - 1}
            for r, y in zip(map(json.loads, lines), labels, strict=False)
        ]  # fmt: skip
    raise AssertionError(kind)


def model_folder(tmp: Path, base: Path, family: str, options: dict) -> Path:
    """A tiny model folder as `bertkit train` writes it, with random but fixed, non-trivial head weights."""
    from bertkit.tasks import build_task
    from bertkit.tokenization import Tokenizer
    from bertkit.training.checkpoint import save_model_folder
    from bertkit.training.config import TrainConfig

    task = build_task(family, options)
    model, _ = task.build_model(str(base))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # large enough that a random BERT tells real inputs apart
            p.add_(0.5 * torch.randn_like(p))
        crf = getattr(model, "crf", None)
        if crf is not None:  # transitions strong enough that the CRF, not the emissions alone, decides
            crf.transitions.copy_(10 * torch.randn_like(crf.transitions))
    out = tmp / "model"
    save_model_folder(out, model, Tokenizer.from_pretrained(base), task, TrainConfig(max_seq_length=64))
    return out


def assert_same_decoded(ours, ref, where: str = "") -> None:
    """Strings, ints, bools and lengths equal; floats within 1e-4."""
    if isinstance(ref, float):
        assert ours == pytest.approx(ref, abs=1e-4), where
    elif isinstance(ref, dict):
        assert isinstance(ours, dict) and set(ours) == set(ref), where
        for k in ref:
            assert_same_decoded(ours[k], ref[k], f"{where}.{k}")
    elif isinstance(ref, list):
        assert isinstance(ours, list) and len(ours) == len(ref), where
        for i, (a, b) in enumerate(zip(ours, ref, strict=True)):
            assert_same_decoded(a, b, f"{where}[{i}]")
    else:
        assert ours == ref, f"{where}: {ours!r} != {ref!r}"
