"""JSON lines for tagging, in either of two shapes (field names are arguments):

- words and tags: `{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}`;
- text and character-offset entities: `{"text": "EU rejects", "entities": [{"start": 0, "end": 2, "type": "ORG"}]}`
  (an entity may also be `[start, end, type]`; a "text" key in it is checked against the characters).

Text is split into words by `split` ("words" or "chars", see bertkit.data.words); a word that straddles an
entity boundary is cut there, so no entity is lost to word splitting. Without tags/entities (prediction
input) the examples have tags None.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from bertkit.data.datafile import RecordError, parse_records
from bertkit.data.examples import TaggedExample
from bertkit.data.tag_schemes import Span, spans_to_tags, split_tag
from bertkit.data.validate import Reject
from bertkit.data.words import cut_at, join_words, split_words


def read_tagged_jsonl(
    path: str | Path,
    *,
    tokens_field: str = "tokens",
    tags_field: str = "tags",
    text_field: str = "text",
    entities_field: str = "entities",
    split: str = "words",
    scheme: str = "IOB2",
) -> Iterator[TaggedExample | Reject]:
    """Yield one TaggedExample per line (a Reject per bad line); entities given as offsets are written as tags
    in `scheme`."""
    build = partial(_example, tokens_field=tokens_field, tags_field=tags_field, text_field=text_field,
                    entities_field=entities_field, split=split, scheme=scheme)  # fmt: skip
    return parse_records(path, build, "JSONL file")


def example_from_record(
    record: dict[str, Any],
    where: str,
    *,
    tokens_field: str = "tokens",
    tags_field: str = "tags",
    text_field: str = "text",
    entities_field: str = "entities",
    split: str = "words",
    scheme: str = "IOB2",
) -> TaggedExample:
    """One JSON object -> TaggedExample; a bad one raises ValueError naming `where` ("file:line")."""
    try:
        return _example(record, where, tokens_field=tokens_field, tags_field=tags_field, text_field=text_field,
                        entities_field=entities_field, split=split, scheme=scheme)  # fmt: skip
    except RecordError as err:
        raise RecordError(f"{err}") from None


def _example(
    record: dict[str, Any],
    where: str,
    *,
    tokens_field: str,
    tags_field: str,
    text_field: str,
    entities_field: str,
    split: str,
    scheme: str,
) -> TaggedExample:
    if tokens_field in record:
        return _from_tokens(record, where, tokens_field, tags_field)
    if text_field in record:
        return _from_text(record, where, text_field, entities_field, split, scheme)
    raise RecordError(
        f"no {tokens_field!r} or {text_field!r} field (found {sorted(record)}); "
        "name your fields with tokens_field= / text_field="
    )


def _from_tokens(record: dict[str, Any], where: str, tokens_field: str, tags_field: str) -> TaggedExample:
    words = record[tokens_field]
    if not isinstance(words, list) or not all(isinstance(w, str) and w and not w.isspace() for w in words):
        raise RecordError(f"{tokens_field!r} must be a list of non-empty, non-blank strings")
    tags = record.get(tags_field)
    if tags is not None:
        if not isinstance(tags, list) or len(tags) != len(words):
            raise RecordError(
                f"{tags_field!r} must be a list with one tag per token "
                f"({len(words)} tokens, {len(tags) if isinstance(tags, list) else 'no list of'} tags)"
            )
        for i, tag in enumerate(tags):
            try:
                split_tag(str(tag))
            except ValueError as err:
                raise RecordError(f"{tags_field}[{i}]: {err}") from None
    text, offsets = join_words(words)
    return TaggedExample(tuple(words), None if tags is None else tuple(map(str, tags)), text, offsets, where)


def _entity(item: Any, where: str, i: int, text: str) -> Span:
    if isinstance(item, dict):
        kind = item.get("type", item.get("label"))
        start, end = item.get("start"), item.get("end")
    elif isinstance(item, list | tuple) and len(item) == 3:
        start, end, kind = item
    else:
        raise RecordError(
            f"entity {i} must be {{'start', 'end', 'type'}} or [start, end, type], got {item!r}"
        )
    if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= len(text):
        raise RecordError(
            f"entity {i} has start={start!r}, end={end!r}; need 0 <= start < end <= {len(text)}"
        )
    if not isinstance(kind, str) or not kind or kind == "O":
        raise RecordError(f"entity {i} needs a non-empty 'type' (e.g. 'PER')")
    if isinstance(item, dict) and "text" in item and item["text"] != text[start:end]:
        raise RecordError(
            f"entity {i} says text {item['text']!r} but text[{start}:{end}] is {text[start:end]!r}; "
            "offsets are character offsets (end exclusive) into the text"
        )
    if not text[start:end].strip():
        raise RecordError(f"entity {i} [{start}, {end}) covers only whitespace")
    return Span(kind, start, end)


def _from_text(
    record: dict[str, Any], where: str, text_field: str, entities_field: str, split: str, scheme: str
) -> TaggedExample:
    text = record[text_field]
    if not isinstance(text, str):
        raise RecordError(f"{text_field!r} must be a string")
    raw = record.get(entities_field)
    if raw is None:
        words = split_words(text, split)
        return TaggedExample(
            tuple(w for w, _, _ in words), None, text, tuple((s, e) for _, s, e in words), where
        )
    if not isinstance(raw, list):
        raise RecordError(f"{entities_field!r} must be a list of entities")
    entities = sorted(
        (_entity(item, where, i, text) for i, item in enumerate(raw)), key=lambda s: (s.start, s.end)
    )
    for a, b in zip(entities, entities[1:], strict=False):
        if b.start < a.end:
            raise RecordError(f"entities {a} and {b} overlap; nested entities are not supported")
    words = cut_at(split_words(text, split), {s.start for s in entities} | {s.end for s in entities})
    starts = {s: i for i, (_, s, _) in enumerate(words)}
    ends = {e: i + 1 for i, (_, _, e) in enumerate(words)}
    spans = []
    for ent in entities:
        # an entity may begin/end on whitespace padding: shrink it to the words inside
        inside = [i for i, (_, s, e) in enumerate(words) if s >= ent.start and e <= ent.end]
        first = starts.get(ent.start, inside[0] if inside else None)
        last = ends.get(ent.end, inside[-1] + 1 if inside else None)
        if first is None or last is None or first >= last:
            raise RecordError(f"entity {ent} does not cover any word of the text")
        spans.append(Span(ent.type, first, last))
    tags = spans_to_tags(spans, len(words), scheme)
    return TaggedExample(
        tuple(w for w, _, _ in words), tuple(tags), text, tuple((s, e) for _, s, e in words), where
    )
