"""Featurize once into a compact store on disk and reuse it: later runs, every seed of --seeds, and evaluation.

`cached_featurize` returns a FeatureStore (a Sequence of the same feature dicts `featurize` returns) built in
chunks, so the token ids never exist as Python lists all at once; None when the task's features have no compact
form (every built-in family has one: classification, tagging, QA with its offsets, multiple choice; a custom
task's feature with, say, a string in it featurizes in memory, with a log line that names the field).

The key: the examples as read (a hash of every field, so column choices, filters and --max-train-examples all
count), the data files they came from (path, size, mtime), the tokenizer's saved files (vocab, casing), the
task's options and max_seq_length.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bertkit import runtime as rt_mod
from bertkit.data.feature_store import (
    FORMAT_VERSION,
    FeatureCache,
    FeatureStore,
    UnstorableFeature,
    default_cache_dir,
    examples_fingerprint,
    file_identity,
    tokenizer_fingerprint,
)
from bertkit.engine import featurize
from bertkit.runtime import Runtime
from bertkit.tasks.base import Feature, Task

logger = logging.getLogger(__name__)

CHUNK = 2048  # examples featurized (and held as lists) at a time: ~12 MB


def feature_chunks(
    task: Task, examples: Sequence[Any], tokenizer: Any, max_seq_length: int, chunk: int = CHUNK
) -> Iterator[list[Feature]]:
    """featurize() a chunk of examples at a time; example_index counts over all examples."""
    for start in range(0, len(examples), chunk):
        features = featurize(task, examples[start : start + chunk], tokenizer, max_seq_length)
        for f in features:
            f["example_index"] += start
        yield features


def data_files(examples: Sequence[Any]) -> list[str]:
    """The files the examples' sources name ("file:line", "file#place"), sorted."""
    names = set()
    for example in examples:
        source = getattr(example, "source", "") or ""
        name = source.split("#", 1)[0] if "#" in source else source.rsplit(":", 1)[0]
        names.add(name)
    return sorted(n for n in names if n and Path(n).is_file())


def cache_parts(task: Task, examples: Sequence[Any], tokenizer: Any, max_seq_length: int) -> dict[str, Any]:
    """Everything that decides the features, as the cache key."""
    return {
        "format": FORMAT_VERSION,
        "task": task.name,
        "options": task.to_json(),
        "max_seq_length": max_seq_length,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "files": [file_identity(f) for f in data_files(examples)],
        "examples": {"count": len(examples), "sha256": examples_fingerprint(examples)},
    }


def resolve_cache_dir(setting: str | None) -> Path | None:
    """TrainConfig.feature_cache -> the cache folder: "auto" is the user's cache, "off" (or None) none."""
    if setting in (None, "", "off", "none"):
        return None
    return default_cache_dir() if setting == "auto" else Path(setting)


def featurize_stored(
    task: Task, examples: Sequence[Any], tokenizer: Any, max_seq_length: int, setting: str | None,
    runtime: Runtime | None = None,
) -> Sequence[Feature]:  # fmt: skip
    """featurize() through the feature cache when one is set and the task's features fit a store, else in memory.

    Under DDP rank 0 builds the store while the other ranks wait, then they open it.
    """
    cache_dir = resolve_cache_dir(setting)
    if cache_dir is None or not examples:
        return featurize(task, examples, tokenizer, max_seq_length)
    distributed = runtime is not None and runtime.distributed
    if distributed and not runtime.is_main:  # type: ignore[union-attr]
        rt_mod.barrier(runtime)  # type: ignore[arg-type]
    store = cached_featurize(task, examples, tokenizer, max_seq_length, cache_dir)
    if distributed and runtime.is_main:  # type: ignore[union-attr]
        rt_mod.barrier(runtime)  # type: ignore[arg-type]
    return store if store is not None else featurize(task, examples, tokenizer, max_seq_length)


def cached_featurize(
    task: Task, examples: Sequence[Any], tokenizer: Any, max_seq_length: int, cache_dir: str | Path
) -> FeatureStore | None:
    """The features of examples from the cache under cache_dir, tokenized now only if no run made them before."""
    cache = FeatureCache(cache_dir)
    parts = cache_parts(task, examples, tokenizer, max_seq_length)
    try:
        store, _ = cache.get_or_build(parts, lambda: feature_chunks(task, examples, tokenizer, max_seq_length))
    except UnstorableFeature as err:
        logger.info("features of task %s stay in memory: %s", task.name, err)
        return None
    except OSError as err:  # a read-only home, a full disk, a file where the folder should be
        logger.warning("the feature cache %s cannot be used (%s); the features stay in memory. Pass "
                       "--feature-cache DIR (a writable folder) or --feature-cache off", cache_dir, err)  # fmt: skip
        return None
    return store
