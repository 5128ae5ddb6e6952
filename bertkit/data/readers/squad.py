"""Extractive QA files -> QAExample: SQuAD-format JSON (v1.1, v2.0, CMRC 2018) and JSON lines.

Every answer's ``start`` is checked against its context. An answer whose text is elsewhere in the context
is re-anchored to the nearest occurrence; one whose text is not in the context at all (CMRC 2018 dev has
annotator-written references like that) keeps ``start = -1``: it still counts as a reference for the
metrics, but cannot be a training target. Both cases are logged with counts and question ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bertkit.data.datafile import RecordError, dumps, field, parse_records
from bertkit.data.examples import Answer, QAExample
from bertkit.data.validate import Reject
from bertkit.textfile import load_json

logger = logging.getLogger(__name__)

NOT_IN_CONTEXT = -1  # Answer.start for a reference whose text does not occur in the context


def anchor_answer(context: str, text: str, start: int) -> int:
    """The start of ``text`` in ``context``: ``start`` when right, else the nearest occurrence, else -1.

    Example: ``anchor_answer("a b a", "a", 3) -> 4``
    """
    if 0 <= start and context[start : start + len(text)] == text:
        return start
    found, i = [], context.find(text)
    while text and i != -1:
        found.append(i)
        i = context.find(text, i + 1)
    if not found:
        return NOT_IN_CONTEXT
    return min(found, key=lambda j: (abs(j - start), j))


class _AnchorLog:
    """Counts re-anchored and unlocatable answers of one file, for one summary warning each."""

    def __init__(self, path: Path):
        self.path = path
        self.moved: list[str] = []
        self.lost: list[str] = []

    def answer(self, context: str, text: str, start: int, qid: str) -> Answer:
        fixed = anchor_answer(context, text, start)
        if fixed == NOT_IN_CONTEXT:
            self.lost.append(qid)
        elif fixed != start:
            self.moved.append(qid)
        return Answer(text=text, start=fixed)

    def report(self) -> None:
        if self.moved:
            logger.warning(
                "%s: %d answers did not sit at their answer_start and were re-anchored to the nearest "
                "occurrence of their text (question ids %s)",
                self.path,
                len(self.moved),
                ", ".join(self.moved[:5]) + (" ..." if len(self.moved) > 5 else ""),
            )
        if self.lost:
            logger.warning(
                "%s: %d answers do not occur in their context; they are kept as references for scoring but "
                "cannot be training targets (question ids %s)",
                self.path,
                len(self.lost),
                ", ".join(self.lost[:5]) + (" ..." if len(self.lost) > 5 else ""),
            )


def read_squad(path: str | Path) -> Iterator[QAExample | Reject]:
    """SQuAD-format JSON (``.json`` or ``.json.gz``): ``{"data": [{"title", "paragraphs": [{"context", "qas"}]}]}``.

    Reads v1.1, v2.0 (``is_impossible``; its ``plausible_answers`` are not references) and CMRC 2018.
    ``source`` is ``file#data[i].paragraphs[j].qas[k]``; a bad question is a Reject there (a bad paragraph or
    article one Reject at its own place).
    """
    path = Path(path)
    doc = load_json(path, "SQuAD-format JSON", "QA file")
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ValueError(f"{path}: expected a JSON object with a 'data' list (SQuAD format)")
    log = _AnchorLog(path)
    for i, article in enumerate(doc["data"]):
        title = article.get("title", "") if isinstance(article, dict) else ""
        try:
            paragraphs = field(article, "paragraphs", list)
        except RecordError as err:
            yield Reject(f"{path}#data[{i}]", dumps(article), str(err))
            continue
        for j, para in enumerate(paragraphs):
            where = f"{path}#data[{i}].paragraphs[{j}]"
            try:
                context, qas = field(para, "context"), field(para, "qas", list)
            except RecordError as err:
                yield Reject(where, dumps(para), str(err))
                continue
            for k, qa in enumerate(qas):
                try:
                    yield _squad_question(qa, context, title, f"{where}.qas[{k}]", log)
                except RecordError as err:
                    yield Reject(f"{where}.qas[{k}]", dumps(qa), str(err))
    log.report()


def _squad_question(qa: Any, context: str, title: str, at: str, log: _AnchorLog) -> QAExample:
    qid = str(field(qa, "id", (str, int)))
    question = field(qa, "question")
    impossible = bool(qa.get("is_impossible", False))
    refs = []
    for n, ans in enumerate(qa.get("answers", [])):
        refs.append((field(ans, "text", where=f"answers[{n}]"), field(ans, "answer_start", int, f"answers[{n}]")))
    if impossible and refs:
        raise RecordError("is_impossible is true but the question has answers")
    answers = tuple(log.answer(context, text, start, qid) for text, start in refs)
    return QAExample(qid=qid, question=question, context=context, answers=answers, is_impossible=impossible,
                     title=title, source=at)  # fmt: skip


def _jsonl_answers(value: Any) -> list[tuple[str, int]]:
    """A list of {text, answer_start} objects, or the HF datasets layout {"text": [...], "answer_start": [...]}."""
    if isinstance(value, dict):
        texts, starts = value.get("text"), value.get("answer_start")
        if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
            raise RecordError("'answers' as an object needs equal-length lists 'text' and 'answer_start'")
        return list(zip(texts, starts, strict=True))
    if not isinstance(value, list):
        raise RecordError("'answers' should be a list of {text, answer_start} objects")
    return [
        (field(a, "text", where=f"answers[{n}]"), field(a, "answer_start", int, f"answers[{n}]"))
        for n, a in enumerate(value)
    ]


def read_qa_jsonl(
    path: str | Path,
    *,
    question: str = "question",
    context: str = "context",
    answers: str = "answers",
    id: str = "id",  # noqa: A002 - the field name
    is_impossible: str = "is_impossible",
) -> Iterator[QAExample | Reject]:
    """One JSON object per line with a question, a context and (for training / scoring) answers.

    ``answers`` is a list of ``{"text", "answer_start"}`` or ``{"text": [...], "answer_start": [...]}``;
    an empty list marks an unanswerable question, a missing field a question without references.
    The id defaults to ``file:line``.
    """
    path = Path(path)
    log = _AnchorLog(path)

    def build(obj: dict[str, Any], where: str) -> QAExample:
        text, asked = field(obj, context), field(obj, question)
        qid = str(obj.get(id, f"{path.name}:{where.rsplit(':', 1)[1]}"))
        pairs = _jsonl_answers(obj[answers]) if answers in obj else []
        refs = [log.answer(text, t, s, qid) for t, s in pairs]
        impossible = bool(obj.get(is_impossible, answers in obj and not refs))
        return QAExample(qid=qid, question=asked, context=text, answers=tuple(refs), is_impossible=impossible,
                         source=where)  # fmt: skip

    yield from parse_records(path, build, "QA file")
    log.report()


def read_qa(path: str | Path) -> Iterator[QAExample | Reject]:
    """By extension: ``.jsonl`` (``.jsonl.gz``) as JSON lines, anything else as SQuAD-format JSON."""
    name = Path(path).name
    if name.endswith((".jsonl", ".jsonl.gz")):
        return read_qa_jsonl(path)
    return read_squad(path)
