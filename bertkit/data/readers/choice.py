"""Multiple-choice files -> ChoiceExample: Social IQa (JSONL + labels file), C3 (JSON) and generic JSONL.

SWAG's CSV layout lives in ``swag.py``. Labels are always 0-based indices into ``choices``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bertkit.data.examples import ChoiceExample


def _open(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"file {path} does not exist")
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with _open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({err})") from err
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{line_no}: expected a JSON object")
            yield line_no, obj


def _text(obj: dict, key: str, where: str) -> str:
    if key not in obj:
        raise ValueError(f"{where}: missing field {key!r}")
    if not isinstance(obj[key], str):
        raise ValueError(f"{where}: field {key!r} should be a string, got {obj[key]!r:.80}")
    return obj[key]


def read_socialiqa(
    path: str | Path,
    labels_path: str | Path | None = None,
    *,
    choice_fields: Sequence[str] = ("answerA", "answerB", "answerC"),
) -> Iterator[ChoiceExample]:
    """AI2's Social IQa layout: JSONL with context, question, answerA-C, and a labels file of 1-based indices.

    Without ``labels_path`` the examples are unlabelled; a relative ``labels_path`` is looked up beside ``path``
    first (presets name ``dev-labels.lst`` for ``dev.jsonl``). The two files must have the same number of lines.
    """
    path = Path(path)
    labels: list[int] | None = None
    if labels_path is not None:
        labels_path = Path(labels_path)
        if not labels_path.is_absolute() and (path.parent / labels_path).is_file():
            labels_path = path.parent / labels_path
        if not labels_path.is_file():
            raise FileNotFoundError(
                f"labels file {labels_path} for {path} does not exist (looked beside it too); Social IQa keeps "
                "1-based answer indices in a separate file such as dev-labels.lst"
            )
        with _open(labels_path) as f:
            raw = [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]
        labels = []
        for n, value in raw:
            if not value.isdigit() or not 1 <= int(value) <= len(choice_fields):
                raise ValueError(
                    f"{labels_path}:{n}: label {value!r} is not a 1-based answer index in 1..{len(choice_fields)}"
                )
            labels.append(int(value) - 1)
    count = 0
    for line_no, obj in _json_lines(path):
        where = f"{path}:{line_no}"
        if labels is not None and count >= len(labels):
            raise ValueError(
                f"{labels_path} has {len(labels)} labels but {path} has more examples (at line {line_no})"
            )
        yield ChoiceExample(
            context=_text(obj, "context", where),
            question=_text(obj, "question", where),
            choices=tuple(_text(obj, c, where) for c in choice_fields),
            label=None if labels is None else labels[count],
            source=where,
        )
        count += 1
    if labels is not None and count != len(labels):
        raise ValueError(f"{labels_path} has {len(labels)} labels but {path} has {count} examples")


def read_c3(path: str | Path) -> Iterator[ChoiceExample]:
    """C3's JSON: a list of ``[[context lines], [{"question", "choice": [...], "answer"}], id]``.

    The context lines are joined with newlines; ``answer`` is the text of the right choice (absent in test).
    """
    path = Path(path)
    with _open(path) as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err}); expected C3's list of documents") from err
    if not isinstance(doc, list):
        raise ValueError(f"{path}: expected a JSON list of [context lines, questions, id] (C3 layout)")
    for i, item in enumerate(doc):
        where = f"{path}#{i}"
        if (
            not isinstance(item, list)
            or len(item) < 2
            or not isinstance(item[0], list)
            or not isinstance(item[1], list)
        ):
            raise ValueError(f"{where}: expected [[context lines], [questions], id] (C3 layout)")
        context = "\n".join(item[0])
        for k, q in enumerate(item[1]):
            at = f"{where}.questions[{k}]"
            choices = q.get("choice") if isinstance(q, dict) else None
            if (
                not isinstance(choices, list)
                or len(choices) < 2
                or not all(isinstance(c, str) for c in choices)
            ):
                raise ValueError(f"{at}: 'choice' should be a list of at least two strings")
            label = None
            if "answer" in q:
                if q["answer"] not in choices:
                    raise ValueError(f"{at}: answer {q['answer']!r} is not one of the choices {choices}")
                label = choices.index(q["answer"])
            yield ChoiceExample(
                context=context,
                question=_text(q, "question", at),
                choices=tuple(choices),
                label=label,
                source=at,
            )


def read_choice_jsonl(
    path: str | Path,
    *,
    context: str = "context",
    question: str = "question",
    choices: str = "choices",
    label: str = "label",
) -> Iterator[ChoiceExample]:
    """Generic JSONL: ``{"context", "question", "choices": [...], "label"}``; any number of choices.

    ``label`` is a 0-based index or the text of the right choice; missing means unlabelled. ``question``
    may be absent.
    """
    path = Path(path)
    for line_no, obj in _json_lines(path):
        where = f"{path}:{line_no}"
        options = obj.get(choices)
        if not isinstance(options, list) or len(options) < 2 or not all(isinstance(c, str) for c in options):
            raise ValueError(f"{where}: field {choices!r} should be a list of at least two strings")
        index = None
        value = obj.get(label)
        if isinstance(value, bool):
            raise ValueError(f"{where}: label {value!r} is neither a choice index nor a choice text")
        if isinstance(value, int):
            if not 0 <= value < len(options):
                raise ValueError(
                    f"{where}: label {value} is outside 0..{len(options) - 1} (labels are 0-based)"
                )
            index = value
        elif isinstance(value, str):
            if value not in options:
                raise ValueError(
                    f"{where}: label {value!r} is not one of the choices (give the text or a 0-based index)"
                )
            index = options.index(value)
        elif value is not None:
            raise ValueError(f"{where}: label {value!r} is neither a choice index nor a choice text")
        yield ChoiceExample(
            context=_text(obj, context, where),
            question=_text(obj, question, where) if question in obj else "",
            choices=tuple(options),
            label=index,
            source=where,
        )
