"""Inputs of the compatibility routes (OpenAI, TEI, HF pipelines) on their way to the server's batchers.

Clients send up to thousands of inputs per call (LangChain 1,000, LlamaIndex 2,048), so a request is split
into chunks of at most `max_texts` that go through the same batcher, one after the other, instead of being
refused. Texts are tokenized here (right or left truncation, or TooLong); token-id inputs become encodings
after a range check against the model's vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bertkit.serving.backend import TooLong
from bertkit.tokenization.encoding import Encoding

DIRECTIONS = ("right", "left")


async def run_chunks(server: Any, name: str, items: Sequence[Any], lengths: Sequence[int]) -> list[Any]:
    """Results of batcher `name` for every item, submitted max_texts at a time."""
    step = server.config.max_texts
    out: list[Any] = []
    for i in range(0, len(items), step):
        out.extend(await server.batchers[name].submit(items[i : i + step], lengths[i : i + step]))
    return out


def check_inputs(server: Any, texts: Sequence[str], name: str = "inputs") -> None:
    """413 for more inputs than max_client_batch_size or a text longer than max_text_chars; 400 for none."""
    c = server.config
    if not texts:
        raise ValueError(f"{name} is empty: send at least one text")
    if len(texts) > c.max_client_batch_size:
        raise TooLong(
            f"{len(texts)} {name} in one request; the limit is {c.max_client_batch_size} (--max-client-batch-size)"
        )
    for i, text in enumerate(texts):
        if isinstance(text, str) and len(text) > c.max_text_chars:
            raise TooLong(f"{name}[{i}] has {len(text)} characters; the limit is {c.max_text_chars}")


def _cut_left(enc: Encoding, max_length: int) -> Encoding:
    """[CLS] + the last max_length - 2 pieces + [SEP]."""
    keep = max_length - 2

    def cut(values: list) -> list:
        return [values[0], *values[len(values) - 1 - keep : -1], values[-1]]

    return Encoding(
        cut(enc.ids), cut(enc.tokens), cut(enc.type_ids), cut(enc.attention_mask), cut(enc.offsets),
        cut(enc.word_ids), cut(enc.sequence_ids), cut(enc.special_tokens_mask),
    )  # fmt: skip


def encode_texts(
    backend: Any, texts: Sequence[str], truncate: bool, direction: str = "right"
) -> list[Encoding]:
    """Encodings of single texts cut to the model's max_length (from the right or the left), or TooLong."""
    direction = direction.lower()
    if direction not in DIRECTIONS:
        raise ValueError(f"truncation_direction must be right or left, not {direction!r}")
    if direction == "right" or not truncate:
        return backend.tokenize(texts, None, truncate)
    full = backend.tokenizer.encode_batch(list(texts))
    return [e if len(e.ids) <= backend.max_length else _cut_left(e, backend.max_length) for e in full]


def encode_ids(backend: Any, ids: Sequence[int], truncate: bool, where: str) -> Encoding:
    """[CLS] ids [SEP] (the family's template) for ids of this model's own vocabulary; others are a ValueError."""
    tok = backend.tokenizer
    size = tok.vocab_size
    for k, i in enumerate(ids):
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < size:
            raise ValueError(
                f"{where}[{k}] = {i!r} is not a token id of this model's vocabulary (0..{size - 1})"
            )
    room = backend.max_length - tok.num_special_tokens()
    if len(ids) > room:
        if not truncate:
            raise TooLong(f"{where} has {len(ids) + 2} tokens; this model reads at most {backend.max_length}")
        ids = ids[:room]
    full, type_ids = tok.with_specials(list(ids))  # the family's template: [CLS] A [SEP], <s> A </s>, ...
    n = len(full)
    return Encoding(
        ids=full, tokens=tok.convert_ids_to_tokens(full), type_ids=type_ids, attention_mask=[1] * n,
        offsets=[(0, 0)] * n, word_ids=[None] * n, sequence_ids=[None, *[0] * (n - 2), None],
        special_tokens_mask=[1, *[0] * (n - 2), 1],
    )  # fmt: skip


def is_ids(value: Any) -> bool:
    """A list of ints (one token-id input)."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )
