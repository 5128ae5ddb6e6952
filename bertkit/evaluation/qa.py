"""Extractive QA metrics: the official SQuAD v1.1 / v2.0 EM and F1, and CMRC 2018's character-level EM / F1.

Each function takes the gold answers and the predictions keyed by question id and returns scores on the
0-100 scale, with the key names the official scripts print (``exact_match``/``f1`` as evaluate-v1.1.py
prints them; ``HasAns_*``, ``NoAns_*``, ``best_*`` as evaluate-v2.0.py prints them).
A question without a prediction scores 0 (evaluate-v1.1.py's rule) and is logged.
"""

from __future__ import annotations

import logging
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence

logger = logging.getLogger(__name__)

Golds = Mapping[str, Sequence[str]]  # question id -> reference answer texts ([] = unanswerable)
Predictions = Mapping[str, str]  # question id -> predicted answer text ("" = no answer)

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, drop ASCII punctuation and the articles a/an/the, squeeze spaces.

    Example: ``normalize_answer("The  Broncos!") -> "broncos"``
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def squad_exact(gold: str, prediction: str) -> int:
    """1 when the normalised strings are equal."""
    return int(normalize_answer(gold) == normalize_answer(prediction))


def squad_f1(gold: str, prediction: str) -> float:
    """Bag-of-words F1 over normalised tokens; two empty answers agree (evaluate-v2.0.py's rule).

    Example: ``squad_f1("Denver Broncos", "the Broncos") -> 0.666...``
    """
    gold_tokens = normalize_answer(gold).split()
    pred_tokens = normalize_answer(prediction).split()
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    return _token_f1(gold_tokens, pred_tokens)


def _token_f1(gold_tokens: list[str], pred_tokens: list[str]) -> float:
    """evaluate-v1.1.py's f1_score: 0 without overlap, even for two empty answers."""
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _missing(golds: Golds, predictions: Predictions) -> None:
    missing = [qid for qid in golds if qid not in predictions]
    if missing:
        logger.warning(
            "%d of %d questions have no prediction and score 0 (first: %s)",
            len(missing),
            len(golds),
            missing[0],
        )


def squad_v1(golds: Golds, predictions: Predictions) -> dict[str, float]:
    """evaluate-v1.1.py: max EM / F1 over the references, averaged over all questions -> exact_match, f1, total."""
    _missing(golds, predictions)
    if not golds:
        raise ValueError("no gold questions to evaluate")
    em = f1 = 0.0
    for qid, answers in golds.items():
        if qid not in predictions:
            continue
        if not answers:
            raise ValueError(
                f"question {qid!r} has no reference answers; SQuAD v1.1 scoring needs one (use squad_v2)"
            )
        pred = predictions[qid]
        em += max(squad_exact(a, pred) for a in answers)
        f1 += max(_token_f1(normalize_answer(a).split(), normalize_answer(pred).split()) for a in answers)
    n = len(golds)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n, "total": n}


def _v2_raw_scores(golds: Golds, predictions: Predictions) -> tuple[dict[str, float], dict[str, float]]:
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    for qid, answers in golds.items():
        refs = [a for a in answers if normalize_answer(a)] or [""]  # unanswerable: only "" is right
        pred = predictions.get(qid, None)
        if pred is None:
            exact[qid] = f1[qid] = 0.0
            continue
        exact[qid] = float(max(squad_exact(a, pred) for a in refs))
        f1[qid] = max(squad_f1(a, pred) for a in refs)
    return exact, f1


def best_threshold(
    predictions: Predictions,
    scores: Mapping[str, float],
    na_probs: Mapping[str, float],
    has_answer: Mapping[str, bool],
) -> tuple[float, float]:
    """evaluate-v2.0.py's search: the no-answer threshold that maximises the score -> (score 0-100, threshold).

    Questions are sorted by their no-answer score; answering all questions up to a threshold and
    abstaining on the rest is scored for every cut. ``predictions`` are the answers given when answering.
    """
    current = best = float(sum(1 for v in has_answer.values() if not v))
    threshold = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            current += scores[qid]
        elif predictions[qid]:
            current -= 1
        if current > best:
            best, threshold = current, na_probs[qid]
    return 100.0 * best / len(scores), threshold


