"""Multiple-choice files -> ChoiceExample: Social IQa (JSONL + labels file), C3 (JSON) and generic JSONL.

SWAG's CSV layout lives in ``swag.py``. Labels are always 0-based indices into ``choices``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bertkit.data.datafile import RecordError, dumps, field, parse_records
from bertkit.data.examples import ChoiceExample
from bertkit.data.validate import Reject
from bertkit.textfile import load_json, numbered_lines


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
    labels: list[int | str] | None = None  # a 0-based index, or why the labels file's line is not one
    if labels_path is not None:
        labels_path = Path(labels_path)
        if not labels_path.is_absolute() and (path.parent / labels_path).is_file():
            labels_path = path.parent / labels_path
        if not labels_path.is_file():
            raise FileNotFoundError(
                f"labels file {labels_path} for {path} does not exist (looked beside it too); Social IQa keeps "
                "1-based answer indices in a separate file such as dev-labels.lst"
            )
        labels = []
        for n, value, problem in numbered_lines(labels_path, "labels file"):
            value = value.strip()
            if not value:
                continue
            if problem is None and (not value.isdigit() or not 1 <= int(value) <= len(choice_fields)):
                problem = f"label {value!r} is not a 1-based answer index in 1..{len(choice_fields)}"
            labels.append(f"{labels_path}:{n}: {problem}" if problem else int(value) - 1)
    count = 0

    def build(obj: dict[str, Any], where: str) -> ChoiceExample:
        if labels is not None and count >= len(labels):
            raise ValueError(f"{labels_path} has {len(labels)} labels but {path} has more examples (at {where})")
        label = None if labels is None else labels[count]
        if isinstance(label, str):
            raise RecordError(label)
        return ChoiceExample(
            context=field(obj, "context"),
            question=field(obj, "question"),
            choices=tuple(field(obj, c) for c in choice_fields),
            label=label,
            source=where,
        )

    for item in parse_records(path, build, "Social IQa file"):
        yield item
        count += 1  # a Reject takes its label line too: the two files pair up line by line
    if labels is not None and count != len(labels):
        raise ValueError(f"{labels_path} has {len(labels)} labels but {path} has {count} examples")


def read_c3(path: str | Path) -> Iterator[ChoiceExample | Reject]:
    """C3's JSON: a list of ``[[context lines], [{"question", "choice": [...], "answer"}], id]``.

    The context lines are joined with newlines; ``answer`` is the text of the right choice (absent in test).
    ``source`` is ``file#i.questions[k]``; a bad question (or document) is a Reject there.
    """
    path = Path(path)
    doc = load_json(path, "C3's list of [context lines, questions, id]", "C3 file")
    if not isinstance(doc, list):
        raise ValueError(f"{path}: expected a JSON list of [context lines, questions, id] (C3 layout)")
    for i, item in enumerate(doc):
        where = f"{path}#{i}"
        if (
            not isinstance(item, list)
            or len(item) < 2
            or not isinstance(item[0], list)
            or not all(isinstance(line, str) for line in item[0])
            or not isinstance(item[1], list)
        ):
            yield Reject(where, dumps(item), "expected [[context lines], [questions], id] (C3 layout)")
            continue
        context = "\n".join(item[0])
        for k, q in enumerate(item[1]):
            try:
                yield _c3_question(q, context, f"{where}.questions[{k}]")
            except RecordError as err:
                yield Reject(f"{where}.questions[{k}]", dumps(q), str(err))


def _c3_question(q: Any, context: str, at: str) -> ChoiceExample:
    choices = q.get("choice") if isinstance(q, dict) else None
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
        raise RecordError("'choice' should be a list of at least two strings")
    label = None
    if "answer" in q:
        if q["answer"] not in choices:
            raise RecordError(f"answer {q['answer']!r} is not one of the choices {choices}")
        label = choices.index(q["answer"])
    return ChoiceExample(context=context, question=field(q, "question"), choices=tuple(choices), label=label,
                         source=at)  # fmt: skip


def read_choice_jsonl(
    path: str | Path,
    *,
    context: str = "context",
    question: str = "question",
    choices: str = "choices",
    label: str = "label",
) -> Iterator[ChoiceExample | Reject]:
    """Generic JSONL: ``{"context", "question", "choices": [...], "label"}``; any number of choices.

    ``label`` is a 0-based index or the text of the right choice; missing means unlabelled. ``question``
    may be absent. A line that breaks these rules is a Reject.
    """

    def build(obj: dict[str, Any], where: str) -> ChoiceExample:
        options = obj.get(choices)
        if not isinstance(options, list) or len(options) < 2 or not all(isinstance(c, str) for c in options):
            raise RecordError(f"field {choices!r} should be a list of at least two strings")
        value = obj.get(label)
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(options):
                raise RecordError(f"label {value} is outside 0..{len(options) - 1} (labels are 0-based)")
            index = value
        elif isinstance(value, str):
            if value not in options:
                raise RecordError(
                    f"label {value!r} is not one of the choices (give the text or a 0-based index)"
                )
            index = options.index(value)
        elif value is None:
            index = None
        else:
            raise RecordError(f"label {value!r} is neither a choice index nor a choice text")
        return ChoiceExample(
            context=field(obj, context),
            question=field(obj, question) if question in obj else "",
            choices=tuple(options),
            label=index,
            source=where,
        )

    return parse_records(path, build, "multiple-choice file")
