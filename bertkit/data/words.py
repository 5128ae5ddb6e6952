"""Split raw text into the words a tagger labels, keeping each word's character offsets.

Two modes: "chars" (one word per non-space character: the Chinese NER corpora, MSRA and People's Daily,
label characters) and "words" (CoNLL-like words: letters/digits runs that may hold inner `-`, `.`, `&`,
`/` such as "1996-08-30", "3.5", "AT&T", initials like "U.S.", every CJK character and every other
symbol on its own). Offsets make `text[start:end] == word` hold for every word, so entities found over
words map back to exact characters.
"""

from __future__ import annotations

import re

from bertkit.data.examples import TaggedExample

SPLIT_MODES = ("words", "chars")
# CJK ideographs and compatibility ranges (Google's _is_chinese_char), each one a word, as BERT treats them.
_CJK = (
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002ebef\U0002f800-\U0002fa1f"
)
_ALNUM = rf"[^\W_{_CJK}]"
_WORD = re.compile(rf"(?:[A-Za-z]\.){{2,}}|{_ALNUM}+(?:[-.&/]{_ALNUM}+)*|\S")


def split_words(text: str, mode: str = "words") -> list[tuple[str, int, int]]:
    """(word, start, end) for each word of `text`.

    Example: split_words("U.S. 3.5%", "words") -> [("U.S.", 0, 4), ("3.5", 5, 8), ("%", 8, 9)]
    """
    if mode == "chars":
        return [(c, i, i + 1) for i, c in enumerate(text) if not c.isspace()]
    if mode == "words":
        return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]
    raise ValueError(f"unknown word split mode {mode!r}; use one of {SPLIT_MODES}")


def cut_at(words: list[tuple[str, int, int]], cuts: set[int]) -> list[tuple[str, int, int]]:
    """Split words at the character positions in `cuts` (entity boundaries inside a word), losing nothing.

    Example: cut_at([("Paris-based", 0, 11)], {5}) -> [("Paris", 0, 5), ("-based", 5, 11)]
    """
    out = []
    for word, start, end in words:
        inner = sorted(c for c in cuts if start < c < end)
        for a, b in zip([start, *inner], [*inner, end], strict=True):
            out.append((word[a - start : b - start], a, b))
    return out


def example_from_text(text: str, mode: str = "words", source: str = "") -> TaggedExample:
    """A TaggedExample (tags None) over the words of a raw text, with offsets into it."""
    words = split_words(text, mode)
    return TaggedExample(
        words=tuple(w for w, _, _ in words),
        text=text,
        offsets=tuple((s, e) for _, s, e in words),
        source=source,
    )


def join_words(
    words: tuple[str, ...] | list[str], joiner: str = " "
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Text of pre-split words joined by `joiner`, and each word's offsets in it.

    Example: join_words(["EU", "rejects"]) -> ("EU rejects", ((0, 2), (3, 10)))
    """
    offsets, pos = [], 0
    for w in words:
        offsets.append((pos, pos + len(w)))
        pos += len(w) + len(joiner)
    return joiner.join(words), tuple(offsets)
