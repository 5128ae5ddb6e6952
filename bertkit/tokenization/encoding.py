"""What the tokenizer returns: ``Encoding`` per example and ``BatchEncoding`` tensors; pair truncation and windows.

Shapes: B = batch size, T = longest encoding in the batch (or ``max_length``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import torch


@dataclass(frozen=True)
class Encoding:
    """One encoded example, ``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]`` (or the family's template, see
    :class:`Template`); fields named as ``tokenizers.Encoding``.

    ``offsets`` are (start, end) character offsets into the original text of the sequence the token came
    from (``sequence_ids`` says which: 0 = text, 1 = text_pair), or into its word when the input was split
    into words; (0, 0) for special tokens. ``word_ids`` index the basic-tokenizer words of each sequence
    (the input words when split into words), None for specials. ``overflowing`` holds the further windows
    when encoding with a ``stride``.
    """

    ids: list[int]
    tokens: list[str]
    type_ids: list[int]
    attention_mask: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    sequence_ids: list[int | None]
    special_tokens_mask: list[int]
    overflowing: tuple[Encoding, ...] = field(default=(), repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def windows(self) -> list[Encoding]:
        """This encoding followed by its overflowing windows."""
        return [self, *self.overflowing]

    def char_to_token(self, char_index: int, sequence_index: int = 0) -> int | None:
        """The token covering character ``char_index`` of sequence ``sequence_index``, or None."""
        for i, ((start, end), seq) in enumerate(zip(self.offsets, self.sequence_ids, strict=True)):
            if seq == sequence_index and start <= char_index < end:
                return i
        return None


class BatchEncoding(dict):
    """``input_ids``, ``token_type_ids`` and ``attention_mask``, each (B, T) long tensors (or lists)."""

    def to(self, device: torch.device | str) -> BatchEncoding:
        """Move every tensor to ``device``."""
        return BatchEncoding({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.items()})


@dataclass(frozen=True)
class Template:
    """Where a family puts its special tokens: ``cls A sep`` and ``cls A sep (sep) B sep``; BERT's by default.

    BERT, ALBERT, ELECTRA, ERNIE: ``[CLS] A [SEP] B [SEP]``, B (and its [SEP]) of token type 1.
    RoBERTa, XLM-R: ``<s> A </s></s> B </s>`` (``pair_seps=2``), every token of type 0 (``type_b=0``).
    """

    cls: tuple[int, str]
    sep: tuple[int, str]
    pair_seps: int = 1
    type_b: int = 1

    def specials(self, pair: bool) -> int:
        """How many special tokens a single text (or a pair) gets."""
        return 2 + self.pair_seps if pair else 2


@dataclass(frozen=True)
class TokenizedText:
    """One tokenized text (no special tokens); offsets already point into the original text."""

    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    word_ids: list[int]


def google_pair_lengths(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Google's ``_truncate_seq_pair``: drop the last token of the longer side (B on a tie) until it fits.

    Example: ``google_pair_lengths(10, 10, 13) -> (7, 6)``
    """
    excess = len_a + len_b - budget
    if excess <= 0:
        return len_a, len_b
    cut = min(abs(len_a - len_b), excess)
    if len_a > len_b:
        len_a -= cut
    else:
        len_b -= cut
    excess -= cut
    return len_a - excess // 2, len_b - (excess + 1) // 2


def window_spans(length: int, size: int, stride: int) -> list[tuple[int, int]]:
    """Token spans of ``size`` covering ``range(length)``, consecutive ones sharing ``stride`` tokens.

    This is the ``stride`` of ``tokenizers`` and transformers. Google's run_squad.py ``doc_stride`` is
    the step between window starts instead: ``doc_stride = size - stride``.
    Example: ``window_spans(10, 4, 1) -> [(0, 4), (3, 7), (6, 10)]``
    """
    if stride < 0 or stride >= size:
        raise ValueError(f"stride must be in [0, {size}) for windows of {size} tokens; got {stride}")
    spans, start = [], 0
    while True:
        end = min(start + size, length)
        spans.append((start, end))
        if end >= length:
            return spans
        start = end - stride


Span = tuple[int, int]


def plan_spans(
    len_a: int, len_b: int | None, max_length: int | None, stride: int | None, pair_specials: int = 3
) -> list[tuple[Span, Span]]:
    """The token spans of A and B in each window: Google's truncation, or windows when ``stride`` is given.

    ``pair_specials``: special tokens around a pair (3 for BERT's template, 4 for RoBERTa's).
    Example: ``plan_spans(10, 10, 16, None) -> [((0, 7), (0, 6))]``
    """
    if max_length is None:
        if stride is not None:
            raise ValueError("stride needs max_length (the window size in tokens, specials included)")
        return [((0, len_a), (0, len_b or 0))]
    if len_b is None:
        if max_length < 3:
            raise ValueError(f"max_length={max_length} leaves no room for text between [CLS] and [SEP]")
        if stride is None:
            return [((0, min(len_a, max_length - 2)), (0, 0))]
        return [(span, (0, 0)) for span in window_spans(len_a, max_length - 2, stride)]
    if max_length < pair_specials:
        raise ValueError(f"max_length={max_length} cannot hold a pair and its {pair_specials} special tokens")
    if stride is None:
        la, lb = google_pair_lengths(len_a, len_b, max_length - pair_specials)
        return [((0, la), (0, lb))]
    room = max_length - pair_specials - len_a
    if room < 1:
        raise ValueError(
            f"the first text has {len_a} tokens: max_length={max_length} leaves no room for windows of the second"
        )
    return [((0, len_a), span) for span in window_spans(len_b, room, stride)]


