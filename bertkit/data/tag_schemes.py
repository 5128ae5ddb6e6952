"""Tag schemes for token tagging: IOB1, IOB2 (BIO), BIOES (IOBES) and BMES; spans, conversion, valid moves.

A span is (type, start, end) over word indices, end exclusive. Reading tags into spans follows conlleval's
chunk rules (seqeval's default mode), which read every scheme and never drop a tag: an `I-X` after `O` starts
an entity, a type change ends one. Writing spans back in a scheme gives a valid sequence, so
`convert_tags(tags, scheme)` is both the scheme conversion and the repair of a softmax tagger's output.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

SCHEMES = ("IOB1", "IOB2", "BIOES", "BMES")
_ALIASES = {"BIO": "IOB2", "IOB": "IOB2", "IOBES": "BIOES", "BMEO": "BMES", "BMESO": "BMES"}
# Prefixes of each scheme, in the order labels are listed.
PREFIXES = {
    "IOB1": ("B", "I"),
    "IOB2": ("B", "I"),
    "BIOES": ("B", "I", "E", "S"),
    "BMES": ("B", "M", "E", "S"),
}


class Span(NamedTuple):
    type: str
    start: int  # first word
    end: int  # one past the last word


class Transitions(NamedTuple):
    """Which label sequences a scheme allows: start[j], pairs[i][j] (label i then label j), end[i]."""

    start: list[bool]
    pairs: list[list[bool]]
    end: list[bool]


def scheme_name(name: str) -> str:
    """Canonical scheme name. Example: scheme_name("bio") -> "IOB2"."""
    key = name.strip().upper()
    key = _ALIASES.get(key, key)
    if key not in SCHEMES:
        raise ValueError(f"unknown tag scheme {name!r}; use one of {', '.join(SCHEMES)} (or BIO, IOBES)")
    return key


def split_tag(tag: str) -> tuple[str, str]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''). The type may itself contain '-'."""
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in ("B", "I", "E", "S", "M") or not kind:
        raise ValueError(
            f"tag {tag!r} is not 'O' or PREFIX-TYPE with a prefix B, I, E, S or M (e.g. B-PER); "
            "fix the tag column, or choose the right column with tag_column"
        )
    return prefix, kind


def _ends(prev: str, cur: str, prev_type: str, cur_type: str) -> bool:
    """conlleval: does an entity end between the previous and the current word?"""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and cur in ("B", "S", "O"):
        return True
    return prev != "O" and prev_type != cur_type


def _starts(prev: str, cur: str, prev_type: str, cur_type: str) -> bool:
    """conlleval: does an entity start at the current word?"""
    if cur in ("B", "S"):
        return True
    if cur in ("E", "I") and prev in ("E", "S", "O"):
        return True
    return cur != "O" and prev_type != cur_type


def tags_to_spans(tags: Sequence[str]) -> list[Span]:
    """Entities of a tag sequence in any scheme, by conlleval's rules (M is read as I).

    Example: tags_to_spans(["B-PER", "I-PER", "O", "I-LOC"]) -> [Span("PER", 0, 2), Span("LOC", 3, 4)]
    """
    spans: list[Span] = []
    start: int | None = None
    prev, prev_type = "O", ""
    for i, tag in enumerate([*tags, "O"]):
        cur, cur_type = split_tag(tag)
        if cur == "M":
            cur = "I"
        if start is not None and _ends(prev, cur, prev_type, cur_type):
            spans.append(Span(prev_type, start, i))
            start = None
        if cur != "O" and _starts(prev, cur, prev_type, cur_type):
            start = i
        prev, prev_type = cur, cur_type
    return spans


