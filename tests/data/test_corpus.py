"""Pretraining shards from ../shared/data/mlm_corpus: statistics and structure of Google's create_pretraining_data.py.

Masking rate, the 80/10/10 split, NSP balance (B from another document), whole-word masking that never splits
a word (English ## pieces, Chinese jieba words), truncation, and that every segment is real text of its document.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest

from bertkit.data.corpus import (
    PretrainingDataConfig,
    create_pretraining_data,
    read_documents,
    tokenize_documents,
    truncate_pair,
)
from bertkit.data.masking import candidate_groups
from bertkit.data.shards import load_shards

SEED = 7


@pytest.fixture(scope="module")
def sample(data_dir: Path) -> Path:
    return data_dir / "mlm_corpus/bert_sample_text.txt"


def _make(tmp_path_factory, name, inputs, tokenizer, **options):
    config = PretrainingDataConfig(**{"max_seq_length": 64, "dupe_factor": 20, "seed": SEED, **options})
    out = tmp_path_factory.mktemp(name)
    create_pretraining_data(inputs, out, tokenizer, config)
    return load_shards(out, tokenizer)


@pytest.fixture(scope="module")
def english(tmp_path_factory, sample, english_tokenizer):
    return _make(tmp_path_factory, "en", [sample], english_tokenizer, instances_per_shard=200)


@pytest.fixture(scope="module")
def english_wwm(tmp_path_factory, sample, english_tokenizer):
    return _make(tmp_path_factory, "en_wwm", [sample], english_tokenizer, whole_word_mask=True)


def _originals(shards) -> list[np.ndarray]:
    """Each instance's tokens before masking: masked positions get their labels back."""
    a = shards.arrays
    out = []
    for i in range(len(shards)):
        ids = a["input_ids"][i, : a["lengths"][i]].copy()
        m = a["num_masked"][i]
        ids[a["masked_positions"][i, :m]] = a["masked_ids"][i, :m]
        out.append(ids)
    return out


def _masked_kinds(shards, mask_id: int) -> dict[str, int]:
    a, counts = shards.arrays, {"mask": 0, "keep": 0, "random": 0}
    for i in range(len(shards)):
        m = a["num_masked"][i]
        got = a["input_ids"][i, a["masked_positions"][i, :m]]
        want = a["masked_ids"][i, :m]
        counts["mask"] += int((got == mask_id).sum())
        counts["keep"] += int((got == want).sum())
        counts["random"] += int(((got != mask_id) & (got != want)).sum())
    return counts


