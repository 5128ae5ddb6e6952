"""Token tagging / NER: words in, one tag per word and entity spans with character offsets out.

Shapes: B batch (windows), T tokens, U labelled units of a window, L labels, W units of one example.
Heads (see bertkit.model.tagger): softmax (transformers' BertForTokenClassification), crf, lstm_crf. The
training tags are converted to `scheme`; a CRF is restricted to the moves the scheme allows, and a softmax
tagger's output is repaired into a valid sequence (conlleval's reading), so no invalid sequence and no
[CLS]/[SEP]/continuation-piece label ever reaches the output. Metrics are conlleval's (seqeval's default
mode) unless metric_mode="strict".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bertkit.data.collate import encoder_inputs, pad_sequences
from bertkit.data.examples import TaggedExample
from bertkit.data.readers.tagged_jsonl import example_from_record
from bertkit.data.tag_schemes import (
    allowed_transitions,
    convert_tags,
    detect_scheme,
    entity_types,
    labels_for,
    scheme_name,
    spans_to_tags,
    split_tag,
    tags_to_spans,
)
from bertkit.data.words import SPLIT_MODES, join_words
from bertkit.evaluation.tagging import tagging_metrics
from bertkit.model.crf import viterbi
from bertkit.model.tagger import HEADS, BertForTagging
from bertkit.tasks.base import Batch, Feature, TaskBase, UnknownLabel
from bertkit.tasks.tag_alignment import align, context, unit_spans_to_words, unit_tags, windows
from bertkit.tokenization import Tokenizer
from bertkit.weights.load import load_pretrained

logger = logging.getLogger(__name__)


class TagOutput(NamedTuple):
    scores: Tensor  # (B, U, L) label scores at the labelled units (logits, or CRF emissions)
    start: Tensor | None = None  # CRF scores (L,), (L, L), (L,), forbidden moves masked; None for softmax
    transitions: Tensor | None = None
    end: Tensor | None = None


class TaggingTask(TaskBase):
    """Tag each word; entities come out as {text, type, start, end} with text == input[start:end].

    labels: tag names in id order (None: every prefix of `scheme` for the types found in the training data).
    scheme: the tags the model learns (IOB2, IOB1, BIOES, BMES); data in any scheme is converted to it.
    head: softmax | crf | lstm_crf. head_lr_scale: learning-rate factor of the LSTM/CRF parameters.
    all_pieces: label every word piece, not only the first piece of each word.
    split: how a raw text is cut into words at prediction time: "words" or "chars" (Chinese corpora).
    window_stride: pieces shared by consecutive windows of a long sentence (default: a quarter window).
    """

    name = "tagging"

    def __init__(
        self,
        labels: Sequence[str] | None = None,
        scheme: str = "IOB2",
        head: str = "softmax",
        head_lr_scale: float = 100.0,
        all_pieces: bool = False,
        split: str = "words",
        window_stride: int | None = None,
        main_metric: str = "f1",
        metric_mode: str = "default",
    ):
        self.scheme = scheme_name(scheme)
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if split not in SPLIT_MODES:
            raise ValueError(f"split must be one of {SPLIT_MODES}, got {split!r}")
        if metric_mode not in ("default", "strict"):
            raise ValueError(f"metric_mode must be 'default' (conlleval) or 'strict', got {metric_mode!r}")
        if window_stride is not None and window_stride < 0:
            raise ValueError(f"window_stride must be >= 0, got {window_stride}")
        if head_lr_scale <= 0:
            raise ValueError(f"head_lr_scale must be > 0, got {head_lr_scale}")
        self.labels = tuple(labels) if labels else None
        if self.labels is not None:
            if len(set(self.labels)) != len(self.labels):
                raise ValueError(f"labels repeat a name: {self.labels}")
            allowed_transitions(self.labels, self.scheme)  # raises for labels outside the scheme
        self.head, self.head_lr_scale, self.all_pieces = head, float(head_lr_scale), bool(all_pieces)
        self.split, self.window_stride = split, window_stride
        self.main_metric, self.metric_mode = main_metric, metric_mode
        self._index = {n: i for i, n in enumerate(self.labels or ())}

    # ---- configuration ---------------------------------------------------------------------------------
    def lr_scales(self) -> dict[str, float]:
        """The LSTM and CRF learn at head_lr_scale x the base rate (the CRF transitions start at 0)."""
        return {"crf.": self.head_lr_scale, "lstm.": self.head_lr_scale}

    def prepare(self, train_examples: Sequence[TaggedExample]) -> TaggingTask:
        """This task with its labels: every `scheme` prefix of each entity type in the training tags."""
        if self.labels is not None:
            return self
        tags = [e.tags for e in train_examples if e.tags]
        types = entity_types(tags)
        if not types:
            raise ValueError("the training data has no entity tags (only 'O'): nothing to learn")
        logger.info(
            "training tags are %s; entity types %s; learning %s",
            detect_scheme(tags),
            ", ".join(types),
            self.scheme,
        )
        return TaggingTask(**{**self.to_json(), "labels": labels_for(types, self.scheme)})

    def build_model(self, model: str, *, from_finetuned: bool = False) -> tuple[nn.Module, Any]:
        """BERT + this head; from a fine-tuned folder every head weight (LSTM, CRF) must be there."""
        if self.labels is None:
            raise ValueError("the task has no labels yet; call prepare(train_examples) or pass labels")
        tagger, report = load_pretrained(
            model,
            BertForTagging,
            labels=self.labels,
            model_options={"head": self.head, "transitions": self._transitions()},
            require_heads=from_finetuned,
        )
        return tagger, report

    def _transitions(self) -> tuple[list[bool], list[list[bool]], list[bool]]:
        moves = allowed_transitions(self.labels or (), self.scheme)
        return moves.start, moves.pairs, moves.end

    # ---- examples --------------------------------------------------------------------------------------
    def check(self, example: TaggedExample, labelled: bool = True) -> str | None:
        """Why the example cannot be used (no words, tags missing or of the wrong number, unknown tag)."""
        if not isinstance(example, TaggedExample):
            return (
                f"a {type(example).__name__} is not a tagging example: read tagging data with the conll or "
                "tagged_jsonl reader (presets conll2003, msra, peoples_daily, conll, ner-jsonl)"
            )
        if not labelled:
            return None
        if not example.words:
            return "the sentence has no words"
        if example.tags is None:
            return "no tags"
        if len(example.tags) != len(example.words):
            return f"{len(example.words)} words but {len(example.tags)} tags"
        for tag in example.tags:
            try:
                split_tag(tag)
            except ValueError as err:
                return str(err)
        if self.labels is not None:
            unknown = sorted({t for t in convert_tags(example.tags, self.scheme) if t not in self._index})
            if unknown:
                return UnknownLabel(f"unknown label {unknown[0]!r}; the labels are {', '.join(self.labels)}")
        return None

    def example_from_dict(self, record: Mapping[str, Any], source: str = "") -> TaggedExample:
        """{"text": ...} (split by `split`), {"tokens": [...]} (pre-tokenized), optionally with "tags" or
        character-offset "entities" -> TaggedExample."""
        if not isinstance(record, Mapping):
            raise ValueError(f"{source or 'input'}: expected a JSON object with 'text' or 'tokens'")
        return example_from_record(dict(record), source or "input", split=self.split, scheme=self.scheme)

    # ---- features --------------------------------------------------------------------------------------
    def features_batch(
        self, examples: Sequence[TaggedExample], tokenizer: Tokenizer, max_seq_length: int
    ) -> list[list[Feature]]:
        """One tokenizer call for many examples; a list of window features per example."""
        if not examples:
            return []
        span = max_seq_length - 2
        if span < 1:
            raise ValueError(f"max_seq_length={max_seq_length} leaves no room between [CLS] and [SEP]")
        stride = self.window_stride if self.window_stride is not None else span // 4
        if stride >= span:
            raise ValueError(f"window_stride={stride} must be smaller than max_seq_length - 2 = {span}")
        nonempty = [e for e in examples if e.words]
        encodings = (
            iter(tokenizer.encode_batch([list(e.words) for e in nonempty], is_split_into_words=True))
            if nonempty
            else iter(())
        )
        out = []
        lost = 0
        for example in examples:
            if example.words:
                enc = next(encodings)
                alignment = align(enc.ids[1:-1], enc.word_ids[1:-1], self.all_pieces)
            else:
                alignment = align([], [], self.all_pieces)
            targets = None
            if example.tags is not None and self.labels is not None:
                tags, missed = unit_tags(
                    convert_tags(example.tags, self.scheme), alignment.unit_words, self.scheme
                )
                lost += missed
                targets = [self._index[t] for t in tags]
            wins = windows(alignment, span, stride)
            feats = []
            for w in wins:
                feat: Feature = {
                    "input_ids": [
                        tokenizer.cls_token_id,
                        *alignment.piece_ids[w.start : w.end],
                        tokenizer.sep_token_id,
                    ],
                    "label_positions": w.positions,
                    "units": w.units,
                    "unit_words": [alignment.unit_words[u] for u in w.units],
                    "open_start": bool(w.units) and w.units[0] > 0,
                    "open_end": bool(w.units) and w.units[-1] < len(alignment.unit_words) - 1,
                }
                if targets is not None:
                    feat["label_ids"] = [targets[u] for u in w.units]
                feats.append(feat)
            out.append(feats)
        if lost:
            logger.warning(
                "%d entities lie on words the tokenizer drops entirely (e.g. zero-width characters)", lost
            )
        return out

    def features(self, example: TaggedExample, tokenizer: Tokenizer, max_seq_length: int) -> list[Feature]:
        return self.features_batch([example], tokenizer, max_seq_length)[0]

    def collate(self, features: Sequence[Feature]) -> Batch:
        batch = encoder_inputs(features)
        positions = [f["label_positions"] for f in features]
        batch["label_positions"] = pad_sequences(positions, 0)
        batch["label_mask"] = pad_sequences([[1] * len(p) for p in positions], 0, torch.bool)
        batch["open_start"] = torch.tensor([f["open_start"] for f in features], dtype=torch.bool)
        batch["open_end"] = torch.tensor([f["open_end"] for f in features], dtype=torch.bool)
        if all("label_ids" in f for f in features):
            batch["label_ids"] = pad_sequences([f["label_ids"] for f in features], 0)
        return batch

    # ---- model -----------------------------------------------------------------------------------------
    def forward(self, model: nn.Module, batch: Batch) -> TagOutput:
        """Label scores at the labelled units (B, U, L), and the CRF's scores for a CRF head."""
        scores = model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]).float()
        index = batch["label_positions"].unsqueeze(-1).expand(-1, -1, scores.shape[-1])
        units = scores.gather(1, index)
        crf = getattr(getattr(model, "module", model), "crf", None)  # DDP wraps the model in .module
        if crf is None and self.head != "softmax":  # never decode a CRF tagger's emissions as softmax scores
            raise ValueError(
                f"the task's head is {self.head} but {type(model).__name__} carries no CRF (an ONNX graph "
                "exported before bertkit exported CRFs?); export or load the model folder again"
            )
        if crf is None:
            return TagOutput(units)
        return TagOutput(units, *crf.scores())

    def loss(self, outputs: TagOutput, batch: Batch) -> Tensor:
        """Softmax: cross-entropy per labelled unit. CRF: negative log-likelihood per window, averaged."""
        mask, labels = batch["label_mask"], batch["label_ids"]
        if not bool(mask.any()):
            return outputs.scores.sum() * 0.0
        if outputs.start is None:
            return F.cross_entropy(outputs.scores[mask], labels[mask])
        from bertkit.model.crf import log_partition, path_score

        parts = (outputs.start, outputs.transitions, outputs.end, batch["open_start"], batch["open_end"])
        nll = log_partition(outputs.scores, mask, *parts) - path_score(outputs.scores, labels, mask, *parts)
        has_units = mask.any(1)
        return nll[has_units].mean()

    # ---- predictions -----------------------------------------------------------------------------------
    def _example_scores(
        self, outputs: Sequence[TagOutput], features: Sequence[Feature], n: int
    ) -> tuple[list[Tensor], list[list[int]]]:
        """((W, L) scores, word of each unit) per example; each unit scored by the window where it has the
        most context."""
        best: list[dict[int, tuple[int, Tensor]]] = [{} for _ in range(n)]
        words: list[dict[int, int]] = [{} for _ in range(n)]
        rows = (row for out in outputs for row in out.scores)
        for feat, row in zip(features, rows, strict=True):
            e, length = feat["example_index"], len(feat["input_ids"]) - 2
            for k, (u, pos) in enumerate(zip(feat["units"], feat["label_positions"], strict=True)):
                c = context(pos, length)
                if u not in best[e] or c > best[e][u][0]:
                    best[e][u] = (c, row[k])
                words[e][u] = feat["unit_words"][k]
        empty = torch.zeros(0, len(self.labels or ()))
        scores = [torch.stack([b[u][1] for u in range(len(b))]) if b else empty for b in best]
        return scores, [[w[u] for u in range(len(w))] for w in words]

    def decode(
        self, outputs: Sequence[TagOutput], features: Sequence[Feature], examples: Sequence[Any]
    ) -> list[dict]:
        """-> {"tags": one per word, "entities": [{text, type, start, end}]} per example, in example order."""
        labels = self.labels or ()
        scores, unit_words = self._example_scores(outputs, features, len(examples))
        crf = next((o for o in outputs if o.start is not None), None)
        paths = self._viterbi(scores, crf) if crf is not None else [s.argmax(-1).tolist() for s in scores]
        predictions = []
        for example, path, words_of in zip(examples, paths, unit_words, strict=True):
            unit_tag_seq = [labels[k] for k in path]
            if crf is None:
                unit_tag_seq = convert_tags(unit_tag_seq, self.scheme)  # softmax output may be invalid
            spans = unit_spans_to_words(tags_to_spans(unit_tag_seq), words_of)
            predictions.append(
                {
                    "tags": spans_to_tags(spans, len(example.words), self.scheme),
                    "entities": entities(example, spans),
                }
            )
        return predictions

    def _viterbi(self, scores: Sequence[Tensor], crf: TagOutput) -> list[list[int]]:
        """Viterbi over whole examples (windows merged), under the scheme's hard constraints (-inf)."""
        start, pairs, end = (torch.tensor(m, dtype=torch.bool) for m in self._transitions())
        inf = float("-inf")
        s = crf.start.float().masked_fill(~start, inf)
        t = crf.transitions.float().masked_fill(~pairs, inf)
        e = crf.end.float().masked_fill(~end, inf)
        order = sorted(range(len(scores)), key=lambda i: len(scores[i]))
        paths: list[list[int]] = [[] for _ in scores]
        for i in range(0, len(order), 256):
            chunk = [j for j in order[i : i + 256] if len(scores[j])]
            if not chunk:
                continue
            width = max(len(scores[j]) for j in chunk)
            em = torch.zeros(len(chunk), width, scores[chunk[0]].shape[-1])
            mask = torch.zeros(len(chunk), width, dtype=torch.bool)
            for r, j in enumerate(chunk):
                em[r, : len(scores[j])] = scores[j]
                mask[r, : len(scores[j])] = True
            for j, path in zip(chunk, viterbi(em, mask, s, t, e), strict=True):
                paths[j] = path
        return paths

    def metrics(self, predictions: Sequence[dict], examples: Sequence[TaggedExample]) -> dict[str, float]:
        """Entity micro precision / recall / f1, word accuracy, and per-type scores."""
        gold = [convert_tags(e.tags or (), self.scheme) for e in examples]
        return tagging_metrics(gold, [p["tags"] for p in predictions], self.metric_mode, self.scheme)


def entities(example: TaggedExample, spans: Sequence[Any]) -> list[dict]:
    """Word spans -> {text, type, start, end} with character offsets into the example's text."""
    if example.text is None or example.offsets is None:
        text, offsets = join_words(example.words)
    else:
        text, offsets = example.text, example.offsets
    out = []
    for s in spans:
        start, end = offsets[s.start][0], offsets[s.end - 1][1]
        out.append({"text": text[start:end], "type": s.type, "start": start, "end": end})
    return out
