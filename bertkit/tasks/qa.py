"""Extractive QA (SQuAD v1.1 / v2.0, CMRC 2018): question + context windows, spans mapped through offsets.

Features follow Google's run_squad.py: the question keeps its first ``max_query_length`` tokens; the context is
cut into windows of what is left of ``max_seq_length``, each window starting ``doc_stride`` tokens after the
previous one (Google's meaning: the step, not the overlap). A training answer maps to tokens through the
tokenizer's character offsets; a window that does not hold the whole answer points at [CLS] (index 0).
Decoding scores n-best (start, end) pairs across an example's windows, only from windows where the start
token has its most context, and cuts answers out of the original context by offsets, so they are exact
substrings (Chinese without spaces too). v2.0 compares the null ([CLS]) score with the best span.

Shapes: B batch (windows), T tokens.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertkit.data.collate import encoder_inputs
from bertkit.data.examples import Answer, QAExample
from bertkit.data.readers.squad import NOT_IN_CONTEXT, anchor_answer
from bertkit.evaluation.qa import cmrc2018, squad_v1, squad_v2
from bertkit.model.heads import SpanLogits
from bertkit.tasks.base import Batch, Feature, TaskBase
from bertkit.tokenization import Tokenizer
from bertkit.weights.load import load_for

logger = logging.getLogger(__name__)

METRICS = ("squad", "squad_v2", "cmrc2018")
IGNORE = -100  # target of a window whose example has no answer located in its context: no loss
NO_SPAN_DIFF = 1e4  # null-score difference when no valid span exists at all (always "no answer")
_NULL = (-1, -1)  # training target of an unanswerable question: [CLS] in every window


def context_windows(num_tokens: int, room: int, doc_stride: int) -> list[tuple[int, int]]:
    """(start, length) windows over ``num_tokens`` context tokens, ``room`` tokens each, starts ``doc_stride`` apart.

    The step is capped at the window length, so no token is skipped. Example:
    ``context_windows(10, 4, 3) -> [(0, 4), (3, 4), (6, 4)]``
    """
    spans, start = [], 0
    while True:
        length = min(room, num_tokens - start)
        spans.append((start, length))
        if start + length >= num_tokens:
            return spans
        start += min(length, doc_stride)


def max_context_flags(spans: Sequence[tuple[int, int]]) -> list[list[bool]]:
    """For each window, whether each of its tokens sees the most context there (Google's _check_is_max_context).

    A token's score in a window is min(left, right context) + 0.01 * window length; the first best window wins.
    """
    best: dict[int, tuple[float, int]] = {}
    for w, (start, length) in enumerate(spans):
        for p in range(start, start + length):
            score = min(p - start, start + length - 1 - p) + 0.01 * length
            if p not in best or score > best[p][0]:
                best[p] = (score, w)
    return [
        [best[p][1] == w for p in range(start, start + length)] for w, (start, length) in enumerate(spans)
    ]


def answer_token_span(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """Context token indices (first, last) covering characters [start, end), or None when no token does.

    Example: ``answer_token_span([(0, 3), (4, 10), (11, 18)], 4, 18) -> (1, 2)``
    """
    first = next((i for i, (_, e) in enumerate(offsets) if e > start), None)
    last = next((i for i in range(len(offsets) - 1, -1, -1) if offsets[i][0] < end), None)
    if first is None or last is None or last < first:
        return None
    return first, last


def _training_answer(example: QAExample) -> Answer | None:
    return next((a for a in example.answers if a.start != NOT_IN_CONTEXT and a.text), None)


class QATask(TaskBase):
    """Extractive QA with BertForQuestionAnswering (transformers-compatible head).

    metric: squad (v1.1), squad_v2 (unanswerable questions, null score) or cmrc2018 (Chinese character-level).
    null_score_diff_threshold: v2.0 answers "" when null score - best span score exceeds it; the metrics
    also report the best threshold on the evaluated data (best_f1_thresh) to pass here next time.
    """

    name = "qa"
    main_metric = "f1"

    def __init__(
        self,
        metric: str = "squad",
        max_query_length: int = 64,
        doc_stride: int = 128,
        n_best_size: int = 20,
        max_answer_length: int = 30,
        null_score_diff_threshold: float = 0.0,
    ):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        for key, value in (("max_query_length", max_query_length), ("doc_stride", doc_stride),
                           ("n_best_size", n_best_size), ("max_answer_length", max_answer_length)):  # fmt: skip
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        self.metric = metric
        self.max_query_length = max_query_length
        self.doc_stride = doc_stride
        self.n_best_size = n_best_size
        self.max_answer_length = max_answer_length
        self.null_score_diff_threshold = float(null_score_diff_threshold)

    @property
    def with_negative(self) -> bool:
        return self.metric == "squad_v2"

    def build_model(self, model: str, *, from_finetuned: bool = False) -> tuple[nn.Module, Any]:
        return load_for(model, "question_answering", require_heads=from_finetuned)

    # ---- examples ------------------------------------------------------------------------------------
    def check(self, example: QAExample, labelled: bool = True) -> str | None:
        """Why the example cannot be used, or None."""
        if not example.question.strip():
            return "the question is empty"
        if not example.context.strip():
            return "the context is empty"
        if labelled and not self.with_negative:
            if example.is_impossible or not example.answers:
                return f"question {example.qid!r} has no answer; unanswerable questions need --task squad_v2"
        return None

    def example_from_dict(self, record: Mapping[str, Any], source: str = "") -> QAExample:
        """{"question", "context", "id" (optional), "answers": [{"text", "answer_start"}] (optional)}."""
        where = source or "input"
        if not isinstance(record, Mapping):
            raise ValueError(f"{where}: expected a JSON object with 'question' and 'context'")
        for key in ("question", "context"):
            if not isinstance(record.get(key), str):
                raise ValueError(f"{where}: field {key!r} must be a string")
        context = record["context"]
        answers = []
        for n, a in enumerate(record.get("answers") or []):
            if not isinstance(a, Mapping) or not isinstance(a.get("text"), str):
                raise ValueError(f"{where}: answers[{n}] must be an object with a string 'text'")
            answers.append(
                Answer(a["text"], anchor_answer(context, a["text"], int(a.get("answer_start", -1))))
            )
        return QAExample(
            qid=str(record.get("id", where)),
            question=record["question"],
            context=context,
            answers=tuple(answers),
            is_impossible=bool(record.get("is_impossible", "answers" in record and not answers)),
            source=where,
        )

    # ---- features ------------------------------------------------------------------------------------
    def features_batch(
        self, examples: Sequence[QAExample], tokenizer: Tokenizer, max_seq_length: int
    ) -> list[list[Feature]]:
        """One tokenizer call for all questions and (distinct) contexts; a list of window features per example."""
        contexts = list(dict.fromkeys(e.context for e in examples))
        encodings = tokenizer.encode_batch([e.question for e in examples] + contexts) if examples else []
        by_context = dict(zip(contexts, encodings[len(examples) :], strict=True))
        return [
            self._windows(e, q.ids[1:-1], by_context[e.context], tokenizer, max_seq_length)
            for e, q in zip(examples, encodings[: len(examples)], strict=True)
        ]

    def features(self, example: QAExample, tokenizer: Tokenizer, max_seq_length: int) -> list[Feature]:
        return self.features_batch([example], tokenizer, max_seq_length)[0]

    def _windows(
        self, example: QAExample, q_ids: list[int], ctx: Any, tokenizer: Tokenizer, max_seq_length: int
    ) -> list[Feature]:
        q_ids = q_ids[: self.max_query_length]
        c_ids, c_offsets = ctx.ids[1:-1], ctx.offsets[1:-1]
        room = max_seq_length - len(q_ids) - tokenizer.num_special_tokens(pair=True)
        if room < 1:
            raise ValueError(
                f"max_seq_length={max_seq_length} leaves no room for the context after a {len(q_ids)}-token "
                "question; raise max_seq_length or lower max_query_length"
            )
        spans = context_windows(len(c_ids), room, self.doc_stride)
        flags = max_context_flags(spans)
        target = self._target_tokens(example, c_offsets)
        # index of the first context token in every window: after [CLS] q [SEP] (RoBERTa: <s> q </s></s>)
        first = len(q_ids) + tokenizer.num_special_tokens(pair=True) - 1
        out = []
        for (start, length), max_ctx in zip(spans, flags, strict=True):
            ids, type_ids = tokenizer.with_specials(q_ids, c_ids[start : start + length])
            feat: Feature = {
                "input_ids": ids,
                "token_type_ids": type_ids,
                "context_start": first,
                "offsets": c_offsets[start : start + length],
                "max_context": max_ctx,
            }
            if target is not None:
                if target == IGNORE or target == _NULL:
                    feat["start_positions"] = feat["end_positions"] = IGNORE if target == IGNORE else 0
                elif start <= target[0] and target[1] < start + length:
                    feat["start_positions"] = first + target[0] - start
                    feat["end_positions"] = first + target[1] - start
                else:
                    feat["start_positions"] = feat["end_positions"] = 0  # answer not (wholly) in this window
            out.append(feat)
        return out

    def _target_tokens(
        self, example: QAExample, offsets: Sequence[tuple[int, int]]
    ) -> tuple[int, int] | int | None:
        """Context token span of the training answer; _NULL for unanswerable; IGNORE when unlocatable; None unlabelled."""
        if example.is_impossible:
            return _NULL if self.with_negative else IGNORE
        if not example.answers:
            return None
        answer = _training_answer(example)
        if answer is None:
            return IGNORE
        span = answer_token_span(offsets, answer.start, answer.start + len(answer.text))
        return IGNORE if span is None else span

    def collate(self, features: Sequence[Feature]) -> Batch:
        batch = encoder_inputs(features)
        if all("start_positions" in f for f in features):
            batch["start_positions"] = torch.tensor([f["start_positions"] for f in features])
            batch["end_positions"] = torch.tensor([f["end_positions"] for f in features])
        return batch

    # ---- model ---------------------------------------------------------------------------------------
    def forward(self, model: nn.Module, batch: Batch) -> SpanLogits:
        """-> SpanLogits, (B, T) each; padding positions get the lowest value so they are never picked."""
        out = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        pad = batch["attention_mask"] == 0
        low = torch.finfo(out.start_logits.dtype).min
        return SpanLogits(out.start_logits.masked_fill(pad, low), out.end_logits.masked_fill(pad, low))

    def loss(self, outputs: SpanLogits, batch: Batch) -> Tensor:
        """Mean of the start and end cross-entropies (Google / transformers); IGNORE targets add nothing."""
        starts, ends = batch["start_positions"], batch["end_positions"]
        counted = (starts != IGNORE).sum().clamp(min=1)
        start_loss = F.cross_entropy(
            outputs.start_logits.float(), starts, ignore_index=IGNORE, reduction="sum"
        )
        end_loss = F.cross_entropy(outputs.end_logits.float(), ends, ignore_index=IGNORE, reduction="sum")
        return (start_loss + end_loss) / (2 * counted)

    # ---- predictions ---------------------------------------------------------------------------------
    def decode(
        self, outputs: Sequence[SpanLogits], features: Sequence[Feature], examples: Sequence[Any]
    ) -> list[dict]:
        """One prediction per example: answer, its character start, the n-best list, and (v2.0) the null diff."""
        rows: list[list[tuple[Feature, list[float], list[float]]]] = [[] for _ in examples]
        k = 0
        for out in outputs:
            for start_row, end_row in zip(out.start_logits.tolist(), out.end_logits.tolist(), strict=True):
                feat = features[k]
                rows[feat["example_index"]].append((feat, start_row, end_row))
                k += 1
        return [self._decode_example(ex, windows) for ex, windows in zip(examples, rows, strict=True)]

    def _decode_example(
        self, example: QAExample, windows: list[tuple[Feature, list[float], list[float]]]
    ) -> dict:
        candidates: list[
            tuple[float, int, int, float, float]
        ] = []  # (score, char start, char end, start, end logit)
        null_score, null_logits = math.inf, (0.0, 0.0)
        for feat, start_logits, end_logits in windows:
            first, n = feat["context_start"], len(feat["offsets"])
            if start_logits[0] + end_logits[0] < null_score:  # the smallest null score over windows (Google)
                null_score, null_logits = start_logits[0] + end_logits[0], (start_logits[0], end_logits[0])
            ctx_start, ctx_end = start_logits[first : first + n], end_logits[first : first + n]
            top_s = sorted(range(n), key=lambda i: -ctx_start[i])[: self.n_best_size]
            top_e = sorted(range(n), key=lambda i: -ctx_end[i])[: self.n_best_size]
            for s in top_s:
                if not feat["max_context"][s]:
                    continue
                for e in top_e:
                    if e < s or e - s + 1 > self.max_answer_length:
                        continue
                    candidates.append(
                        (
                            ctx_start[s] + ctx_end[e],
                            feat["offsets"][s][0],
                            feat["offsets"][e][1],
                            ctx_start[s],
                            ctx_end[e],
                        )
                    )
        candidates.sort(key=lambda c: -c[0])
        nbest: list[dict[str, Any]] = []
        seen: set[str] = set()
        for score, cs, ce, sl, el in candidates:
            text = example.context[cs:ce]
            if text in seen:
                continue
            seen.add(text)
            nbest.append({"text": text, "start": cs, "score": score, "start_logit": sl, "end_logit": el})
            if len(nbest) == self.n_best_size:
                break
        best = nbest[0] if nbest else None
        if self.with_negative and windows and not any(e["text"] == "" for e in nbest):
            nbest.append(
                {
                    "text": "",
                    "start": -1,
                    "score": null_score,
                    "start_logit": null_logits[0],
                    "end_logit": null_logits[1],
                }
            )
        if nbest:
            top = max(e["score"] for e in nbest)
            weights = [math.exp(e["score"] - top) for e in nbest]
            for e, w in zip(nbest, weights, strict=True):
                e["probability"] = w / sum(weights)
        pred: dict[str, Any] = {
            "id": example.qid,
            "answer": best["text"] if best else "",
            "start": best["start"] if best else -1,
        }
        if self.with_negative:
            diff = null_score - best["score"] if best else NO_SPAN_DIFF
            pred["null_score_diff"] = diff
            pred["best_span"] = pred["answer"]
            if diff > self.null_score_diff_threshold:
                pred["answer"], pred["start"] = "", -1
        pred["nbest"] = nbest
        return pred

    def metrics(self, predictions: Sequence[dict], examples: Sequence[QAExample]) -> dict[str, float]:
        golds = {e.qid: [a.text for a in e.answers] for e in examples}
        if self.metric == "cmrc2018":
            return cmrc2018(golds, {p["id"]: p["answer"] for p in predictions})
        if self.metric == "squad":
            return squad_v1(golds, {p["id"]: p["answer"] for p in predictions})
        # the best non-null span of each question, with its null diff: the threshold search sees the model
        spans = {p["id"]: p["best_span"] for p in predictions}
        diffs = {p["id"]: p["null_score_diff"] for p in predictions}
        golds = {e.qid: [] if e.is_impossible else [a.text for a in e.answers] for e in examples}
        return squad_v2(golds, spans, na_probs=diffs, na_prob_thresh=self.null_score_diff_threshold)

    def save_predictions(self, predictions: Sequence[dict], folder: str | Path) -> list[Path]:
        """predictions.json (id -> answer) and nbest_predictions.json as the official tools read them;
        v2.0 adds null_odds.json (id -> null score diff) for evaluate-v2.0.py's --na-prob-file."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files = {
            "predictions.json": {p["id"]: p["answer"] for p in predictions},
            "nbest_predictions.json": {p["id"]: p["nbest"] for p in predictions},
        }
        if self.with_negative:
            files["null_odds.json"] = {p["id"]: p["null_score_diff"] for p in predictions}
        paths = []
        for name, content in files.items():
            path = folder / name
            path.write_text(json.dumps(content, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            paths.append(path)
        return paths
