"""JSON lines (CLUE's *.json / *.jsonl, users' own): one object per line, field names given as arguments."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bertkit.data.datafile import json_records
from bertkit.data.examples import TextExample
from bertkit.data.validate import Reject

logger = logging.getLogger(__name__)


def json_label(value: Any) -> str | float | tuple[str, ...] | None:
    """A JSON label as TextExample holds it: names as str, numbers as float unless integral, lists as tuples.

    Example: json_label(1) -> "1"; json_label(4.25) -> 4.25; json_label(["a", "b"]) -> ("a", "b")
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return value
    if isinstance(value, list):
        return tuple(str(v) if not isinstance(v, str) else v for v in value)
    raise TypeError(f"a label must be a string, number or list, found {type(value).__name__}")


def read_jsonl(
    path: str | Path,
    *,
    text: str = "text",
    text_pair: str | None = None,
    label: str | None = "label",
    where: Mapping[str, Any] | None = None,
    label_map: Mapping[str, str] | None = None,
    skip_labels: Sequence[str] = (),
    label_optional: bool = False,
) -> Iterator[TextExample | Reject]:
    """Objects -> TextExample(text, text_pair, label, source="file:line") or Reject.

    A missing text field is a Reject; a missing label is one too unless label_optional (unlabelled test sets).
    """
    skipped = 0
    for source, raw, obj, problem in json_records(path):
        if problem:
            yield Reject(source, raw, problem)
            continue
        assert obj is not None
        if where and any(obj.get(k) != v for k, v in where.items()):
            continue
        values: dict[str, Any] = {}
        for key, name in (("text", text), ("text_pair", text_pair)):
            if name is None:
                values[key] = None
            elif name not in obj:
                problem = f"no field {name!r} ({key}); fields are {', '.join(map(repr, obj))}"
                break
            elif not isinstance(obj[name], str):
                problem = f"field {name!r} must be a string, found {type(obj[name]).__name__}"
                break
            else:
                values[key] = obj[name]
        if problem is None and label is not None:
            if label in obj:
                try:
                    values["label"] = json_label(obj[label])
                except TypeError as err:
                    problem = f"field {label!r}: {err}"
            elif not label_optional:
                problem = f"no field {label!r} (label); fields are {', '.join(map(repr, obj))}"
        if problem:
            yield Reject(source, raw, problem)
            continue
        value = values.get("label")
        if isinstance(value, str):
            if value in skip_labels:
                skipped += 1
                continue
            if label_map:
                value = label_map.get(value, value)
        yield TextExample(values["text"], values["text_pair"], value, source)
    if skipped:
        logger.info(
            "%s: skipped %d row(s) labelled %s (the dataset's mark for no label)", path, skipped, skip_labels
        )
