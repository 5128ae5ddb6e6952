"""Extractive QA files -> QAExample: SQuAD-format JSON (v1.1, v2.0, CMRC 2018) and JSON lines.

Every answer's ``start`` is checked against its context. An answer whose text is elsewhere in the context
is re-anchored to the nearest occurrence; one whose text is not in the context at all (CMRC 2018 dev has
annotator-written references like that) keeps ``start = -1``: it still counts as a reference for the
metrics, but cannot be a training target. Both cases are logged with counts and question ids.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bertkit.data.examples import Answer, QAExample

logger = logging.getLogger(__name__)

NOT_IN_CONTEXT = -1  # Answer.start for a reference whose text does not occur in the context


def _open(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"QA file {path} does not exist")
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


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
        def ids(qids: list[str]) -> str:
            unique = list(dict.fromkeys(qids))
            return ", ".join(unique[:5]) + (" ..." if len(unique) > 5 else "")

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


def _field(obj: dict, key: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind):
        raise ValueError(
            f"{where}: field {key!r} should be {getattr(kind, '__name__', kind)}, got {value!r:.80}"
        )
    return value


def read_squad(path: str | Path) -> Iterator[QAExample]:
    """SQuAD-format JSON (``.json`` or ``.json.gz``): ``{"data": [{"title", "paragraphs": [{"context", "qas"}]}]}``.

    Reads v1.1, v2.0 (``is_impossible``; its ``plausible_answers`` are not references) and CMRC 2018.
    ``source`` is ``file#data[i].paragraphs[j].qas[k]``.
    """
    path = Path(path)
    with _open(path) as f:
        try:
            doc = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err}); expected SQuAD-format JSON") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ValueError(f"{path}: expected a JSON object with a 'data' list (SQuAD format)")
    log = _AnchorLog(path)
    for i, article in enumerate(doc["data"]):
        title = article.get("title", "") if isinstance(article, dict) else ""
        for j, para in enumerate(_field(article, "paragraphs", f"{path}#data[{i}]", list)):
            where = f"{path}#data[{i}].paragraphs[{j}]"
            context = _field(para, "context", where)
            for k, qa in enumerate(_field(para, "qas", where, list)):
                at = f"{where}.qas[{k}]"
                qid = str(_field(qa, "id", at, (str, int)))
                impossible = bool(qa.get("is_impossible", False))
                answers = []
                for n, ans in enumerate(qa.get("answers", [])):
                    text = _field(ans, "text", f"{at}.answers[{n}]")
                    start = _field(ans, "answer_start", f"{at}.answers[{n}]", int)
                    answers.append(log.answer(context, text, start, qid))
                if impossible and answers:
                    raise ValueError(f"{at}: is_impossible is true but the question has answers")
                yield QAExample(
                    qid=qid,
                    question=_field(qa, "question", at),
                    context=context,
                    answers=tuple(answers),
                    is_impossible=impossible,
                    title=title,
                    source=at,
                )
    log.report()


def _jsonl_answers(value: Any, where: str) -> list[tuple[str, int]]:
    """A list of {text, answer_start} objects, or the HF datasets layout {"text": [...], "answer_start": [...]}."""
    if isinstance(value, dict):
        texts, starts = value.get("text"), value.get("answer_start")
        if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
            raise ValueError(
                f"{where}: 'answers' as an object needs equal-length lists 'text' and 'answer_start'"
            )
        return list(zip(texts, starts, strict=True))
    if not isinstance(value, list):
        raise ValueError(f"{where}: 'answers' should be a list of {{text, answer_start}} objects")
    return [
        (_field(a, "text", f"{where} answers[{n}]"), _field(a, "answer_start", f"{where} answers[{n}]", int))
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
) -> Iterator[QAExample]:
    """One JSON object per line with a question, a context and (for training / scoring) answers.

    ``answers`` is a list of ``{"text", "answer_start"}`` or ``{"text": [...], "answer_start": [...]}``;
    an empty list marks an unanswerable question, a missing field a question without references.
    The id defaults to ``file:line``.
    """
    path = Path(path)
    log = _AnchorLog(path)
    with _open(path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not valid JSON ({err})") from err
            text = _field(obj, context, where)
            qid = str(obj.get(id, f"{path.name}:{line_no}"))
            refs = (
                [log.answer(text, t, s, qid) for t, s in _jsonl_answers(obj[answers], where)]
                if answers in obj
                else []
            )
            impossible = bool(obj.get(is_impossible, answers in obj and not refs))
            yield QAExample(
                qid=qid,
                question=_field(obj, question, where),
                context=text,
                answers=tuple(refs),
                is_impossible=impossible,
                source=where,
            )
    log.report()


def read_qa(path: str | Path) -> Iterator[QAExample]:
    """By extension: ``.jsonl`` (``.jsonl.gz``) as JSON lines, anything else as SQuAD-format JSON."""
    name = Path(path).name
    if name.endswith((".jsonl", ".jsonl.gz")):
        return read_qa_jsonl(path)
    return read_squad(path)
