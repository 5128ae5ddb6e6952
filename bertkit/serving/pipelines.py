"""Hugging Face pipeline shapes from a model's raw head scores: text classification, token classification, QA.

Pure functions over numpy arrays and token offsets. They follow transformers' pipelines
(pipelines/text_classification.py and token_classification.py) field by field, so a client written for
`pipeline(...)` or the HF Inference API reads bertkit's answers unchanged; the tests compare them with the
pipelines themselves on the same model. Shapes: N pieces (tokens without specials) of a text, L labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bertkit.tokenization.encoding import window_spans

FUNCTIONS = ("softmax", "sigmoid", "none")
STRATEGIES = ("none", "simple", "first", "average", "max")


def softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ---- text classification ---------------------------------------------------------------------------------
def default_function(problem_type: str | None, num_labels: int) -> str:
    """The pipeline's default function_to_apply: none for regression, sigmoid for multi-label or one label."""
    if problem_type == "regression":
        return "none"
    if problem_type == "multi_label_classification" or num_labels == 1:
        return "sigmoid"
    return "softmax"


def classify(
    logits: np.ndarray, labels: Sequence[str], function: str, top_k: int | None = None
) -> list[dict[str, Any]]:
    """(L,) logits -> [{label, score}] sorted by descending score, the best top_k (all when None)."""
    if function not in FUNCTIONS:
        raise ValueError(f"function_to_apply must be one of {', '.join(FUNCTIONS)}, not {function!r}")
    scores = {"softmax": softmax, "sigmoid": sigmoid, "none": lambda x: x}[function](
        logits.astype(np.float64)
    )
    items = [{"label": label, "score": float(s)} for label, s in zip(labels, scores, strict=True)]
    items.sort(key=lambda item: -item["score"])
    return items[:top_k] if top_k is not None else items


def pool_windows(rows: Sequence[np.ndarray], pooling: str) -> np.ndarray:
    """One text's window logits (W, L) -> (L,), as the classification task pools them (mean or max)."""
    stacked = np.stack(rows)
    return stacked.max(axis=0) if pooling == "max" else stacked.mean(axis=0)


# ---- token classification --------------------------------------------------------------------------------
def piece_windows(num_pieces: int, span: int, stride: int) -> list[tuple[int, int]]:
    """(start, end) piece spans of windows of `span` pieces sharing `stride` (one empty window for no pieces)."""
    if num_pieces == 0:
        return [(0, 0)]
    return window_spans(num_pieces, span, min(stride, span - 1))


def merge_windows(
    num_pieces: int, spans: Sequence[tuple[int, int]], window_scores: Sequence[np.ndarray]
) -> np.ndarray:
    """Per-piece scores (N, L) from windows ([CLS] + pieces + [SEP] rows each): every piece is scored by the
    window where it has the most context on its poorer side (the first such window on a tie)."""
    width = window_scores[0].shape[-1]
    out = np.zeros((num_pieces, width), dtype=np.float32)
    best = np.full(num_pieces, -1)
    for (start, end), scores in zip(spans, window_scores, strict=True):
        length = end - start
        for k in range(length):
            context = min(k, length - 1 - k)
            if context > best[start + k]:
                best[start + k] = context
                out[start + k] = scores[k + 1]
    return out


@dataclass(frozen=True)
class Piece:
    """One word piece of the text: its id, vocabulary token and character span (code points)."""

    id: int
    token: str
    start: int
    end: int


def _tag(name: str) -> tuple[str, str]:
    if name.startswith("B-"):
        return "B", name[2:]
    if name.startswith("I-"):
        return "I", name[2:]
    return "I", name  # not in B-/I- form: a continuation


