"""QA metrics against cases worked by hand from the official scripts (evaluate-v1.1.py, evaluate-v2.0.py,
cmrc2018_evaluate.py v5), and against the real dev files (gold answers as predictions score 100)."""

from __future__ import annotations

import json

import pytest

from bertkit.evaluation.qa import (
    best_threshold,
    cmrc2018,
    cmrc_exact,
    cmrc_f1,
    cmrc_segments,
    normalize_answer,
    squad_exact,
    squad_f1,
    squad_v1,
    squad_v2,
)


def test_normalize_answer_drops_case_punctuation_articles_and_spaces():
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("Levi's Stadium") == "levis stadium"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert normalize_answer("theatre") == "theatre"  # \b: articles only as whole words
    assert normalize_answer("“Quoted”") == "“quoted”"  # only ASCII punctuation is removed


def test_squad_f1_is_token_overlap_after_normalisation():
    assert squad_f1("Denver Broncos", "the Broncos") == pytest.approx(2 / 3)  # P=1, R=1/2
    assert squad_f1("10th and 11th centuries", "the 10th century") == pytest.approx(1 / 3)  # P=1/2, R=1/4
    assert squad_f1("x b b", "b b c") == pytest.approx(2 / 3)  # repeated tokens count up to the minimum
    assert squad_f1("a b b", "b b c") == pytest.approx(0.8)  # "a" is an article: gold [b, b], P=2/3, R=1
    assert squad_f1("Broncos", "Panthers") == 0.0
    assert squad_f1("", "") == 1.0 and squad_f1("x", "") == 0.0 and squad_f1("", "x") == 0.0
    assert squad_exact("The Broncos.", "broncos") == 1 and squad_exact("Broncos", "Denver Broncos") == 0


def test_squad_v1_takes_the_best_reference_and_averages_over_all_questions():
    golds = {
        "q1": ["Denver Broncos", "Denver Broncos"],
        "q2": ["Santa Clara, California", "Levi's Stadium", "Levi's Stadium in the San Francisco Bay Area"],
        "q3": ["gold"],
        "q4": ["Carolina Panthers"],
    }
    preds = {"q1": "the Broncos", "q2": "levis stadium", "q3": "golden"}  # q4 missing: scores 0
    out = squad_v1(golds, preds)
    assert out["total"] == 4
    assert out["exact_match"] == pytest.approx(25.0)
    assert out["f1"] == pytest.approx(100 * (2 / 3 + 1 + 0 + 0) / 4)


def _squad_golds(path):
    data = json.loads(path.read_text())["data"]
    return {
        qa["id"]: [a["text"] for a in qa["answers"]] for a in data for p in a["paragraphs"] for qa in p["qas"]
    }


def test_squad_v1_on_the_real_dev_file(data_dir):
    golds = _squad_golds(data_dir / "squad" / "dev-v1.1.json")
    assert len(golds) == 10570
    assert squad_v1(golds, {q: a[0] for q, a in golds.items()}) == {
        "exact_match": 100.0,
        "f1": 100.0,
        "total": 10570,
    }
    # evaluate-v1.1.py gives F1 0 to an empty prediction but EM 1 where a reference normalises to ""
    empty = squad_v1(golds, {q: "" for q in golds})
    blank = sum(any(not normalize_answer(a) for a in refs) for refs in golds.values())
    assert blank > 0 and empty["f1"] == 0.0
    assert empty["exact_match"] == pytest.approx(100 * blank / len(golds))


V2_GOLDS = {
    "a": ["Normandy"],
    "b": [],
    "c": ["10th and 11th centuries", "in the 10th and 11th centuries"],
    "d": [],
}
V2_PREDS = {"a": "Normandy", "b": "", "c": "the 10th century", "d": "France"}


def test_squad_v2_splits_has_ans_and_no_ans():
    out = squad_v2(V2_GOLDS, V2_PREDS)
    # raw: a EM1 F1 1; b "" vs "" EM1 F1 1; c EM0 F1 max(1/3, 2/7); d EM0 F1 0
    assert out["exact_match"] == pytest.approx(50.0)
    assert out["f1"] == pytest.approx(100 * (1 + 1 + 1 / 3) / 4)
    assert out["total"] == 4
    assert (out["HasAns_exact"], out["HasAns_f1"], out["HasAns_total"]) == pytest.approx(
        (50.0, 100 * (4 / 3) / 2, 2)
    )
    assert (out["NoAns_exact"], out["NoAns_f1"], out["NoAns_total"]) == pytest.approx((50.0, 50.0, 2))
    assert "best_f1" not in out  # only searched with no-answer scores


