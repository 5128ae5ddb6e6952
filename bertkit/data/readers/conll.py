"""CoNLL-style column files: one token per line, a blank line between sentences (NER).

Covers CoNLL-2003 (`EU NNP B-NP B-ORG`: word, POS, chunk, tag; choose the tag column) and the Chinese
one-character-per-line corpora (`中 B-ORG`, MSRA, People's Daily: pass joiner="" so the sentence text is
the characters themselves). `.gz` files are read transparently. Tags are returned as written; the task
converts them to its scheme.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from itertools import chain
from pathlib import Path

from bertkit.data.examples import TaggedExample
from bertkit.data.tag_schemes import split_tag
from bertkit.data.validate import Reject
from bertkit.data.words import join_words
from bertkit.textfile import Line, numbered_lines

# Columns are separated by spaces or tabs only: a full-width space (U+3000) can be a token of its own.
_COLUMNS = re.compile(r"[ \t]+")


def read_conll(
    path: str | Path,
    *,
    word_column: int = 0,
    tag_column: int | None = -1,
    joiner: str = " ",
    docstart: str | None = "-DOCSTART-",
) -> Iterator[TaggedExample | Reject]:
    """Yield one TaggedExample per sentence, with `text` = words joined by `joiner` and word offsets into it.

    tag_column None reads words only (prediction input). Lines whose word is `docstart` are document
    separators and are skipped. Every line of a sentence must have the same number of columns; a sentence
    with a bad line is one Reject (source: the bad line; row: the sentence's lines).
    """
    path = Path(path)
    sentence: list[Line] = []
    for line in chain(numbered_lines(path, "CoNLL file"), [Line(0, "", None)]):  # a blank line ends the last one
        if line.text.strip(" \t"):
            sentence.append(line)
        elif sentence:
            item = _sentence(path, sentence, word_column, tag_column, joiner, docstart)
            sentence = []
            if item is not None:
                yield item


def _sentence(
    path: Path, lines: list[Line], word_column: int, tag_column: int | None, joiner: str, docstart: str | None
) -> TaggedExample | Reject | None:
    """The lines of one sentence (no blank line among them) -> TaggedExample, Reject at its first bad line, or
    None when they are only document separators."""
    words: list[str] = []
    tags: list[str] = []
    width: int | None = None
    first = 0
    for number, raw, problem in lines:
        line = raw.strip(" \t")
        cols = _COLUMNS.split(line)
        if docstart is not None and cols[0] == docstart:
            continue
        if problem is None and width is not None and len(cols) != width:
            problem = (
                f"{len(cols)} columns where the sentence's earlier lines have {width}; "
                "a token must not contain spaces, and sentences are separated by one blank line"
            )
        width = len(cols)
        for name, col in (("word_column", word_column), ("tag_column", tag_column)):
            if problem is None and col is not None and not -len(cols) <= col < len(cols):
                problem = f"{name}={col} but the line has only {len(cols)} columns: {line!r}"
        if problem is None and tag_column is not None:
            try:
                split_tag(cols[tag_column])
            except ValueError as err:
                problem = str(err)
        if problem is not None:
            return Reject(f"{path}:{number}", "\n".join(text for _, text, _ in lines), problem)
        first = first or number
        words.append(cols[word_column])
        if tag_column is not None:
            tags.append(cols[tag_column])
    if not words:  # only -DOCSTART- lines
        return None
    text, offsets = join_words(words, joiner)
    return TaggedExample(
        words=tuple(words),
        tags=tuple(tags) if tag_column is not None else None,
        text=text,
        offsets=offsets,
        source=f"{path}:{first}",
    )


def write_conll(path: str | Path, examples: list[tuple[list[str], list[str]]]) -> None:
    """Write (words, tags) sentences as `word tag` lines with blank lines between sentences."""
    with Path(path).open("w", encoding="utf-8") as f:
        for words, tags in examples:
            for word, tag in zip(words, tags, strict=True):
                f.write(f"{word} {tag}\n")
            f.write("\n")
