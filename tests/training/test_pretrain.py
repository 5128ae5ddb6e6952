"""Pretraining runs on the shared engine: held-out MLM loss falls when continuing a checkpoint (tiny model; MiniLM
on a news corpus, slow) and when training from scratch (tiny Chinese model with whole-word masking, slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertkit.data.corpus import PretrainingDataConfig, create_pretraining_data
from bertkit.model.heads import BertForPreTraining
from bertkit.tokenization import Tokenizer
from bertkit.training.config import TrainConfig
from bertkit.training.pretrain import REPORT_FILE, PretrainSpec, pretrain


def _config(**changes) -> TrainConfig:
    base = dict(batch_size=8, lr=5e-4, warmup_ratio=0.1, max_seq_length=64, progress=False, log_steps=10,
                device="cpu", seed=0)  # fmt: skip
    return TrainConfig(**{**base, **changes})


def test_continued_pretraining_lowers_held_out_loss_tiny(tmp_path, fixtures_dir, data_dir):
    """The tiny fixture checkpoint (MLM + NSP heads) on Google's sample text: 40 steps, 10% of documents held out."""
    tiny = fixtures_dir / "tiny-bert-hf"
    tokenizer = Tokenizer.from_pretrained(tiny)
    data = PretrainingDataConfig(max_seq_length=48, max_predictions_per_seq=8, dupe_factor=10, seed=1)
    create_pretraining_data(
        [data_dir / "mlm_corpus/bert_sample_text.txt"], tmp_path / "shards", tokenizer, data
    )
    spec = PretrainSpec(data=str(tmp_path / "shards"), model=str(tiny), dev_fraction=0.34)
    report = pretrain(spec, _config(max_steps=40, lr=3e-3, eval_steps=40), tmp_path / "out")
    assert report["initialized"] == [] and report["dev_instances"] > 10
    assert report["after"]["mlm_loss"] < report["before"]["mlm_loss"] - 0.5
    assert report["after"]["perplexity"] < report["before"]["perplexity"]
    assert json.loads((tmp_path / "out" / REPORT_FILE).read_text())["after"] == report["after"]
    reloaded = BertForPreTraining.from_pretrained(
        tmp_path / "out"
    )  # a model folder transformers can read too
    assert reloaded.config.vocab_size == tokenizer.vocab_size


def test_from_scratch_needs_a_matching_vocab(tmp_path, fixtures_dir, data_dir):
    tiny = fixtures_dir / "tiny-bert-hf"
    tokenizer = Tokenizer.from_pretrained(tiny)
    create_pretraining_data([data_dir / "mlm_corpus/bert_sample_text.txt"], tmp_path / "shards", tokenizer,
                            PretrainingDataConfig(max_seq_length=32, dupe_factor=2))  # fmt: skip
    config = {"vocab_size": 333, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
              "intermediate_size": 24, "max_position_embeddings": 32}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    spec = PretrainSpec(data=str(tmp_path / "shards"), model=None, model_config=str(tmp_path / "config.json"),
                        vocab=str(tiny / "vocab.txt"), do_lower_case=True)  # fmt: skip
    with pytest.raises(ValueError, match="vocab_size=333 but .* has 332 tokens"):
        pretrain(spec, _config(max_steps=1), tmp_path / "out")
    with pytest.raises(ValueError, match="does not record its casing"):
        pretrain(PretrainSpec(data=spec.data, model=None, model_config=spec.model_config, vocab=spec.vocab),
                 _config(max_steps=1), tmp_path / "out")  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps({**config, "vocab_size": 332}))
    other = Tokenizer.from_vocab(tiny / "vocab.txt", do_lower_case=True)
    other.add_tokens(["zzzz"])  # into an [unusedN] slot: same size, another vocabulary
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="another vocabulary"):
        pretrain(PretrainSpec(data=spec.data, model=None, model_config=spec.model_config, vocab=str(tmp_path / "other")),
                 _config(max_steps=1), tmp_path / "out")  # fmt: skip


