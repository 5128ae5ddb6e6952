"""Vocabulary extension: words tokenize whole, new rows start as the mean of their old pieces, every old output is
unchanged; appended rows load in transformers; a short MLM run on the new rows only keeps the encoder's other
outputs bit-identical (tiny model fast, all-MiniLM-L6-v2 slow)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
import torch

from bertkit.cli.main import main
from bertkit.data.corpus import PretrainingDataConfig, create_pretraining_data
from bertkit.model.bert import BertModel
from bertkit.model.heads import BertForPreTraining
from bertkit.tokenization import Tokenizer
from bertkit.training.config import TrainConfig
from bertkit.training.pretrain import PretrainSpec, pretrain
from bertkit.weights.vocab_extend import (
    ADDED_FILE,
    extend_vocabulary,
    normalize_word,
    read_added_ids,
    read_words,
)

PLAIN = ["hello world", "the quick brown fox jumps over the lazy dog", "paris is a long word", "我爱北京"]
WORDS = ["bertkit", "Tokenizer", "foxes", "lazydog"]  # all split into pieces by the tiny vocab


@pytest.fixture()
def tiny(fixtures_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    shutil.copytree(fixtures_dir / "tiny-bert-hf", folder)
    return folder


def _encode(model: torch.nn.Module, tokenizer: Tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts)
    encoder = model if isinstance(model, BertModel) else model.bert
    with torch.no_grad():
        return encoder.eval()(**batch).last_hidden_state


def test_words_take_unused_slots_and_start_from_their_pieces(tiny):
    model = BertForPreTraining.from_pretrained(tiny).eval()
    tokenizer = Tokenizer.from_pretrained(tiny)
    before = _encode(model, tokenizer, PLAIN)
    old_table = model.bert.embeddings.word_embeddings.weight.detach().clone()
    old_bias = model.mlm.bias.detach().clone()
    old_pieces = {w: tokenizer.tokenize(w) for w in WORDS}
    assert all(len(p) > 1 for p in old_pieces.values())

    ext = extend_vocabulary(model, tokenizer, WORDS + ["hello"])
    assert ext.already_known == ("hello",) and (ext.filled_slots, ext.appended, ext.vocab_size) == (4, 0, 332)
    assert sorted(ext.added.values()) == [1, 2, 3, 4]  # [unused0]..[unused3]
    for word in WORDS:
        key = normalize_word(word, tokenizer)
        assert tokenizer.tokenize(f"the {word} model") == ["the", key, "model"]
        ids = tokenizer.convert_tokens_to_ids(old_pieces[word])
        table = model.bert.embeddings.word_embeddings.weight
        torch.testing.assert_close(table[ext.added[key]], old_table[ids].mean(0))
        torch.testing.assert_close(model.mlm.bias[ext.added[key]], old_bias[ids].mean())
    assert torch.equal(_encode(model, tokenizer, PLAIN), before)  # text without the words: exactly the same
    untouched = [i for i in range(332) if i not in ext.added.values()]
    assert torch.equal(model.bert.embeddings.word_embeddings.weight[untouched], old_table[untouched])


def test_appended_rows_grow_embeddings_and_mlm_bias_and_load_in_transformers(tiny, tmp_path):
    transformers = pytest.importorskip("transformers")
    words = [f"word{c}" for c in "abcdefghijkl"]  # 12 words, 10 [unusedN] slots
    assert main(["vocab", "extend", "--model", str(tiny), "--output-dir", str(tmp_path / "ext"),
                 *[x for w in words for x in ("--word", w)]]) == 0  # fmt: skip
    added = json.loads((tmp_path / "ext" / ADDED_FILE).read_text())
    assert sorted(added.values())[-2:] == [332, 333]
    ours = BertForPreTraining.from_pretrained(tmp_path / "ext").eval()
    assert ours.config.vocab_size == 334 and ours.mlm.bias.shape == (334,)
    ref = transformers.BertForPreTraining.from_pretrained(str(tmp_path / "ext")).eval()
    hf_tok = transformers.BertTokenizer.from_pretrained(str(tmp_path / "ext"))
    assert hf_tok.tokenize("a wordk and a wordl") == ["a", "wordk", "and", "a", "wordl"]
    batch = Tokenizer.from_pretrained(tmp_path / "ext")(["a wordk and a wordl", "hello world"])
    real = batch["attention_mask"].bool()  # transformers' outputs at padded positions are not comparable
    with torch.no_grad():
        torch.testing.assert_close(
            ours(**batch).mlm_logits[real], ref(**batch).prediction_logits[real], atol=1e-4, rtol=1e-4
        )
    # extending again keeps the earlier record
    assert main(["vocab", "extend", "--model", str(tmp_path / "ext"), "--output-dir", str(tmp_path / "ext2"),
                 "--word", "wordm"]) == 0  # fmt: skip
    assert read_added_ids(tmp_path / "ext2") == sorted([*added.values(), 334])


def test_word_checks(tiny):
    tokenizer = Tokenizer.from_pretrained(tiny)
    assert normalize_word("  Naïve ", tokenizer) == "naive"  # the uncased vocab's own normalisation
    with pytest.raises(ValueError, match="is 2 words"):
        normalize_word("two words", tokenizer)
    with pytest.raises(ValueError, match="is 3 words"):
        normalize_word("don't", tokenizer)
    model = BertModel.from_pretrained(tiny)
    small = Tokenizer.from_pretrained(tiny)
    small.add_tokens([f"w{i}" for i in range(12)])
    with pytest.raises(ValueError, match="extend a model together with its own vocab.txt"):
        extend_vocabulary(model, small, ["x"])
    assert main(["vocab", "extend", "--model", str(tiny), "--output-dir", str(tiny / "o")]) == 2


def _domain_corpus(path: Path, words: list[str]) -> Path:
    """Sentences using the new words, a blank line between small documents."""
    templates = ["the {} model is very good", "we run the {} test", "this {} is new", "a quick {} and a lazy dog",
                 "they hug the {} in paris", "it was the {} that won"]  # fmt: skip
    docs = ["\n".join(t.format(w) for t in templates) for w in words for _ in range(3)]
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


def _short_mlm_run(model_dir: Path, words: list[str], tmp_path: Path, steps: int, lr: float) -> Path:
    tokenizer = Tokenizer.from_pretrained(model_dir)
    corpus = _domain_corpus(tmp_path / "domain.txt", words)
    create_pretraining_data([corpus], tmp_path / "shards", tokenizer,
                            PretrainingDataConfig(max_seq_length=32, max_predictions_per_seq=5, dupe_factor=4))  # fmt: skip
    spec = PretrainSpec(data=str(tmp_path / "shards"), model=str(model_dir), dev_fraction=None, next_sentence=False,
                        new_tokens_only=True)  # fmt: skip
    config = TrainConfig(max_steps=steps, batch_size=8, lr=lr, max_seq_length=32, progress=False, device="cpu",
                         weight_decay=0.01)  # fmt: skip
    pretrain(spec, config, tmp_path / "trained")
    return tmp_path / "trained"


def test_word_list_skips_comments_reads_gzip_and_names_a_bad_line(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("# domain words\nlidar\n\n  radar  \n#not a word\nsonar\n", encoding="utf-8")
    assert read_words(words) == ["lidar", "radar", "sonar"]
    packed = tmp_path / "words.txt.gz"
    packed.write_bytes(gzip.compress(words.read_bytes()))
    assert read_words(packed) == ["lidar", "radar", "sonar"]
    (tmp_path / "latin1.txt").write_bytes(b"lidar\ncaf\xe9\n")
    with pytest.raises(ValueError, match=r"latin1.txt:2: bytes 3-4 are not valid UTF-8"):
        read_words(tmp_path / "latin1.txt")
    with pytest.raises(FileNotFoundError, match="word list .*missing.txt does not exist"):
        read_words(tmp_path / "missing.txt")


def test_short_mlm_run_on_new_rows_keeps_other_outputs(tiny, tmp_path):
    words = ["bertkit", "lazydog"]
    assert main(["vocab", "extend", "--model", str(tiny), "--output-dir", str(tmp_path / "ext"),
                 "--word", words[0], "--word", words[1]]) == 0  # fmt: skip
    start = BertForPreTraining.from_pretrained(tmp_path / "ext")
    tokenizer = Tokenizer.from_pretrained(tmp_path / "ext")
    trained_dir = _short_mlm_run(tmp_path / "ext", words, tmp_path, steps=15, lr=1e-2)
    trained = BertForPreTraining.from_pretrained(trained_dir)
    after_tok = Tokenizer.from_pretrained(trained_dir)
    assert after_tok.tokenize("the bertkit and lazydog") == ["the", "bertkit", "and", "lazydog"]
    assert torch.equal(_encode(trained, after_tok, PLAIN), _encode(start, tokenizer, PLAIN))
    new = read_added_ids(trained_dir)
    table0, table1 = (
        start.bert.embeddings.word_embeddings.weight,
        trained.bert.embeddings.word_embeddings.weight,
    )
    assert not torch.equal(table0[new], table1[new])  # the new rows learned
    assert not torch.equal(
        _encode(trained, after_tok, ["the bertkit model"]), _encode(start, tokenizer, ["the bertkit model"])
    )


def test_new_tokens_only_needs_an_extended_model(tmp_path, fixtures_dir):
    with pytest.raises(ValueError, match="no extended_vocab.json"):
        _short_mlm_run(fixtures_dir / "tiny-bert-hf", ["hello"], tmp_path, steps=1, lr=1e-3)


@pytest.mark.slow
def test_minilm_vocabulary_extension_with_a_short_mlm_run(tmp_path, minilm_dir, data_dir):
    """all-MiniLM-L6-v2 + 4 domain words, 6 MLM steps on the new rows (and the new MLM head): the words tokenize
    whole, and the encoder gives bit-identical outputs on 64 SST-2 dev sentences that do not contain them."""
    words = ["bertkit", "covid", "lidar", "biobert"]
    tokenizer = Tokenizer.from_pretrained(minilm_dir)
    assert all(len(tokenizer.tokenize(w)) > 1 for w in words)
    sentences = [
        line.rsplit("\t", 1)[0] for line in (data_dir / "glue/SST-2/dev.tsv").read_text().splitlines()[1:65]
    ]
    assert not any(w in s for w in words for s in sentences)
    assert main(["vocab", "extend", "--model", str(minilm_dir), "--output-dir", str(tmp_path / "ext"),
                 *[x for w in words for x in ("--word", w)]]) == 0  # fmt: skip
    trained_dir = _short_mlm_run(tmp_path / "ext", words, tmp_path, steps=6, lr=1e-3)
    extended = Tokenizer.from_pretrained(trained_dir)
    assert extended.vocab_size == tokenizer.vocab_size  # all four went into [unusedN] slots
    assert extended.tokenize("lidar and covid data for bertkit") == [
        "lidar",
        "and",
        "covid",
        "data",
        "for",
        "bertkit",
    ]
    original = BertModel.from_pretrained(minilm_dir)
    trained = BertModel.from_pretrained(trained_dir)
    assert torch.equal(_encode(trained, extended, sentences), _encode(original, tokenizer, sentences))
