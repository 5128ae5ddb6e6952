"""Tag schemes: spans as conlleval/seqeval read them, conversion among IOB1/IOB2/BIOES/BMES, valid moves."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.data.tag_schemes import (
    Span,
    allowed_transitions,
    convert_tags,
    detect_scheme,
    entity_types,
    is_valid,
    labels_for,
    scheme_name,
    spans_to_tags,
    split_tag,
    tags_to_spans,
)

seqeval_labeling = pytest.importorskip("seqeval.metrics.sequence_labeling")

ANY_TAG = st.sampled_from(["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"])
IOB_TAG = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])


def test_split_tag():
    assert split_tag("B-PER") == ("B", "PER")
    assert split_tag("I-PER-NAME") == ("I", "PER-NAME")
    assert split_tag("O") == ("O", "")
    for bad in ("PER", "X-PER", "B-", "B_PER", ""):
        with pytest.raises(ValueError, match="not 'O' or PREFIX-TYPE"):
            split_tag(bad)


def test_scheme_names():
    assert scheme_name("bio") == "IOB2"
    assert scheme_name("IOBES") == "BIOES"
    with pytest.raises(ValueError, match="unknown tag scheme"):
        scheme_name("BILOU2")


def test_spans_hand_examples():
    # conlleval reads I- after O as an entity start, and a type change as a boundary
    assert tags_to_spans(["B-PER", "I-PER", "O", "I-LOC", "I-ORG"]) == [
        Span("PER", 0, 2),
        Span("LOC", 3, 4),
        Span("ORG", 4, 5),
    ]
    # IOB1: B- separates two adjacent entities of one type
    assert tags_to_spans(["I-PER", "I-PER", "B-PER", "O"]) == [Span("PER", 0, 2), Span("PER", 2, 3)]
    assert tags_to_spans(["S-LOC", "B-PER", "I-PER", "E-PER"]) == [Span("LOC", 0, 1), Span("PER", 1, 4)]
    assert tags_to_spans(["B-ORG", "M-ORG", "E-ORG", "S-PER"]) == [Span("ORG", 0, 3), Span("PER", 3, 4)]


@settings(max_examples=300, deadline=None)
@given(st.lists(ANY_TAG, max_size=12))
def test_spans_equal_seqeval_default_mode(tags):
    ours = [(s.type, s.start, s.end - 1) for s in tags_to_spans(tags)]  # seqeval's end is inclusive
    assert ours == seqeval_labeling.get_entities(list(tags))


def test_conversion_hand_examples():
    iob1 = ["I-PER", "I-PER", "B-PER", "O", "I-LOC"]
    assert convert_tags(iob1, "IOB2") == ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]
    assert convert_tags(iob1, "BIOES") == ["B-PER", "E-PER", "S-PER", "O", "S-LOC"]
    assert convert_tags(iob1, "BMES") == ["B-PER", "E-PER", "S-PER", "O", "S-LOC"]
    iob2 = ["B-ORG", "I-ORG", "I-ORG", "B-ORG", "O"]
    assert convert_tags(iob2, "BMES") == ["B-ORG", "M-ORG", "E-ORG", "S-ORG", "O"]
    assert convert_tags(iob2, "IOB1") == ["I-ORG", "I-ORG", "I-ORG", "B-ORG", "O"]
    # repair: a softmax tagger's invalid output becomes the valid sequence conlleval would read
    assert convert_tags(["O", "I-PER", "I-LOC"], "IOB2") == ["O", "B-PER", "B-LOC"]


@settings(max_examples=300, deadline=None)
@given(st.lists(ANY_TAG, max_size=12), st.sampled_from(["IOB1", "IOB2", "BIOES", "BMES"]))
def test_conversion_keeps_entities_and_is_valid(tags, scheme):
    out = convert_tags(tags, scheme)
    assert tags_to_spans(out) == tags_to_spans(tags)
    assert is_valid(out, scheme)
    for other in ("IOB1", "IOB2", "BIOES", "BMES"):  # round trip through every scheme
        assert convert_tags(convert_tags(out, other), scheme) == out


@settings(max_examples=300, deadline=None)
@given(st.lists(IOB_TAG, max_size=10))
def test_is_valid_iob2_means_unchanged_by_conversion(tags):
    assert is_valid(tags, "IOB2") == (convert_tags(tags, "IOB2") == list(tags))


def test_is_valid_cases():
    assert is_valid(["B-PER", "I-PER", "O"], "IOB2")
    assert not is_valid(["O", "I-PER"], "IOB2")
    assert not is_valid(["B-PER", "I-LOC"], "IOB2")
    assert is_valid(["I-PER", "B-PER"], "IOB1")
    assert not is_valid(["O", "B-PER"], "IOB1")
    assert is_valid(["B-PER", "E-PER", "S-LOC"], "BIOES")
    assert not is_valid(["B-PER", "O"], "BIOES")
    assert not is_valid(["B-PER"], "BIOES")  # never closed
    assert not is_valid(["B-PER", "I-PER"], "BMES")  # I- is not a BMES prefix


def test_spans_to_tags_rejects_overlap_and_range():
    with pytest.raises(ValueError, match="overlaps"):
        spans_to_tags([("PER", 0, 2), ("LOC", 1, 3)], 4, "IOB2")
    with pytest.raises(ValueError, match="outside"):
        spans_to_tags([("PER", 3, 5)], 4, "IOB2")


def test_detect_scheme_and_labels():
    assert detect_scheme([["B-PER", "I-PER", "O"], ["O", "B-LOC"]]) == "IOB2"
    assert detect_scheme([["I-PER", "I-PER", "O"], ["O", "B-LOC"]]) == "IOB1"
    assert detect_scheme([["S-PER", "O"]]) == "BIOES"
    assert detect_scheme([["B-PER", "M-PER", "E-PER"]]) == "BMES"
    assert entity_types([["B-PER", "O"], ["I-LOC"]]) == ["LOC", "PER"]
    assert labels_for(["PER", "LOC"], "BIO") == ("O", "B-LOC", "I-LOC", "B-PER", "I-PER")
    assert labels_for(["PER"], "BMES") == ("O", "B-PER", "M-PER", "E-PER", "S-PER")


def test_allowed_transitions_bio():
    labels = ("O", "B-LOC", "I-LOC", "B-PER", "I-PER")
    moves = allowed_transitions(labels, "IOB2")
    assert moves.start == [True, True, False, True, False]
    assert moves.end == [True] * 5
    i = {label: k for k, label in enumerate(labels)}
    assert moves.pairs[i["B-LOC"]][i["I-LOC"]] and moves.pairs[i["I-LOC"]][i["I-LOC"]]
    assert not moves.pairs[i["O"]][i["I-LOC"]] and not moves.pairs[i["B-PER"]][i["I-LOC"]]
    with pytest.raises(ValueError, match="do not belong to scheme"):
        allowed_transitions(("O", "S-PER"), "IOB2")
