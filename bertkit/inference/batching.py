"""Inputs in chunks and tokens in batches, for feature extraction: text_chunks cuts texts (and their pairs) into
chunks that are tokenized one at a time; plan_batches groups a chunk's texts longest first under a row cap and
a padded-token budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice


def check_texts(texts: Sequence[object], name: str, start: int) -> None:
    """Raise, naming the item (name[start + i]), unless every item is a string."""
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(
                f"{name}[{start + i}] is {type(text).__name__}, not a string; every input must be text"
            )


def text_chunks(
    texts: Iterable[str], text_pairs: Iterable[str] | None, size: int
) -> Iterator[tuple[list[str], list[str] | None]]:
    """(texts, pairs) chunks of up to `size`; raises if the pairs run out before or after the texts."""
    it, pit = iter(texts), None if text_pairs is None else iter(text_pairs)
    done = 0
    while chunk := list(islice(it, size)):
        check_texts(chunk, "texts", done)
        pairs = None
        if pit is not None:
            pairs = list(islice(pit, len(chunk)))
            if len(pairs) != len(chunk):
                raise ValueError(
                    f"text_pairs has {done + len(pairs)} items but texts has more; give one pair per text"
                )
            check_texts(pairs, "text_pairs", done)
        done += len(chunk)
        yield chunk, pairs
    if pit is not None and next(pit, None) is not None:
        raise ValueError(f"text_pairs has more items than texts ({done}); give one pair per text")


def plan_batches(
    lengths: Sequence[int], batch_size: int | None = None, max_batch_tokens: int | None = None
) -> list[list[int]]:
    """Indices grouped longest first: at most batch_size rows and max_batch_tokens padded tokens per batch.

    A token budget (text-embeddings-inference's max_batch_tokens) lets short texts go in large batches; a
    text longer than the budget gets a batch of its own.
    Example: plan_batches([3, 9, 5, 4], 2) -> [[1, 2], [3, 0]]
    """
    if batch_size is None and max_batch_tokens is None:
        raise ValueError("give batch_size, max_batch_tokens or both")
    for name, value in (("batch_size", batch_size), ("max_batch_tokens", max_batch_tokens)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, current = [], []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]  # the first row of a batch is its longest
        full = batch_size is not None and len(current) >= batch_size
        over = max_batch_tokens is not None and width * (len(current) + 1) > max_batch_tokens
        if current and (full or over):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches
