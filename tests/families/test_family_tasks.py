"""Each BERT-family checkpoint through the tasks and tools the parity tests do not reach, checked against
transformers on the same weights (tiny random models of tests/tiny_families.py, a few dozen examples):

- convert: `bertkit convert` writes a folder transformers' AutoModelForMaskedLM and AutoTokenizer load with the
  same MLM logits and ids;
- encode: `bertkit encode --pooling mean` equals the mean of transformers' hidden states over real tokens, and
  `--fit-whitening` features have identity covariance;
- vocab extension (WordPiece families): the added word is one token and the old ids' MLM logits of a text without
  it are unchanged; BPE / SentencePiece families refuse with a message naming the vocab kind;
- QA and multiple choice: `bertkit predict` on a folder with a (random) head gives the span / choice that
  transformers' AutoModelFor* picks from its logits;
- CRF and BiLSTM-CRF tagging: `bertkit predict` tags every word and never breaks the BIO moves the CRF forbids,
  and one optimizer step lowers the CRF loss on a repeated batch;
- MLM pretraining: one optimizer step lowers the MLM loss on a repeated batch.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from bertkit.cli.main import main

transformers = pytest.importorskip("transformers")

import tiny_families  # noqa: E402

FAMILIES = ["bert", "distilbert", "roberta", "electra", "albert", "ernie"]
WORDPIECE = {"bert", "distilbert", "electra", "ernie"}
TEXTS = ["the movie was a gorgeous , witty ride", "a plot of boilerplate clichés", "Peter met Mary in Paris ."]
CONTEXT = "Peter Blackburn met Mary in Paris yesterday , and they talked about the weather for an hour ."


def _mlm_folder(family: str, tmp: Path, subword_dirs: dict, vocab_txt: Path) -> Path:
    """tests/tiny_families.py's tiny folder of `family`, its weights replaced by a seeded AutoModelForMaskedLM."""
    folder = tiny_families.tiny_family_folder(family, tmp / "base", subword_dirs, vocab_txt)
    config = transformers.AutoConfig.from_pretrained(folder)
    transformers.set_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.AutoModelForMaskedLM.from_config(config)
    with torch.no_grad():
        for p in model.parameters():  # no zero biases or unit LayerNorms: a wrong mapping shows
            p.add_(torch.randn_like(p) * 0.02)
    (folder / "model.safetensors").unlink()
    model.save_pretrained(folder)
    return folder


def _theirs(auto: str, folder: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(transformers, auto).from_pretrained(folder).eval(), transformers.AutoTokenizer.from_pretrained(
            folder
        )


def _task_folder(
    base: Path, out: Path, task_name: str, options: dict, seed: int = 0, max_len: int = 64, sharpen: float = 1.0
) -> Path:
    """A fine-tuned-shaped folder: the base encoder plus a seeded random head, saved as `bertkit train` does."""
    from bertkit.tasks import build_task
    from bertkit.tokenization import Tokenizer
    from bertkit.training.checkpoint import save_model_folder
    from bertkit.training.config import TrainConfig

    torch.manual_seed(seed)
    task = build_task(task_name, options)
    model, _ = task.build_model(str(base))
    if sharpen != 1.0:  # sharper scores, so a random tagger's tags vary
        with torch.no_grad():
            model.classifier.weight.mul_(sharpen)
    save_model_folder(out, model, Tokenizer.from_pretrained(base), task, TrainConfig(max_seq_length=max_len))
    return out


def _predict(folder: Path, records: list[dict], tmp: Path) -> list[dict]:
    inputs, output = tmp / f"{folder.name}-in.jsonl", tmp / f"{folder.name}-out.jsonl"
    inputs.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert main(["predict", "--model", str(folder), "--input", str(inputs), "--output", str(output)]) == 0
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]


def _one_step_lowers(task, model, batch) -> tuple[float, float]:
    """The task's loss before and after one AdamW step on the same batch (dropout off)."""
    model.eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = task.loss(task.forward(model, batch), batch)
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = task.loss(task.forward(model, batch), batch)
    return float(before), float(after)