def spans_to_tags(spans: Iterable[Span | tuple[str, int, int]], length: int, scheme: str) -> list[str]:
    """Write non-overlapping spans as a valid tag sequence of `length` words in `scheme`.

    Example: spans_to_tags([("PER", 0, 2)], 3, "BIOES") -> ["B-PER", "E-PER", "O"]
    """
    scheme = scheme_name(scheme)
    tags = ["O"] * length
    last_end, last_type = -1, ""
    for kind, start, end in sorted(spans, key=lambda s: (s[1], s[2])):
        if not 0 <= start < end <= length:
            raise ValueError(f"span {kind} [{start}, {end}) is outside a sequence of {length} words")
        if start < last_end:
            raise ValueError(
                f"span {kind} [{start}, {end}) overlaps the previous one; nested entities are not supported"
            )
        if scheme in ("IOB1", "IOB2"):
            first = "B" if scheme == "IOB2" or (start == last_end and kind == last_type) else "I"
            tags[start:end] = [f"{first}-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        elif end - start == 1:
            tags[start] = f"S-{kind}"
        else:
            inner = "M" if scheme == "BMES" else "I"
            tags[start:end] = [f"B-{kind}"] + [f"{inner}-{kind}"] * (end - start - 2) + [f"E-{kind}"]
        last_end, last_type = end, kind
    return tags


def convert_tags(tags: Sequence[str], scheme: str) -> list[str]:
    """Any tag sequence -> the same entities in `scheme` (also repairs invalid sequences, conlleval-style).

    Example: convert_tags(["I-PER", "I-PER", "B-PER"], "IOB2") -> ["B-PER", "I-PER", "B-PER"]
    """
    return spans_to_tags(tags_to_spans(tags), len(tags), scheme)


def detect_scheme(sequences: Iterable[Sequence[str]]) -> str:
    """The scheme a corpus is written in: BMES if it has M-, BIOES if E-/S-, IOB1 if an entity opens with I-."""
    prefixes: set[str] = set()
    opens_with_i = False
    for tags in sequences:
        prev, prev_type = "O", ""
        for tag in tags:
            cur, cur_type = split_tag(tag)
            prefixes.add(cur)
            if cur == "I" and (prev == "O" or prev_type != cur_type):
                opens_with_i = True
            prev, prev_type = cur, cur_type
    if "M" in prefixes:
        return "BMES"
    if prefixes & {"E", "S"}:
        return "BIOES"
    return "IOB1" if opens_with_i else "IOB2"


def entity_types(sequences: Iterable[Sequence[str]]) -> list[str]:
    """Sorted entity types found in the tags. Example: entity_types([["B-PER", "O", "I-LOC"]]) -> ["LOC", "PER"]."""
    return sorted({split_tag(t)[1] for tags in sequences for t in tags} - {""})


def labels_for(types: Iterable[str], scheme: str) -> tuple[str, ...]:
    """Every label of `scheme` over `types`, 'O' first, so that each prefix has a row in the classifier.

    Example: labels_for(["PER"], "BIO") -> ("O", "B-PER", "I-PER")
    """
    prefixes = PREFIXES[scheme_name(scheme)]
    return ("O", *(f"{p}-{t}" for t in sorted(set(types)) for p in prefixes))


def allowed_transitions(labels: Sequence[str], scheme: str) -> Transitions:
    """The moves `scheme` allows among `labels`; a CRF restricted to them only outputs valid sequences."""
    scheme = scheme_name(scheme)
    parsed = [split_tag(label) for label in labels]
    bad = sorted({p for p, _ in parsed} - {"O", *PREFIXES[scheme]})
    if bad:
        raise ValueError(f"labels with prefixes {bad} do not belong to scheme {scheme}")

    def pair(a: tuple[str, str], b: tuple[str, str]) -> bool:
        (pa, ta), (pb, tb) = a, b
        if scheme == "IOB2":
            return pb != "I" or (pa in ("B", "I") and ta == tb)
        if scheme == "IOB1":  # B- only separates two adjacent entities of one type
            return pb != "B" or (pa in ("B", "I") and ta == tb)
        inside = ("I", "M")
        if pa in ("B", *inside):  # an open entity must continue or close with its own type
            return pb in (*inside, "E") and ta == tb
        return pb in ("O", "B", "S")

    start_bad = {"IOB2": ("I",), "IOB1": ("B",)}.get(scheme, ("I", "M", "E"))
    end_ok = ("O", "I", "B") if scheme in ("IOB1", "IOB2") else ("O", "E", "S")
    return Transitions(
        start=[p not in start_bad for p, _ in parsed],
        pairs=[[pair(a, b) for b in parsed] for a in parsed],
        end=[p in end_ok for p, _ in parsed],
    )


def is_valid(tags: Sequence[str], scheme: str) -> bool:
    """Whether `tags` is a well-formed sequence in `scheme` (no I- after O in IOB2, no open B- in BIOES, ...)."""
    if not tags:
        return True
    labels = sorted(set(tags))
    index = {label: i for i, label in enumerate(labels)}
    try:
        moves = allowed_transitions(labels, scheme)
    except ValueError:
        return False
    ids = [index[t] for t in tags]
    return (
        moves.start[ids[0]]
        and moves.end[ids[-1]]
        and all(moves.pairs[a][b] for a, b in zip(ids, ids[1:], strict=False))
    )
