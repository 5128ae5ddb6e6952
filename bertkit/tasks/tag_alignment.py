"""Words <-> word pieces for tagging: which pieces carry labels, sliding windows, and merging windows back.

A "unit" is a labelled position: the first piece of each word (Google's recipe; the other pieces are
ignored, the `X` of the BERT paper) or, with all_pieces, every piece. Units are numbered per example.
Long inputs are cut into windows of pieces sharing `stride` pieces, so nothing is truncated; each unit is
scored by the window in which it has the most context on both sides (run_squad.py's max-context rule).
A word that yields no piece (a zero-width or control character) has no unit; it is outside every
entity unless an entity spans across it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bertkit.data.tag_schemes import Span, spans_to_tags, tags_to_spans
from bertkit.tokenization import window_spans


@dataclass(frozen=True)
class Alignment:
    """One example's pieces and units (positions index the pieces, without [CLS]/[SEP])."""

    piece_ids: list[int]
    unit_pieces: list[int]  # piece position of each unit
    unit_words: list[int]  # word index of each unit


def align(piece_ids: Sequence[int], word_ids: Sequence[int | None], all_pieces: bool = False) -> Alignment:
    """Units from the word ids of an encoding's pieces (specials already removed).

    Example: align([7, 8, 9], [0, 0, 1]) -> Alignment([7, 8, 9], unit_pieces=[0, 2], unit_words=[0, 1])
    """
    unit_pieces, unit_words = [], []
    previous = None
    for p, w in enumerate(word_ids):
        if w is None:
            raise ValueError("pieces passed to align() must not include special tokens")
        if all_pieces or w != previous:
            unit_pieces.append(p)
            unit_words.append(w)
        previous = w
    return Alignment(list(piece_ids), unit_pieces, unit_words)


def unit_tags(word_tags: Sequence[str], unit_words: Sequence[int], scheme: str) -> tuple[list[str], int]:
    """Tags of the units, in `scheme`, carrying the words' entities; also how many entities had no unit.

    With all pieces labelled, an entity over words 3-4 covers every piece of those words.
    Example: unit_tags(["B-PER", "I-PER"], [0, 0, 1], "IOB2") -> (["B-PER", "I-PER", "I-PER"], 0)
    """
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for u, w in enumerate(unit_words):
        first.setdefault(w, u)
        last[w] = u
    spans, lost = [], 0
    for s in tags_to_spans(word_tags):
        covered = [w for w in range(s.start, s.end) if w in first]
        if not covered:
            lost += 1
            continue
        spans.append(Span(s.type, first[covered[0]], last[covered[-1]] + 1))
    return spans_to_tags(spans, len(unit_words), scheme), lost


def unit_spans_to_words(spans: Sequence[Span], unit_words: Sequence[int]) -> list[Span]:
    """Entity spans over units -> over words; a span that would overlap the previous one is cut (all_pieces)."""
    out: list[Span] = []
    for s in spans:
        start, end = unit_words[s.start], unit_words[s.end - 1] + 1
        if out and start < out[-1].end:
            start = out[-1].end
        if start < end:
            out.append(Span(s.type, start, end))
    return out


@dataclass(frozen=True)
class Window:
    """Pieces [start, end) of an example, and the units in it."""

    start: int
    end: int
    units: list[int]  # unit indices (into the example's units)
    positions: list[int]  # each unit's position in the window's input_ids ([CLS] is position 0)


def windows(alignment: Alignment, max_pieces: int, stride: int) -> list[Window]:
    """Windows of at most max_pieces pieces, consecutive ones sharing `stride` pieces; at least one window.

    Example: 10 pieces, max_pieces 4, stride 1 -> pieces [0, 4), [3, 7), [6, 10)
    """
    n = len(alignment.piece_ids)
    spans = window_spans(n, max_pieces, stride) if n else [(0, 0)]
    out = []
    u = 0
    for a, b in spans:
        while u < len(alignment.unit_pieces) and alignment.unit_pieces[u] < a:
            u += 1
        units = []
        k = u
        while k < len(alignment.unit_pieces) and alignment.unit_pieces[k] < b:
            units.append(k)
            k += 1
        out.append(Window(a, b, units, [1 + alignment.unit_pieces[k] - a for k in units]))
    return out


def context(position: int, length: int) -> int:
    """Pieces of context on the poorer side of a position in a window of `length` pieces (1-based positions)."""
    return min(position - 1, length - position)
