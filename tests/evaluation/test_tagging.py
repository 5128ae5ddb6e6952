"""Entity metrics against seqeval (default = conlleval, and strict) on the CoNLL-2003 dev set.

The predictions are the gold tags damaged the ways a tagger errs (wrong type, shifted boundary, a lone I-,
a missed or invented entity), with a fixed seed; the slow end-to-end test in tests/tasks/test_tagging.py
repeats the comparison on a real model's predictions.
"""

from __future__ import annotations

import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.data.readers.conll import read_conll
from bertkit.data.tag_schemes import convert_tags
from bertkit.evaluation.tagging import (
    conlleval_entities,
    entity_scores,
    format_report,
    strict_entities,
    tagging_metrics,
)

seqeval_metrics = pytest.importorskip("seqeval.metrics")
seqeval_scheme = pytest.importorskip("seqeval.scheme")
SEQEVAL_SCHEMES = {"IOB1": seqeval_scheme.IOB1, "IOB2": seqeval_scheme.IOB2, "BIOES": seqeval_scheme.IOBES}
TYPES = ("PER", "LOC", "ORG", "MISC")


def damage(tags: list[str], rng: random.Random) -> list[str]:
    out = list(tags)
    for i, tag in enumerate(out):
        r = rng.random()
        if r < 0.03 and tag != "O":
            out[i] = tag[:2] + rng.choice(TYPES)  # wrong type
        elif r < 0.05:
            out[i] = "I-" + rng.choice(TYPES)  # a lone or shifted inside tag
        elif r < 0.07:
            out[i] = "O"  # truncated or missed entity
        elif r < 0.08:
            out[i] = "B-" + rng.choice(TYPES)  # split or invented entity
    return out


def seqeval_scores(y_true, y_pred, mode=None, scheme=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on zero division; we return 0 the same way
        kw = {"mode": mode, "scheme": SEQEVAL_SCHEMES[scheme]} if mode else {}
        report = seqeval_metrics.classification_report(y_true, y_pred, output_dict=True, **kw)
        micro = (
            seqeval_metrics.precision_score(y_true, y_pred, **kw),
            seqeval_metrics.recall_score(y_true, y_pred, **kw),
            seqeval_metrics.f1_score(y_true, y_pred, **kw),
        )
    return report, micro


@pytest.fixture(scope="module")
def conll_dev(data_dir):
    gold = [list(e.tags) for e in read_conll(data_dir / "conll2003" / "valid.txt")]
    rng = random.Random(2003)
    return gold, [damage(t, rng) for t in gold]


def _compare(ours, report, micro):
    for kind, s in ours.items():
        if kind == "micro":
            assert (s.precision, s.recall, s.f1) == pytest.approx(micro, abs=1e-12)
            continue
        ref = report[kind]
        assert (s.precision, s.recall, s.f1, s.support) == pytest.approx(
            (ref["precision"], ref["recall"], ref["f1-score"], ref["support"]), abs=1e-12
        )


def test_default_mode_equals_seqeval_on_conll_dev(conll_dev):
    gold, pred = conll_dev
    assert len(gold) == 3250
    ours = entity_scores(gold, pred)
    report, micro = seqeval_scores(gold, pred)
    assert set(ours) == {"LOC", "MISC", "ORG", "PER", "micro"}
    assert ours["micro"].support == 5942  # CoNLL-2003 dev entities, the published count
    assert 0.5 < ours["micro"].f1 < 0.95  # the damage is real, not a no-op
    _compare(ours, report, micro)


@pytest.mark.parametrize("scheme", ["IOB2", "IOB1", "BIOES"])
def test_strict_mode_equals_seqeval_on_conll_dev(conll_dev, scheme):
    gold, pred = conll_dev
    gold = [convert_tags(t, scheme) for t in gold]
    if scheme == "BIOES":  # damaged predictions written in BIOES prefixes, still invalid in places
        pred = [
            [("E" if t.startswith("I-") and i % 3 == 0 else t[0]) + t[1:] for i, t in enumerate(p)]
            for p in pred
        ]
    elif scheme == "IOB1":
        pred = [convert_tags(p, "IOB1") if k % 2 else p for k, p in enumerate(pred)]
    ours = entity_scores(gold, pred, mode="strict", scheme=scheme)
    report, micro = seqeval_scores(gold, pred, mode="strict", scheme=scheme)
    _compare(ours, report, micro)
    # strict drops the invalid predicted entities that default mode counts
    default = entity_scores(gold, pred)
    assert ours["micro"].predicted <= default["micro"].predicted


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["O", "B-A", "I-A", "E-A", "S-A", "B-B", "I-B", "E-B", "S-B"]), max_size=10))
def test_strict_bioes_entities_equal_seqeval(tags):
    ref = seqeval_scheme.Entities([list(tags)], seqeval_scheme.IOBES).entities[0]
    assert strict_entities(tags, "BIOES") == [(e.tag, e.start, e.end) for e in ref]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(["O", "B-A", "I-A", "B-B", "I-B"]), max_size=10),
    st.sampled_from(["IOB1", "IOB2"]),
)
def test_strict_iob_entities_equal_seqeval(tags, scheme):
    ref = seqeval_scheme.Entities([list(tags)], SEQEVAL_SCHEMES[scheme]).entities[0]
    assert strict_entities(tags, scheme) == [(e.tag, e.start, e.end) for e in ref]
    default = seqeval_metrics.sequence_labeling.get_entities(list(tags))
    assert conlleval_entities(tags) == [(t, s, e + 1) for t, s, e in default]


def test_hand_worked_example():
    # seqeval's documented example: MISC is shifted by one word, PER is right -> P = R = F1 = 0.5
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    m = tagging_metrics(y_true, y_pred)
    assert (m["precision"], m["recall"], m["f1"]) == (0.5, 0.5, 0.5)
    assert m["PER_f1"] == 1.0 and m["MISC_f1"] == 0.0
    assert m["accuracy"] == pytest.approx(8 / 10)  # words 2 and 3 of the first sentence differ
    assert "micro" in format_report(entity_scores(y_true, y_pred))


def test_strict_rejects_foreign_prefix_and_lengths():
    with pytest.raises(ValueError, match="not allowed in scheme IOB2"):
        entity_scores([["S-PER"]], [["O"]], mode="strict", scheme="IOB2")
    with pytest.raises(ValueError, match="needs scheme"):
        entity_scores([["O"]], [["O"]], mode="strict")
    with pytest.raises(ValueError, match="sentence 0"):
        entity_scores([["O", "O"]], [["O"]])


def test_bmes_is_read_as_bioes():
    gold = [["B-ORG", "M-ORG", "E-ORG", "S-PER"]]
    assert entity_scores(gold, gold, scheme="BMES")["micro"].support == 2
    assert entity_scores(gold, gold, mode="strict", scheme="BMES")["micro"].f1 == 1.0