def _news_corpus(conll: Path, out: Path, documents: int) -> Path:
    """CoNLL-2003 (Reuters news) as raw text: one sentence per line, a blank line between articles."""
    docs, sentence, current = [], [], []
    for line in conll.read_text(encoding="utf-8").splitlines():
        if line.startswith("-DOCSTART-"):
            if current:
                docs.append(current)
            current = []
        elif not line.strip():
            if sentence:
                current.append(" ".join(sentence))
            sentence = []
        else:
            sentence.append(line.split()[0])
    out.write_text("\n\n".join("\n".join(d) for d in docs[:documents]) + "\n", encoding="utf-8")
    return out


@pytest.mark.slow
def test_continued_pretraining_of_minilm_on_news_lowers_held_out_mlm_loss(tmp_path, minilm_dir, data_dir):
    """all-MiniLM-L6-v2 has no MLM head: it is initialised (the report names it), then 20 steps of MLM on 60
    Reuters articles (CoNLL-2003 train text), whole-word masking, max_seq_length 48, batch 8, lr 5e-4; 15% of
    articles held out (32 instances evaluated). The held-out MLM loss must fall by more than 1 nat."""
    corpus = _news_corpus(data_dir / "conll2003/train.txt", tmp_path / "news.txt", documents=60)
    tokenizer = Tokenizer.from_pretrained(minilm_dir)
    data = PretrainingDataConfig(
        max_seq_length=64, max_predictions_per_seq=10, dupe_factor=1, whole_word_mask=True
    )
    create_pretraining_data([corpus], tmp_path / "shards", tokenizer, data)
    spec = PretrainSpec(data=str(tmp_path / "shards"), model=str(minilm_dir), dev_fraction=0.15,
                        next_sentence=False, max_dev_instances=32)  # fmt: skip
    report = pretrain(
        spec, _config(max_steps=20, lr=5e-4, eval_steps=20, max_seq_length=48), tmp_path / "out"
    )
    assert "mlm.transform.weight" in report["initialized"]
    assert report["after"]["mlm_loss"] < report["before"]["mlm_loss"] - 1.0, report
    assert report["after"]["mlm_accuracy"] > report["before"]["mlm_accuracy"]


@pytest.mark.slow
def test_tiny_chinese_model_from_scratch_with_whole_word_masking(tmp_path, clue_documents, models_dir):
    """A 2-layer, hidden-64 model with the bert-base-chinese vocab, from scratch on 150 CLUECorpusSmall documents
    (jieba whole-word masking, max_seq_length 64): 40 steps (batch 16, lr 3e-3) lower the held-out MLM loss and
    raise its accuracy."""
    pytest.importorskip("jieba")
    (tmp_path / "zh.txt").write_text(clue_documents(150), encoding="utf-8")
    vocab = models_dir / "vocab/bert-base-chinese-vocab.txt"
    tokenizer = Tokenizer.from_vocab(vocab, do_lower_case=True)
    data = PretrainingDataConfig(max_seq_length=64, max_predictions_per_seq=10, dupe_factor=1, whole_word_mask=True,
                                 segmenter="jieba")  # fmt: skip
    create_pretraining_data([tmp_path / "zh.txt"], tmp_path / "shards", tokenizer, data)
    config = {"vocab_size": 21128, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 128, "max_position_embeddings": 64}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    spec = PretrainSpec(data=str(tmp_path / "shards"), model=None, model_config=str(tmp_path / "config.json"),
                        vocab=str(vocab), do_lower_case=True, dev_fraction=0.1, max_dev_instances=64)  # fmt: skip
    report = pretrain(spec, _config(max_steps=40, batch_size=16, lr=3e-3, eval_steps=40), tmp_path / "out")
    assert report["initialized"] == "all (from scratch)"
    assert report["after"]["mlm_loss"] < report["before"]["mlm_loss"] - 2.0, report
    assert report["after"]["mlm_accuracy"] > report["before"]["mlm_accuracy"] + 0.03