def pad_length(
    rows: list[list[int]], padding: bool | str, max_length: int | None, return_tensors: str | None
) -> int | None:
    """The padded width for a ``padding`` option; None: leave the rows as they are (lists only)."""
    longest = max((len(r) for r in rows), default=0)
    if padding is True or padding == "longest":
        return longest
    if padding == "max_length":
        if max_length is None:
            raise ValueError('padding="max_length" needs max_length')
        return max_length
    if padding is False:
        if return_tensors is None:
            return None
        if len({len(r) for r in rows}) > 1:
            raise ValueError("rows differ in length: tensors need padding=True (or return_tensors=None)")
        return longest
    raise ValueError(f'padding must be True, False, "longest" or "max_length", not {padding!r}')


def assemble(
    a: TokenizedText, span_a: Span, b: TokenizedText | None, span_b: Span, template: Template
) -> Encoding:
    """``cls a[span_a] sep (sep) (b[span_b] sep)`` with every per-token field."""
    (a0, a1), (b0, b1) = span_a, span_b
    cls, sep = template.cls, template.sep
    n_a = a1 - a0
    ids = [cls[0]] + a.ids[a0:a1] + [sep[0]]
    tokens = [cls[1]] + a.tokens[a0:a1] + [sep[1]]
    offsets = [(0, 0)] + a.offsets[a0:a1] + [(0, 0)]
    word_ids: list[int | None] = [None] + a.word_ids[a0:a1] + [None]
    sequence_ids: list[int | None] = [None] + [0] * n_a + [None]
    special = [1] + [0] * n_a + [1]
    type_ids = [0] * (n_a + 2)
    if b is not None:
        n_b, extra = b1 - b0, template.pair_seps - 1  # RoBERTa's second </s> before B
        ids += [sep[0]] * extra + b.ids[b0:b1] + [sep[0]]
        tokens += [sep[1]] * extra + b.tokens[b0:b1] + [sep[1]]
        offsets += [(0, 0)] * extra + b.offsets[b0:b1] + [(0, 0)]
        word_ids += [None] * extra + b.word_ids[b0:b1] + [None]
        sequence_ids += [None] * extra + [1] * n_b + [None]
        special += [1] * extra + [0] * n_b + [1]
        type_ids += [0] * extra + [template.type_b] * (n_b + 1)
    return Encoding(ids, tokens, type_ids, [1] * len(ids), offsets, word_ids, sequence_ids, special)


def pad_batch(
    rows: list[list[int]],
    first_lengths: list[int],
    pad_id: int,
    width: int | None,
    return_tensors: str | None,
    type_b: int = 1,
) -> BatchEncoding:
    """Right-pad rows of ids to ``width`` into ``input_ids``/``token_type_ids``/``attention_mask`` (B, T).

    ``first_lengths[i]`` is the length of ``[CLS] A [SEP]`` in row i (type id 0; the rest is ``type_b``).
    ``width`` None leaves lists unpadded.
    """
    lengths = [len(r) for r in rows]
    longest = max(lengths, default=0)
    if width is not None and width < longest:
        raise ValueError(f"padding to {width} tokens, but an encoding has {longest}")
    if return_tensors is None:
        pads = [0] * len(rows) if width is None else [width - n for n in lengths]
        return BatchEncoding(
            input_ids=[r + [pad_id] * p for r, p in zip(rows, pads, strict=True)],
            token_type_ids=[
                [0] * f + [type_b] * (n - f) + [0] * p
                for f, n, p in zip(first_lengths, lengths, pads, strict=True)
            ],
            attention_mask=[[1] * n + [0] * p for n, p in zip(lengths, pads, strict=True)],
        )
    if return_tensors != "pt":
        raise ValueError(f"return_tensors must be 'pt' or None, not {return_tensors!r}")
    if width is None:
        raise ValueError("tensors need a padded width")
    positions = torch.arange(width)
    mask = positions < torch.tensor(lengths, dtype=torch.long).unsqueeze(1)  # (B, T)
    input_ids = torch.full(mask.shape, pad_id, dtype=torch.long)
    input_ids[mask] = torch.tensor(list(chain.from_iterable(rows)), dtype=torch.long)
    second = positions >= torch.tensor(first_lengths, dtype=torch.long).unsqueeze(1)  # (B, T)
    return BatchEncoding(
        input_ids=input_ids, token_type_ids=(second & mask).long() * type_b, attention_mask=mask.long()
    )


def as_list(ids: Any) -> list[int]:
    """A list of ints from a list, tuple or tensor."""
    return ids.tolist() if hasattr(ids, "tolist") else list(ids)
