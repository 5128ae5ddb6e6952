"""`bertkit predict` as a library function: JSON lines in, one prediction per line out, in input order, streamed.

The input is read, predicted and written one chunk at a time (chunk_size lines), so memory holds one chunk's
examples, features and predictions whatever the size of the file, and predictions reach the output as they are
made. A file is checked through first (every line JSON and a valid example for the task), so a bad line near
the end stops the run before anything is predicted, as when the whole file was read at once; standard input
cannot be read twice, so it is checked a chunk at a time. Under torchrun every rank reads the file and predicts
its share of each chunk (inference.ranks.predict_ranked); rank 0 writes.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bertkit.inference.predictor import Predictor, iter_inputs
from bertkit.inference.ranks import predict_ranked
from bertkit.runtime import Runtime

logger = logging.getLogger(__name__)

CHUNK_SIZE = 4096  # lines per chunk: 64 length-sorted batches of 64; a few MB of classification features
LOG_EVERY_S = 30.0


def predict_file(
    predictor: Predictor,
    path: str,
    output: str | None = None,
    runtime: Runtime | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> int:
    """Predict every line of the JSON-lines file `path` ("-": standard input) and write one JSON line per
    prediction to `output` (None: standard output) in input order; returns the number of lines predicted.

    Ranks other than 0 (under torchrun) predict their share of each chunk and write nothing.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk size {chunk_size}: must be at least 1")
    distributed = runtime is not None and runtime.distributed
    if path == "-" and distributed:
        raise ValueError("--input - (standard input) cannot be split across torchrun ranks, as each rank "
                         "reads the input itself; write it to a file and pass --input FILE")  # fmt: skip
    total = None if path == "-" else _check(predictor, path)
    writes = runtime is None or runtime.is_main
    if writes and output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
    out = (open(output, "w", encoding="utf-8") if output else sys.stdout) if writes else None  # noqa: SIM115
    done, started, logged = 0, time.perf_counter(), time.perf_counter()
    try:
        for chunk in _chunks(iter_inputs(path), chunk_size):
            try:
                examples = [predictor.examples([obj], source)[0] for source, obj in chunk]
            except ValueError as err:  # standard input only: a file was checked above
                raise ValueError(f"{err} (the {done} predictions before it were written)") from err
            predictions = predict_ranked(predictor, examples, runtime) if distributed else \
                predictor.predict_examples(examples)  # fmt: skip
            if out is not None and predictions is not None:
                out.write("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
                out.flush()
            done += len(chunk)
            if writes and time.perf_counter() - logged >= LOG_EVERY_S:
                logged = time.perf_counter()
                of = f" / {total}" if total is not None else ""
                logger.info("predicted %d%s lines (%.0f/s)", done, of, done / (logged - started))
    finally:
        if out is not None and output:
            out.close()
    return done


def _check(predictor: Predictor, path: str) -> int:
    """Every line of the file parses and makes a valid example (the first bad one raises); the line count."""
    count = 0
    for source, obj in iter_inputs(path):
        predictor.examples([obj], source)
        count += 1
    return count


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