def test_squad_v2_threshold_and_best_threshold_search():
    na = {"a": 0.1, "b": 0.9, "c": 0.5, "d": 0.8}
    out = squad_v2(V2_GOLDS, V2_PREDS, na_probs=na)  # default threshold 1.0: nothing abstains
    assert out["exact_match"] == pytest.approx(50.0)
    # sorted by na: a +1 (best 3 @0.1), c +0 EM / +1/3 F1 (F1 best 10/3 @0.5), d answered wrongly -1, b 0
    assert (out["best_exact"], out["best_exact_thresh"]) == pytest.approx((75.0, 0.1))
    assert (out["best_f1"], out["best_f1_thresh"]) == pytest.approx((100 * (10 / 3) / 4, 0.5))
    # at 0.6, d (0.8) and b (0.9) abstain: both are unanswerable, so both score 1
    out = squad_v2(V2_GOLDS, V2_PREDS, na_probs=na, na_prob_thresh=0.6)
    assert out["exact_match"] == pytest.approx(75.0)
    assert out["f1"] == pytest.approx(100 * (1 + 1 + 1 / 3 + 1) / 4)
    assert out["NoAns_exact"] == 100.0


def test_best_threshold_starts_from_abstaining_everywhere():
    # everything abstains at threshold 0 when answering only hurts: the score is the NoAns share
    golds_has = {"x": False, "y": True}
    score, thresh = best_threshold(
        {"x": "wrong", "y": "also wrong"}, {"x": 0.0, "y": 0.0}, {"x": 0.2, "y": 0.4}, golds_has
    )
    assert (score, thresh) == (50.0, 0.0)


def test_cmrc_segmentation_follows_the_official_script():
    assert cmrc_segments("光荣和ω-force开发") == [
        "光",
        "荣",
        "和",
        "ωforce",
        "开",
        "发",
    ]  # "-" dropped inside the run
    assert cmrc_segments("《战国无双3》") == ["战", "国", "无", "双", "3"]
    assert cmrc_segments(" Hello, World 3.5 ") == ["hello", ",", "world", "3.5"]
    assert cmrc_segments("似一华盖(Baldachin)型") == ["似", "一", "华", "盖", "(", "baldachin", ")", "型"]


def test_cmrc_f1_uses_the_longest_common_substring_not_subsequence():
    assert cmrc_f1("光荣和ω-force", "光荣和ω-force") == 1.0
    assert cmrc_f1("光荣和ω-force", "光荣") == pytest.approx(2 / 3)  # P=1, R=2/4
    assert cmrc_f1("一二三四五", "一二X四五") == pytest.approx(0.4)  # common run 2 of 5: P=R=0.4
    assert cmrc_f1("Baldachin型天篷", "baldachin") == pytest.approx(0.4)  # P=1, R=1/4
    assert cmrc_f1("村雨城", "光荣") == 0.0 and cmrc_f1("村雨城", "") == 0.0


def test_cmrc_exact_ignores_case_and_chinese_punctuation_only():
    assert cmrc_exact("战国无双3", "《战国无双3》") == 1
    assert cmrc_exact("好", "好，") == 1
    assert cmrc_exact("好", "好…") == 0  # "……" is listed as one two-char entry, so a single "…" stays
    assert cmrc_exact("ABC", "abc") == 1
    assert cmrc_exact("好", "好.") == 0  # ASCII "." is not on CMRC's list


def test_cmrc2018_counts_missing_predictions_as_skipped_zeros():
    golds = {"q1": ["光荣和ω-force"] * 3, "q2": ["村雨城"]}
    out = cmrc2018(golds, {"q1": "光荣"})
    assert out == pytest.approx(
        {"exact_match": 0.0, "f1": 100 * (2 / 3) / 2, "average": 100 * (2 / 3) / 4, "total": 2, "skip": 1}
    )


def test_cmrc2018_on_the_real_dev_file(data_dir):
    golds = _squad_golds(data_dir / "cmrc2018" / "cmrc2018_dev.json")
    assert len(golds) == 3219
    out = cmrc2018(golds, {q: a[0] for q, a in golds.items()})
    assert (out["exact_match"], out["f1"], out["skip"]) == (100.0, 100.0, 0)


def test_metrics_reject_empty_inputs_and_v1_questions_without_answers():
    with pytest.raises(ValueError, match="no gold"):
        squad_v1({}, {})
    with pytest.raises(ValueError, match="squad_v2"):
        squad_v1({"q": []}, {"q": ""})
