"""Masked-LM predictions: candidate units, Google's counts and 80/10/10 rule, word boundaries for whole-word masking."""

from __future__ import annotations

import json
import random

import pytest

from bertkit.data.masking import (
    candidate_groups,
    jieba_spans,
    mask_sequence,
    read_word_ref,
    ref_continuation,
    span_continuation,
    wordpiece_continuation,
)

MASK, VOCAB = 3, 1000


def test_candidate_groups_hand_worked():
    # [CLS] un ##aff ##able is [SEP] ##ly good [SEP]
    special = [1, 0, 0, 0, 0, 1, 0, 0, 1]
    cont = [0, 0, 1, 1, 0, 0, 1, 0, 0]
    assert candidate_groups(special, cont, whole_word=False) == [[1], [2], [3], [4], [6], [7]]
    # a ## piece right after [SEP] starts its own unit (Google would glue it to "is")
    assert candidate_groups(special, cont, whole_word=True) == [[1, 2, 3], [4], [6], [7]]


def test_wordpiece_and_span_continuation():
    assert wordpiece_continuation(["un", "##aff", "##able", "!"]) == [False, True, True, False]
    # 我 爱 北京 天安门 -> words (0,1) (1,2) (2,4) (4,7); one token per character
    offsets = [(i, i + 1) for i in range(7)]
    assert span_continuation(offsets, [0, 1, 2, 4], [1, 2, 4, 7]) == [
        False,
        False,
        False,
        True,
        False,
        True,
        True,
    ]
    # a token spanning a whole word, and a token after the last word
    assert span_continuation([(0, 2), (2, 3), (5, 6)], [0, 2], [2, 3]) == [False, False, False]


def test_jieba_segments_a_hand_checked_sentence():
    pytest.importorskip("jieba")
    starts, ends = jieba_spans("我爱北京天安门")
    assert list(zip(starts, ends, strict=True)) == [(0, 1), (1, 2), (2, 4), (4, 7)]


def test_word_reference_file(tmp_path):
    """transformers' run_chinese_ref.py format: positions counted with [CLS] = 0, one list per non-blank line."""
    path = tmp_path / "ref.txt"
    path.write_text("[4, 6, 7]\n\n[]\n", encoding="utf-8")
    refs = list(read_word_ref(path))
    assert refs == [[4, 6, 7], []]
    assert ref_continuation(refs[0], 7, "x") == [False, False, False, True, False, True, True]
    with pytest.raises(ValueError, match="position 9 is past the line's 7 tokens"):
        ref_continuation([9], 7, "ref line 1")
    path.write_text('[1, "a"]\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"ref.txt:1: expected a JSON list of positions"):
        list(read_word_ref(path))
    path.write_text("[1,\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"ref.txt:1: not a JSON list"):
        list(read_word_ref(path))


def _sequence(n: int) -> tuple[list[int], list[bool], list[bool]]:
    """[CLS] + n tokens + [SEP]; every third token continues a word."""
    ids = [1] + [100 + i for i in range(n)] + [2]
    special = [True] + [False] * n + [True]
    cont = [False] + [i % 3 == 2 for i in range(n)] + [False]
    return ids, special, cont


@pytest.mark.parametrize("whole_word", [False, True])
def test_counts_labels_and_whole_words(whole_word):
    ids, special, cont = _sequence(60)
    groups = candidate_groups(special, cont, whole_word)
    for seed in range(50):
        m = mask_sequence(ids, special, cont, masked_lm_prob=0.15, max_predictions=20, whole_word=whole_word,
                          mask_id=MASK, vocab_size=VOCAB, rng=random.Random(seed))  # fmt: skip
        want = min(20, max(1, round(len(ids) * 0.15)))  # Google's num_to_predict: round(62 * 0.15) = 9
        assert len(m.positions) == want if not whole_word else want - 1 <= len(m.positions) <= want
        assert m.positions == sorted(m.positions) and not any(special[p] for p in m.positions)
        assert m.labels == [ids[p] for p in m.positions]
        unchanged = [i for i in range(len(ids)) if i not in m.positions]
        assert all(m.input_ids[i] == ids[i] for i in unchanged)
        chosen = set(m.positions)
        assert all(set(g) <= chosen or not set(g) & chosen for g in groups)  # never a part of a unit


def test_cap_and_minimum():
    ids, special, cont = _sequence(200)
    m = mask_sequence(ids, special, cont, masked_lm_prob=0.15, max_predictions=7, whole_word=False, mask_id=MASK,
                      vocab_size=VOCAB, rng=random.Random(0))  # fmt: skip
    assert len(m.positions) == 7
    ids, special, cont = _sequence(2)
    m = mask_sequence(ids, special, cont, masked_lm_prob=0.15, max_predictions=7, whole_word=False, mask_id=MASK,
                      vocab_size=VOCAB, rng=random.Random(0))  # fmt: skip
    assert len(m.positions) == 1  # round(4 * 0.15) = 1, and never 0


def test_80_10_10():
    """Each chosen token: [MASK] 80%, kept 10%, random 10% (a random id equal to the original counts as kept)."""
    ids, special, cont = _sequence(120)
    counts = {"mask": 0, "keep": 0, "random": 0}
    rng = random.Random(1)
    for _ in range(400):
        m = mask_sequence(ids, special, cont, masked_lm_prob=0.15, max_predictions=20, whole_word=True,
                          mask_id=MASK, vocab_size=VOCAB, rng=rng)  # fmt: skip
        for p, label in zip(m.positions, m.labels, strict=True):
            got = m.input_ids[p]
            counts["mask" if got == MASK else "keep" if got == label else "random"] += 1
    n = sum(counts.values())
    for key, p in (("mask", 0.8), ("keep", 0.1), ("random", 0.1)):
        sigma = (p * (1 - p) / n) ** 0.5
        assert abs(counts[key] / n - p) < 4 * sigma, (counts, n)


def test_word_reference_json_lines_are_plain_json(tmp_path):
    (tmp_path / "r.jsonl").write_text(json.dumps([2, 3]) + "\n", encoding="utf-8")
    assert list(read_word_ref(tmp_path / "r.jsonl")) == [[2, 3]]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list(read_word_ref(tmp_path / "missing"))
