"""Units (labelled pieces), unit tags, windows over pieces, and unit spans back to words."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.data.tag_schemes import Span
from bertkit.tasks.tag_alignment import align, unit_spans_to_words, unit_tags, windows


def test_align_first_piece_and_all_pieces():
    a = align([10, 11, 12, 13], [0, 0, 1, 2])
    assert (a.unit_pieces, a.unit_words) == ([0, 2, 3], [0, 1, 2])
    b = align([10, 11, 12, 13], [0, 0, 1, 2], all_pieces=True)
    assert b.unit_words == [0, 0, 1, 2]
    assert unit_tags(["B-PER", "I-PER", "O"], b.unit_words, "IOB2") == (["B-PER", "I-PER", "I-PER", "O"], 0)
    assert unit_tags(["S-PER", "O", "O"], b.unit_words, "BIOES") == (["B-PER", "E-PER", "O", "O"], 0)
    # word 1 has no piece (dropped by the tokenizer): the entity over words 0-2 still spans it
    assert unit_tags(["B-ORG", "I-ORG", "I-ORG"], [0, 2], "IOB2") == (["B-ORG", "I-ORG"], 0)
    assert unit_tags(["O", "B-PER", "O"], [0, 2], "IOB2") == (["O", "O"], 1)
    assert unit_spans_to_words([Span("ORG", 0, 2)], [0, 2]) == [Span("ORG", 0, 3)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 7), min_size=0, max_size=30),
    st.integers(1, 12),
    st.integers(0, 11),
    st.booleans(),
)
def test_windows_cover_every_unit_at_the_right_position(pieces_per_word, size, stride, all_pieces):
    stride = min(stride, size - 1)
    word_ids = [w for w, n in enumerate(pieces_per_word) for _ in range(n)]
    piece_ids = list(range(100, 100 + len(word_ids)))
    a = align(piece_ids, word_ids, all_pieces)
    wins = windows(a, size, stride)
    seen = set()
    for w in wins:
        assert w.end - w.start <= size
        input_ids = [0, *piece_ids[w.start : w.end], 0]
        for u, pos in zip(w.units, w.positions, strict=True):
            assert input_ids[pos] == piece_ids[a.unit_pieces[u]]
            seen.add(u)
    assert seen == set(range(len(a.unit_pieces)))
