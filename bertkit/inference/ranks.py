"""Batch inference across torchrun ranks: each rank takes one contiguous share of the inputs, and rank 0 writes
one output in input order, the same file a single process writes.

`torchrun --nproc_per_node 4 -m bertkit.cli.main encode ...` (or `predict`) needs nothing else. Vectors go
through part files beside the output (ranks must share that folder: one machine, or a shared file system);
predictions are gathered to rank 0 through the process group, a chunk of lines at a time
(inference.predict_file: each rank takes its share of every chunk).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from bertkit import runtime as rt_mod
from bertkit.inference.encode_file import encode_file, ids_path, write_npy_header
from bertkit.inference.encode_inputs import Row, Rows
from bertkit.inference.features import FeatureExtractor
from bertkit.runtime import Runtime

logger = logging.getLogger(__name__)


def share(count: int, rank: int, world_size: int) -> slice:
    """This rank's contiguous slice of `count` inputs; shares differ in size by at most one.

    Example: [share(5, r, 2) for r in (0, 1)] -> [slice(0, 2), slice(2, 5)]
    """
    return slice(count * rank // world_size, count * (rank + 1) // world_size)


def _part_path(output: Path, rank: int, world_size: int) -> Path:
    return output.with_name(f"{output.stem}.part{rank}-of-{world_size}{output.suffix}")


def encode_file_ranked(
    extractor: FeatureExtractor,
    inputs: Rows,
    output: str | Path,
    runtime: Runtime,
    **options: Any,
) -> Path:
    """encode_file over this rank's share; rank 0 then joins the parts into `output` in input order."""
    output = Path(output)
    if not runtime.distributed:
        return encode_file(extractor, inputs, output, **options)
    part = share(inputs.count, runtime.rank, runtime.world_size)
    encode_file(extractor, _Share(inputs, part), _part_path(output, runtime.rank, runtime.world_size), **options)
    rt_mod.barrier(runtime)
    if runtime.is_main:
        parts = [_part_path(output, r, runtime.world_size) for r in range(runtime.world_size)]
        _join(parts, output, inputs.count)
        if output.suffix == ".npy":
            _join([ids_path(p) for p in parts], ids_path(output), inputs.count)
        for path in parts:
            path.unlink()
            if path.suffix == ".npy":
                ids_path(path).unlink(missing_ok=True)
    rt_mod.barrier(runtime)
    return output


class _Share:
    """One rank's contiguous slice of the rows (read from the disk for a file: the rank skips the rows before)."""

    def __init__(self, inputs: Rows, part: slice) -> None:
        self.inputs, self.part = inputs, part
        self.count, self.has_pairs = part.stop - part.start, inputs.has_pairs

    def rows(self) -> Iterator[Row]:
        return self.inputs.rows(self.part.start, self.part.stop)


def _join(parts: Sequence[Path], output: Path, rows: int) -> None:
    if output.suffix == ".npy":  # the parts' rows follow one header, copied as bytes (nothing mapped)
        sources = [p.open("rb") for p in parts]
        try:
            shapes = [_npy_shape(src) for src in sources]
            assert sum(shape[0] for shape in shapes) == rows, (shapes, rows)
            with output.open("wb") as f:
                write_npy_header(f, rows, next((s[1] for s in shapes if len(s) == 2), 0))
                for src in sources:
                    shutil.copyfileobj(src, f)
        finally:
            for src in sources:
                src.close()
        return
    with output.open("wb") as f:
        for p in parts:
            with p.open("rb") as src:
                shutil.copyfileobj(src, f)


def _npy_shape(src: BinaryIO) -> tuple[int, ...]:
    """The shape in a float32 .npy file's header; src is left at its first value."""
    version = np.lib.format.read_magic(src)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read(src)
    assert dtype == np.float32 and not fortran_order, (dtype, fortran_order)
    return shape


def predict_ranked(predictor: Any, examples: Sequence[Any], runtime: Runtime) -> list[dict] | None:
    """predictor.predict_examples over this rank's share of `examples` (one chunk of the input); rank 0 gets
    every prediction in input order, the other ranks None."""
    if not runtime.distributed:
        return predictor.predict_examples(examples)
    import torch.distributed as dist

    part = share(len(examples), runtime.rank, runtime.world_size)
    mine = predictor.predict_examples(examples[part]) if part.stop > part.start else []
    gathered: list[Any] = [None] * runtime.world_size
    dist.all_gather_object(gathered, mine)
    if not runtime.is_main:
        return None
    return [p for chunk in gathered for p in chunk]