def token_entities(
    text: str,
    pieces: Sequence[Piece],
    scores: np.ndarray,
    labels: Sequence[str],
    strategy: str,
    join: Callable[[list[str]], str],
    unk_id: int | None,
    ignore_labels: Sequence[str] = ("O",),
    word_aware: bool = True,
) -> list[dict[str, Any]]:
    """transformers' TokenClassificationPipeline.postprocess for one text.

    scores: (N, L) probabilities, one row per piece. join: the tokenizer's convert_tokens_to_string, which
    makes each word's text as the pipeline does (WordPiece glues ``##``; byte-level BPE and SentencePiece
    decode ``Ġ`` / ``▁`` to spaces). word_aware: the tokenizer's pieces mark continuations (WordPiece), so a
    piece longer than its text is a subword; else a piece is a subword when no space is next to its start.
    none -> [{entity, score, index, word, start, end}] per piece (index counts [CLS] as 0);
    simple | first | average | max -> [{entity_group, score, word, start, end}].
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"aggregation_strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    pre = []
    for i, piece in enumerate(pieces):
        word = piece.token
        if word_aware:
            is_subword = len(word) != piece.end - piece.start
        else:  # the pipeline's fallback heuristic for tokenizers without word continuations
            is_subword = piece.start > 0 and " " not in text[piece.start - 1 : piece.start + 1]
        if piece.id == unk_id:
            word, is_subword = text[piece.start : piece.end], False
        pre.append({"word": word, "scores": scores[i], "start": piece.start, "end": piece.end, "index": i + 1,
                    "is_subword": is_subword})  # fmt: skip
    if strategy in ("none", "simple"):
        entities = []
        for p in pre:
            k = int(p["scores"].argmax())
            entities.append({"entity": labels[k], "score": float(p["scores"][k]), "index": p["index"],
                             "word": p["word"], "start": p["start"], "end": p["end"]})  # fmt: skip
    else:
        entities = _aggregate_words(pre, strategy, labels, join)
    if strategy != "none":
        entities = _group_entities(entities, join)
    return [
        e
        for e in entities
        if e.get("entity") not in ignore_labels and e.get("entity_group") not in ignore_labels
    ]


def _aggregate_word(group: list[dict], strategy: str, labels: Sequence[str], join: Callable) -> dict:
    if strategy == "first":
        scores = group[0]["scores"]
    elif strategy == "max":
        scores = max(group, key=lambda p: p["scores"].max())["scores"]
    else:  # average
        scores = np.nanmean(np.stack([p["scores"] for p in group]), axis=0)
    k = int(scores.argmax())
    return {"entity": labels[k], "score": float(scores[k]), "word": join([p["word"] for p in group]),
            "start": group[0]["start"], "end": group[-1]["end"]}  # fmt: skip


def _aggregate_words(pre: list[dict], strategy: str, labels: Sequence[str], join: Callable) -> list[dict]:
    words, group = [], None
    for p in pre:
        if group is None:
            group = [p]
        elif p["is_subword"]:
            group.append(p)
        else:
            words.append(_aggregate_word(group, strategy, labels, join))
            group = [p]
    if group is not None:
        words.append(_aggregate_word(group, strategy, labels, join))
    return words


def _group_entities(entities: list[dict], join: Callable) -> list[dict]:
    def close(group: list[dict]) -> dict:
        return {"entity_group": group[0]["entity"].split("-", 1)[-1],
                "score": float(np.nanmean([e["score"] for e in group])),
                "word": join([e["word"] for e in group]), "start": group[0]["start"], "end": group[-1]["end"]}  # fmt: skip

    groups, current = [], []
    for e in entities:
        if current:
            bi, tag = _tag(e["entity"])
            if not (tag == _tag(current[-1]["entity"])[1] and bi != "B"):
                groups.append(close(current))
                current = []
        current.append(e)
    if current:
        groups.append(close(current))
    return groups


# ---- question answering ----------------------------------------------------------------------------------
def qa_answers(prediction: dict[str, Any], top_k: int = 1) -> dict[str, Any] | list[dict[str, Any]]:
    """bertkit's QA prediction -> {answer, score, start, end} (a list of the top_k when top_k > 1).

    score is the answer's probability among the n-best spans (softmax over their start + end logits).
    """
    nbest = [e for e in prediction.get("nbest", []) if e["text"] or e["start"] >= 0]
    answers = [
        {
            "answer": e["text"],
            "score": float(e.get("probability", 0.0)),
            "start": max(e["start"], 0),
            "end": max(e["start"], 0) + len(e["text"]),
        }  # fmt: skip
        for e in nbest[: max(top_k, 1)]
    ]
    if not answers:
        answers = [{"answer": "", "score": 0.0, "start": 0, "end": 0}]
    return answers if top_k > 1 else answers[0]


# ---- offsets ---------------------------------------------------------------------------------------------
def utf8_offsets(text: str) -> list[int]:
    """Byte position of every character boundary: utf8_offsets("é!") -> [0, 2, 3]."""
    out = [0]
    for ch in text:
        out.append(out[-1] + len(ch.encode("utf-8")))
    return out