@pytest.fixture(scope="module")
def vocab_txt(models_dir: Path) -> Path:
    return models_dir / "vocab/bert-base-uncased-vocab.txt"


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_family_convert_encode_vocab_qa_choice_crf_pretrain(
    family: str, subword_dirs: dict, vocab_txt: Path, tmp_path: Path
) -> None:
    from bertkit.tasks import build_task
    from bertkit.tokenization import Tokenizer

    base = _mlm_folder(family, tmp_path, subword_dirs, vocab_txt)
    mlm, tok = _theirs("AutoModelForMaskedLM", base)
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        logits = mlm(**batch).logits

    # convert -> transformers reads the folder: same ids, same MLM logits
    assert main(["convert", str(base), str(tmp_path / "converted")]) == 0
    again, again_tok = _theirs("AutoModelForMaskedLM", tmp_path / "converted")
    assert again_tok(TEXTS)["input_ids"] == tok(TEXTS)["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(again(**batch).logits[real], logits[real], atol=1e-5, rtol=0)

    # encode: mean pooling = transformers' hidden states averaged over real tokens; whitening fits
    corpus = [f"{a} {b} {c}" for a in ("the", "a", "this", "that") for b in ("good", "new", "long", "quick", "lazy")
              for c in ("model", "word", "test", "dog", "fox", "apple")]  # fmt: skip
    (tmp_path / "corpus.txt").write_text("\n".join(TEXTS + corpus) + "\n", encoding="utf-8")
    assert main(["encode", "--no-progress", "--model", str(base), "--input", str(tmp_path / "corpus.txt"),
                 "--output", str(tmp_path / "mean.npy"), "--pooling", "mean", "--no-normalize",
                 "--batch-size", "64"]) == 0  # fmt: skip
    with torch.no_grad():
        hidden = mlm.base_model(**batch).last_hidden_state
    mean = (hidden * real[..., None]).sum(1) / real.sum(1, keepdim=True)
    np.testing.assert_allclose(np.load(tmp_path / "mean.npy")[: len(TEXTS)], mean.numpy(), atol=1e-5)
    assert main(["encode", "--no-progress", "--model", str(base), "--input", str(tmp_path / "corpus.txt"),
                 "--output", str(tmp_path / "white.npy"), "--pooling", "mean", "--no-normalize",
                 "--fit-whitening", str(tmp_path / "white.npz")]) == 0  # fmt: skip
    white = np.load(tmp_path / "white.npy")
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(white.shape[1]), atol=1e-3)

    # vocab extension: WordPiece families add one token and keep every old output; others refuse clearly
    if family in WORDPIECE:
        assert main(["vocab", "extend", "--model", str(base), "--word", "blackburnite",
                     "--output-dir", str(tmp_path / "ext")]) == 0  # fmt: skip
        ext, ext_tok = _theirs("AutoModelForMaskedLM", tmp_path / "ext")
        assert len(ext_tok.tokenize("blackburnite")) == 1 and ext_tok(TEXTS)["input_ids"] == tok(TEXTS)["input_ids"]
        added = ext_tok.convert_tokens_to_ids("blackburnite")  # an [unusedN] slot: its own column changes
        keep = [i for i in range(logits.shape[-1]) if i != added]
        with torch.no_grad():
            old = ext(**batch).logits[..., keep]
        torch.testing.assert_close(old[real], logits[..., keep][real], atol=1e-5, rtol=0)
    else:
        with pytest.raises(ValueError, match="vocabulary extension needs a WordPiece vocab"):
            Tokenizer.from_pretrained(base).add_tokens(["blackburnite"])

    # QA: bertkit predict's answer = the best span of transformers' logits over the context (one window; an
    # n-best of 100 makes the search over every start and end, where 20 would keep only the top 20 of each)
    qa = _task_folder(base, tmp_path / "qa", "qa", {"max_query_length": 32, "n_best_size": 100}, max_len=120)
    question = "Where did Peter meet Mary ?"
    [answer] = _predict(qa, [{"question": question, "context": CONTEXT}], tmp_path)
    theirs, qa_tok = _theirs("AutoModelForQuestionAnswering", qa)
    # transformers 5's ALBERT tokenizer leaves token_type_ids out (model_input_names); Google's ALBERT and
    # bertkit type the second segment 1, as the tokenizer's own pair template does when asked
    enc = qa_tok(question, CONTEXT, return_offsets_mapping=True, return_token_type_ids=True, return_tensors="pt")
    offsets, context_ids = enc.pop("offset_mapping")[0].tolist(), enc.sequence_ids(0)
    with torch.no_grad():
        out = theirs(**enc)
    start, end = out.start_logits[0].tolist(), out.end_logits[0].tolist()
    spans = [(start[s] + end[e], s, e) for s in range(len(start)) for e in range(s, min(s + 30, len(end)))
             if context_ids[s] == 1 and context_ids[e] == 1]  # fmt: skip
    _, s, e = max(spans)
    assert answer["answer"] == CONTEXT[offsets[s][0] : offsets[e][1]]

    # multiple choice: bertkit predict's choice = argmax of transformers' logits
    mc = _task_folder(base, tmp_path / "mc", "multiple_choice", {}, seed=1)
    records = [{"context": CONTEXT, "question": "Who met Mary ?", "choices": ["Peter", "the weather", "Paris", "an hour"]},
               {"context": "A cat sat on the mat .", "choices": ["it slept", "it flew away", "it sang"]}]  # fmt: skip
    got = _predict(mc, records, tmp_path)
    theirs, mc_tok = _theirs("AutoModelForMultipleChoice", mc)
    for record, prediction in zip(records, got, strict=True):
        seconds = [f"{record['question']} {c}" if record.get("question") else c for c in record["choices"]]
        enc = mc_tok([record["context"]] * len(seconds), seconds, padding=True, return_token_type_ids=True,
                     return_tensors="pt")
        with torch.no_grad():
            choice_logits = theirs(**{k: v[None] for k, v in enc.items()}).logits[0]
        # the same distribution; the choice is a best one up to float noise (a tiny model's logits can tie
        # within 1e-6, where the two argmaxes may differ)
        np.testing.assert_allclose(prediction["probabilities"], choice_logits.softmax(-1).numpy(), atol=1e-5)
        chosen = prediction["label"]
        assert prediction["choice"] == record["choices"][chosen], prediction
        assert float(choice_logits[chosen]) >= float(choice_logits.max()) - 1e-5, (prediction, choice_logits)

    # CRF and BiLSTM-CRF tagging: predict keeps the scheme's moves; one step lowers the CRF loss
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    words = [t.split() for t in TEXTS]
    for head in ("crf", "lstm_crf"):
        tagger = _task_folder(base, tmp_path / head, "tagging", {"labels": labels, "head": head}, seed=2,
                              sharpen=20.0)
        predicted = [p["tags"] for p in _predict(tagger, [{"text": t} for t in TEXTS], tmp_path)]
        assert [len(tags) for tags in predicted] == [len(w) for w in words]
        assert {t for tags in predicted for t in tags} - {"O"}, predicted  # the random head tags something
        for tags in predicted:  # an I- tag only continues its own type
            assert all(not t.startswith("I-") or p in ("B-" + t[2:], t) for p, t in zip(["O", *tags[:-1]], tags,
                                                                                         strict=True))
        task = build_task("tagging", {"labels": labels, "head": head})
        model, _ = task.build_model(str(tagger), from_finetuned=True)
        examples = [task.example_from_dict({"tokens": w, "tags": ["B-PER"] + ["O"] * (len(w) - 1)}) for w in words]
        feats = [f for ex in examples for f in task.features(ex, Tokenizer.from_pretrained(tagger), 64)]
        tag_batch = task.collate(feats)
        before, after = _one_step_lowers(task, model, tag_batch)
        assert after < before, (head, before, after)

    # MLM pretraining: one step lowers the loss on a repeated batch
    task = build_task("pretraining", {"next_sentence": False})
    model, _ = task.build_model(str(base))
    tokenizer = Tokenizer.from_pretrained(base)
    feats = []
    for text in TEXTS * 4:
        ids, types = tokenizer.with_specials(tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)))
        positions = [1, 3]
        masked = [ids[i] for i in positions]
        for i in positions:
            ids[i] = tokenizer.mask_token_id
        example = {"input_ids": ids, "token_type_ids": types, "masked_positions": positions, "masked_ids": masked,
                   "next_sentence_label": 0}
        feats += task.features(example, tokenizer, 64)
    mlm_batch = task.collate(feats)
    before, after = _one_step_lowers(task, model, mlm_batch)
    assert after < before, (before, after)
