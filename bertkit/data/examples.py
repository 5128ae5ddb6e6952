"""Examples: what a reader yields, before any tokenizer sees it. Frozen, plain, JSON-able.

`source` is "file:line" (or "file#index") so every later error can name where the example came from.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TextExample:
    """Single sentence or sentence pair; label is a class name, a float (regression) or a tuple (multi-label)."""

    text: str
    text_pair: str | None = None
    label: str | float | tuple[str, ...] | None = None
    source: str = ""


@dataclass(frozen=True)
class TaggedExample:
    """A sentence as words with one tag each (tags None at prediction time).

    text/offsets are set when the words come from a raw string, so entities map back to characters.
    """

    words: tuple[str, ...]
    tags: tuple[str, ...] | None = None
    text: str | None = None
    offsets: tuple[tuple[int, int], ...] | None = None  # (start, end) of each word in text
    source: str = ""


@dataclass(frozen=True)
class Answer:
    text: str
    start: int  # character offset into the context


@dataclass(frozen=True)
class QAExample:
    qid: str
    question: str
    context: str
    answers: tuple[Answer, ...] = ()
    is_impossible: bool = False
    title: str = ""
    source: str = ""


@dataclass(frozen=True)
class ChoiceExample:
    """A context (+ optional question) and N candidate endings; label is the index of the right one."""

    context: str
    choices: tuple[str, ...]
    question: str = ""
    label: int | None = None
    source: str = ""