def squad_v2(
    golds: Golds,
    predictions: Predictions,
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = 1.0,
) -> dict[str, float]:
    """evaluate-v2.0.py: EM / F1 overall and on the HasAns / NoAns splits, and the best no-answer threshold.

    ``na_probs`` (question id -> no-answer score, e.g. null-score minus best-span score) turns an answer into
    "" when above ``na_prob_thresh``, as ``--na-prob-file`` / ``--na-prob-thresh`` do; with it, ``best_exact``,
    ``best_f1`` and their thresholds are searched. Keys: exact_match, f1, total, HasAns_exact, HasAns_f1,
    HasAns_total, NoAns_exact, NoAns_f1, NoAns_total, and best_exact, best_exact_thresh, best_f1, best_f1_thresh.
    """
    if not golds:
        raise ValueError("no gold questions to evaluate")
    _missing(golds, predictions)
    has_answer = {qid: bool(answers) for qid, answers in golds.items()}
    exact_raw, f1_raw = _v2_raw_scores(golds, predictions)
    probs = {qid: float(na_probs.get(qid, 0.0)) if na_probs else 0.0 for qid in golds}

    def threshold(scores: dict[str, float]) -> dict[str, float]:
        return {q: float(not has_answer[q]) if probs[q] > na_prob_thresh else s for q, s in scores.items()}

    exact, f1 = threshold(exact_raw), threshold(f1_raw)
    out: dict[str, float] = {
        "exact_match": 100.0 * sum(exact.values()) / len(exact),
        "f1": 100.0 * sum(f1.values()) / len(f1),
        "total": len(exact),
    }
    for name, want in (("HasAns", True), ("NoAns", False)):
        ids = [q for q in golds if has_answer[q] == want]
        if ids:
            out[f"{name}_exact"] = 100.0 * sum(exact[q] for q in ids) / len(ids)
            out[f"{name}_f1"] = 100.0 * sum(f1[q] for q in ids) / len(ids)
            out[f"{name}_total"] = len(ids)
    if na_probs:
        preds = {q: predictions.get(q, "") for q in golds}
        out["best_exact"], out["best_exact_thresh"] = best_threshold(preds, exact_raw, probs, has_answer)
        out["best_f1"], out["best_f1_thresh"] = best_threshold(preds, f1_raw, probs, has_answer)
    return out


# CMRC 2018 (cmrc2018_evaluate.py, v5): these characters are dropped before scoring. The list holds
# "……" as one two-character entry, which a character never equals, so "…" is kept, as in the script.
_CMRC_PUNCTUATION = frozenset(
    "- : _ * ^ / \\ ~ ` + = ， 。 ： ？ ！ “ ” ； ’ 《 》 …… · 、 「 」 （ ） － ～ 『 』".split(" ")
)
_CJK = re.compile("[\u4e00-\u9fa5]")
# Words, numbers (3.5, 1,000) and single punctuation marks: what nltk.word_tokenize gives for the
# non-Chinese runs CMRC answers contain; nltk's contraction splits ("don't" -> "do", "n't") are not made.
_WORD = re.compile(r"\w+(?:[.,']\w+)*|[^\w\s]")


def cmrc_segments(text: str) -> list[str]:
    """CMRC 2018 ``mixed_segmentation(text, rm_punc=True)``: each Chinese character alone, other runs as words.

    Punctuation is dropped without ending a run, as in the script.
    Example: ``cmrc_segments("光荣和ω-force开发") -> ["光", "荣", "和", "ωforce", "开", "发"]``
    """
    out: list[str] = []
    run = ""
    for ch in text.lower().strip():
        if ch in _CMRC_PUNCTUATION:
            continue
        if _CJK.match(ch):
            if run:
                out.extend(_WORD.findall(run))
                run = ""
            out.append(ch)
        else:
            run += ch
    if run:
        out.extend(_WORD.findall(run))
    return out


def _cmrc_strip(text: str) -> str:
    return "".join(ch for ch in text.lower().strip() if ch not in _CMRC_PUNCTUATION)


def _longest_common_substring(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common contiguous run (``find_lcs`` in the CMRC script)."""
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                cur[j + 1] = prev[j] + 1
                best = max(best, cur[j + 1])
        prev = cur
    return best


def cmrc_f1(gold: str, prediction: str) -> float:
    """Character-level F1 through the longest common substring of the segmentations."""
    g, p = cmrc_segments(gold), cmrc_segments(prediction)
    common = _longest_common_substring(g, p)
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def cmrc_exact(gold: str, prediction: str) -> int:
    """1 when equal after lower-casing and dropping the CMRC punctuation."""
    return int(_cmrc_strip(gold) == _cmrc_strip(prediction))


def cmrc2018(golds: Golds, predictions: Predictions) -> dict[str, float]:
    """cmrc2018_evaluate.py: max EM / F1 over the references -> exact_match, f1, average, total, skip."""
    if not golds:
        raise ValueError("no gold questions to evaluate")
    _missing(golds, predictions)
    em = f1 = 0.0
    skip = 0
    for qid, answers in golds.items():
        if qid not in predictions:
            skip += 1
            continue
        if not answers:
            raise ValueError(f"question {qid!r} has no reference answers; CMRC 2018 scoring needs one")
        pred = predictions[qid]
        em += max(cmrc_exact(a, pred) for a in answers)
        f1 += max(cmrc_f1(a, pred) for a in answers)
    n = len(golds)
    em, f1 = 100.0 * em / n, 100.0 * f1 / n
    return {"exact_match": em, "f1": f1, "average": (em + f1) / 2, "total": n, "skip": skip}