def _within(observed: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(observed / n - p) < sigmas * (p * (1 - p) / n) ** 0.5


def test_read_documents(tmp_path):
    (tmp_path / "a.txt").write_text("one.\ntwo.\n\n\nthree.\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("four.\n", encoding="utf-8")
    docs = read_documents([tmp_path / "a.txt", tmp_path / "b.txt"])
    assert [[line for line, _ in d] for d in docs] == [["one.", "two."], ["three."], ["four."]]
    assert docs[1][0][1] == f"{tmp_path / 'a.txt'}:5"
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: bytes 0-1 are not valid UTF-8; re-save the file as UTF-8"):
        read_documents([tmp_path / "bad.txt"])
    # gzipped (Wikipedia-style dumps), with a byte-order mark: the same documents and places
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(b"\xef\xbb\xbf" + (tmp_path / "a.txt").read_bytes()))
    packed = read_documents([tmp_path / "a.txt.gz", tmp_path / "b.txt"])
    assert [[line for line, _ in d] for d in packed] == [["one.", "two."], ["three."], ["four."]]
    assert packed[1][0][1] == f"{tmp_path / 'a.txt.gz'}:5"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_documents([tmp_path / "missing.txt"])


def test_truncate_pair_trims_the_longer_side():
    a, b = [(i, False) for i in range(10)], [(i, False) for i in range(3)]
    truncate_pair(a, b, 8, random.Random(0))
    assert len(a) + len(b) == 8 and len(b) == 3
    kept = [t for t, _ in a]
    assert kept == list(range(kept[0], kept[0] + 5))  # front or back cuts keep a contiguous span


def test_structure_and_every_segment_is_real_text(english, sample, english_tokenizer):
    """[CLS] A [SEP] B [SEP]; A is a contiguous span of its document; B too, from another document when random."""
    a, tok = english.arrays, english_tokenizer
    docs = tokenize_documents(read_documents([sample]), tok)
    random.Random(SEED).shuffle(docs)  # Google shuffles the documents first, with the same seed
    streams = [" ".join(str(t) for s in d for t, _ in s) + " " for d in docs]
    assert len(english) == english.meta["num_instances"] > 300 and len(english.meta["shards"]) >= 2
    for i, ids in enumerate(_originals(english)):
        n, k = a["lengths"][i], a["a_lengths"][i]
        assert n <= 64 and ids[0] == tok.cls_token_id and ids[k - 1] == ids[n - 1] == tok.sep_token_id
        seg_a, seg_b = ids[1 : k - 1], ids[k : n - 1]
        assert len(seg_a) >= 1 and len(seg_b) >= 1 and tok.sep_token_id not in seg_a
        doc_a, doc_b = a["document_a"][i], a["document_b"][i]
        text_a, text_b = " ".join(map(str, seg_a)) + " ", " ".join(map(str, seg_b)) + " "
        assert text_a in streams[doc_a] and text_b in streams[doc_b]
        if a["next_sentence_labels"][i] == 1:
            assert doc_a != doc_b  # random next sentences come from another document
        else:
            assert doc_a == doc_b and streams[doc_a].index(text_a) < streams[doc_a].index(text_b)
    row = english.instance(0)
    assert row["token_type_ids"] == [0] * int(a["a_lengths"][0]) + [1] * int(
        a["lengths"][0] - a["a_lengths"][0]
    )


def test_masking_rate_is_googles_count(english):
    a = english.arrays
    expected = np.minimum(20, np.maximum(1, np.round(a["lengths"] * 0.15)))
    np.testing.assert_array_equal(a["num_masked"], expected)
    assert 0.14 < a["num_masked"].sum() / a["lengths"].sum() < 0.16


@pytest.mark.parametrize("which", ["english", "english_wwm"])
def test_80_10_10(which, request, english_tokenizer):
    counts = _masked_kinds(request.getfixturevalue(which), english_tokenizer.mask_token_id)
    n = sum(counts.values())
    assert n > 2000
    assert (
        _within(counts["mask"], n, 0.8)
        and _within(counts["keep"], n, 0.1)
        and _within(counts["random"], n, 0.1)
    )


def test_nsp_balance(english, english_wwm):
    for shards in (english, english_wwm):
        labels, forced = shards.arrays["next_sentence_labels"], shards.arrays["forced_random"]
        assert labels[forced].all()  # a one-sentence chunk always takes a random B (Google's rule)
        coin = labels[~forced]
        assert len(coin) > 200 and _within(int(coin.sum()), len(coin), 0.5)


def test_whole_word_masking_never_splits_a_word(english_wwm, english_tokenizer):
    a, tok = english_wwm.arrays, english_tokenizer
    multi = 0
    for i, ids in enumerate(_originals(english_wwm)):
        n = a["lengths"][i]
        tokens = tok.convert_ids_to_tokens(ids.tolist())
        cont = a["continuation"][i, :n]
        assert cont.tolist() == [t.startswith("##") for t in tokens]
        special = [t in ("[CLS]", "[SEP]") for t in tokens]
        chosen = set(a["masked_positions"][i, : a["num_masked"][i]].tolist())
        for group in candidate_groups(special, cont.tolist(), whole_word=True):
            assert set(group) <= chosen or not set(group) & chosen, (tokens, group)
            multi += len(group) > 1 and set(group) <= chosen
    assert multi > 20  # whole multi-piece words really are masked together
    # a word that would overshoot Google's count is skipped, so never more, sometimes fewer
    assert (a["num_masked"] <= np.minimum(20, np.maximum(1, np.round(a["lengths"] * 0.15)))).all()
    assert 0.13 < a["num_masked"].sum() / a["lengths"].sum() < 0.16


def test_seed_and_dupe_factor(tmp_path, sample, english_tokenizer, english):
    again = _make_dir(tmp_path / "again", sample, english_tokenizer, instances_per_shard=200)
    for key, value in english.arrays.items():
        np.testing.assert_array_equal(again.arrays[key], value, err_msg=key)
    other = _make_dir(tmp_path / "other", sample, english_tokenizer, seed=SEED + 1)
    assert not np.array_equal(other.arrays["masked_positions"][:50], english.arrays["masked_positions"][:50])
    once = _make_dir(tmp_path / "once", sample, english_tokenizer, dupe_factor=1)
    assert (
        10 * len(once) < len(english) < 30 * len(once)
    )  # dupe_factor 20: each pass has new masks and splits


def _make_dir(out, sample, tokenizer, **options):
    config = PretrainingDataConfig(**{"max_seq_length": 64, "dupe_factor": 20, "seed": SEED, **options})
    create_pretraining_data([sample], out, tokenizer, config)
    return load_shards(out, tokenizer)


def test_chinese_word_boundaries_from_jieba_and_a_reference_file(tmp_path, chinese_tokenizer):
    pytest.importorskip("jieba")
    (tmp_path / "zh.txt").write_text("我爱北京天安门\n\n今天天气很好\n", encoding="utf-8")
    docs = read_documents([tmp_path / "zh.txt"])
    by_jieba = tokenize_documents(docs, chinese_tokenizer, segmenter="jieba")
    assert [c for _, c in by_jieba[0][0]] == [
        False,
        False,
        False,
        True,
        False,
        True,
        True,
    ]  # 我/爱/北京/天安门
    # the same boundaries as a transformers run_chinese_ref.py file: positions with [CLS] = 0
    refs = [[4, 6, 7], [j + 1 for j, (_, c) in enumerate(by_jieba[1][0]) if c]]
    (tmp_path / "ref.txt").write_text("".join(json.dumps(r) + "\n" for r in refs), encoding="utf-8")
    assert tokenize_documents(docs, chinese_tokenizer, word_ref=tmp_path / "ref.txt") == by_jieba
    (tmp_path / "short.txt").write_text("[4]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="ends before the corpus does"):
        tokenize_documents(docs, chinese_tokenizer, word_ref=tmp_path / "short.txt")
    with pytest.raises(ValueError, match="either a segmenter or a word reference"):
        tokenize_documents(docs, chinese_tokenizer, segmenter="jieba", word_ref=tmp_path / "ref.txt")


def test_config_checks(tmp_path, sample, english_tokenizer):
    with pytest.raises(ValueError, match="max_seq_length must be at least 5"):
        PretrainingDataConfig(max_seq_length=4)
    with pytest.raises(ValueError, match="segmenter must be one of"):
        PretrainingDataConfig(segmenter="ltp")
    with pytest.raises(ValueError, match="only matters with whole_word_mask"):
        create_pretraining_data(
            [sample], tmp_path, english_tokenizer, PretrainingDataConfig(segmenter="jieba", whole_word_mask=False)
        )
    (tmp_path / "empty.txt").write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no text found"):
        create_pretraining_data(
            [tmp_path / "empty.txt"], tmp_path / "o", english_tokenizer, PretrainingDataConfig()
        )


@pytest.mark.slow
def test_chinese_whole_word_masking_on_the_clue_corpus(tmp_path, clue_documents, chinese_tokenizer):
    """First 300 documents of CLUECorpusSmall, jieba words: never split, often masked whole, Google's rates."""
    pytest.importorskip("jieba")
    (tmp_path / "zh.txt").write_text(clue_documents(300), encoding="utf-8")
    config = PretrainingDataConfig(
        max_seq_length=128, dupe_factor=2, whole_word_mask=True, segmenter="jieba", seed=3
    )
    create_pretraining_data([tmp_path / "zh.txt"], tmp_path / "shards", chinese_tokenizer, config)
    shards = load_shards(tmp_path / "shards", chinese_tokenizer)
    a = shards.arrays
    assert shards.meta["num_documents"] == 300 and len(shards) > 1000
    whole_words = 0
    for i in range(len(shards)):
        n = a["lengths"][i]
        special = [False] * n
        special[0] = special[a["a_lengths"][i] - 1] = special[n - 1] = True
        chosen = set(a["masked_positions"][i, : a["num_masked"][i]].tolist())
        for group in candidate_groups(special, a["continuation"][i, :n].tolist(), whole_word=True):
            assert set(group) <= chosen or not set(group) & chosen
            whole_words += len(group) > 1 and set(group) <= chosen
    assert whole_words > 0.3 * a["num_masked"].sum() / 2  # most masked tokens sit in multi-character words
    assert 0.13 < a["num_masked"].sum() / a["lengths"].sum() < 0.16
    counts = _masked_kinds(shards, chinese_tokenizer.mask_token_id)
    n = sum(counts.values())
    assert (
        _within(counts["mask"], n, 0.8)
        and _within(counts["keep"], n, 0.1)
        and _within(counts["random"], n, 0.1)
    )
    coin = a["next_sentence_labels"][~a["forced_random"]]
    assert _within(int(coin.sum()), len(coin), 0.5)
    assert (a["document_a"] != a["document_b"])[a["next_sentence_labels"] == 1].all()
