"""CoNLL-style column files: one token per line, a blank line between sentences (NER).

Covers CoNLL-2003 (`EU NNP B-NP B-ORG`: word, POS, chunk, tag; choose the tag column) and the Chinese
one-character-per-line corpora (`中 B-ORG`, MSRA, People's Daily: pass joiner="" so the sentence text is
the characters themselves). `.gz` files are read transparently. Tags are returned as written; the task
converts them to its scheme.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from bertkit.data.examples import TaggedExample
from bertkit.data.tag_schemes import split_tag
from bertkit.data.words import join_words

# Columns are separated by spaces or tabs only: a full-width space (U+3000) can be a token of its own.
_COLUMNS = re.compile(r"[ \t]+")


def _open(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open(encoding="utf-8-sig")


def read_conll(
    path: str | Path,
    *,
    word_column: int = 0,
    tag_column: int | None = -1,
    joiner: str = " ",
    docstart: str | None = "-DOCSTART-",
) -> Iterator[TaggedExample]:
    """Yield one TaggedExample per sentence, with `text` = words joined by `joiner` and word offsets into it.

    tag_column None reads words only (prediction input). Lines whose word is `docstart` are document
    separators and are skipped. Every line of a sentence must have the same number of columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CoNLL file {path} does not exist")
    words: list[str] = []
    tags: list[str] = []
    first_line = 0
    width: int | None = None
    with _open(path) as f:
        for number, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n").strip(" \t")
            if not line:
                if words:
                    yield _example(words, tags, tag_column, joiner, f"{path}:{first_line}")
                words, tags, width = [], [], None
                continue
            cols = _COLUMNS.split(line)
            if docstart is not None and cols[0] == docstart:
                continue
            where = f"{path}:{number}"
            if width is not None and len(cols) != width:
                raise ValueError(
                    f"{where}: {len(cols)} columns where the sentence's earlier lines have {width}; "
                    "a token must not contain spaces, and sentences are separated by one blank line"
                )
            width = len(cols)
            for name, col in (("word_column", word_column), ("tag_column", tag_column)):
                if col is not None and not -len(cols) <= col < len(cols):
                    raise ValueError(
                        f"{where}: {name}={col} but the line has only {len(cols)} columns: {line!r}"
                    )
            if not words:
                first_line = number
            words.append(cols[word_column])
            if tag_column is not None:
                tag = cols[tag_column]
                try:
                    split_tag(tag)
                except ValueError as err:
                    raise ValueError(f"{where}: {err}") from None
                tags.append(tag)
    if words:
        yield _example(words, tags, tag_column, joiner, f"{path}:{first_line}")


def _example(
    words: list[str], tags: list[str], tag_column: int | None, joiner: str, source: str
) -> TaggedExample:
    text, offsets = join_words(words, joiner)
    return TaggedExample(
        words=tuple(words),
        tags=tuple(tags) if tag_column is not None else None,
        text=text,
        offsets=offsets,
        source=source,
    )


def write_conll(path: str | Path, examples: list[tuple[list[str], list[str]]]) -> None:
    """Write (words, tags) sentences as `word tag` lines with blank lines between sentences."""
    with Path(path).open("w", encoding="utf-8") as f:
        for words, tags in examples:
            for word, tag in zip(words, tags, strict=True):
                f.write(f"{word} {tag}\n")
            f.write("\n")
