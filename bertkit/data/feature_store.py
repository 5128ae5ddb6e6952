"""Compact, file-backed features: token ids as uint16/int32 arrays on disk, memory-mapped, no per-token objects.

A feature (one dict per window, as a task's features_batch makes it) is stored column by column, each column
in the form its values take (bertkit.data.feature_columns): token ids and other int lists as one flat array
plus offsets, narrowed to uint8 / uint16 when the values fit (vocab < 65,536); scalars as (N,) arrays; QA's
character offsets as rows of two; multiple choice's per-choice ids as lists of lists.
A feature with any other value cannot be stored: `StoreWriter.append` raises UnstorableFeature and the caller
keeps its features in memory.

Reading a store gives back the same dicts (lists, tuples, bools and other Python numbers, equal in value and
type to what was written), one at a time, so a training loop streams batches from the page cache with bounded memory.

FeatureCache keys a store by everything that decides its contents (the data, the tokenizer's files, the task and
its options), builds it once (atomically: written aside, then renamed) and hands the same store to later runs
and to every seed of --seeds.

Shapes: N features, T_i tokens of feature i, K labels.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bertkit.data.feature_columns import (
    KINDS,
    LISTS,
    TWO_LEVEL,
    Encoded,
    UnstorableFeature,
    column_spec,
    decode,
    encode,
)
from bertkit.textfile import load_json_object

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: every task family's columns (1: classification's only)
META = "meta.json"
_BLOCK = 1 << 22  # elements copied at a time when narrowing a column (bounded memory)


class StoreWriter:
    """Append features in chunks; finish() writes meta.json. Memory stays at one chunk."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self.specs: dict[str, dict[str, Any]] = {}  # column -> {"kind": ..., "width" / "elem": ...}
        self.ranges: dict[str, tuple[int, int]] = {}  # integer list column -> (min, max)
        self.totals: dict[str, int] = {}  # list column -> values written
        self.items: dict[str, int] = {}  # nested column -> lists written
        self._files: dict[str, Any] = {}

    def _file(self, name: str) -> Any:
        if name not in self._files:
            self._files[name] = (self.folder / f"{name}.tmp").open("wb")
        return self._files[name]

    def append(self, features: Sequence[dict[str, Any]]) -> None:
        """Add features (every one must have the same keys as the first ever appended)."""
        if not features:
            return
        if not self.specs:
            self.specs = {k: column_spec(k, [f.get(k) for f in features]) for k in features[0]}
            self.totals = {k: 0 for k, spec in self.specs.items() if spec["kind"] in LISTS}
            self.items = {k: 0 for k, spec in self.specs.items() if spec["kind"] in TWO_LEVEL}
        if any(f.keys() != self.specs.keys() for f in features):
            odd = sorted({k for f in features for k in f} ^ set(self.specs))
            raise UnstorableFeature(f"features differ in their columns ({', '.join(odd)})")
        for key, spec in list(self.specs.items()):
            values = [f[key] for f in features]
            if spec["kind"] == "ragged" and not self.totals[key] and any(map(len, values)):
                spec = self._redecide(key, values)  # only empty lists so far: their kind is known now
            self._write(key, spec, encode(key, spec, values))
        self.count += len(features)

    def _redecide(self, key: str, values: list[Any]) -> dict[str, Any]:
        """The kind of a list column that held only empty lists until this chunk (its files fit any list kind)."""
        spec = column_spec(key, values)
        if spec["kind"] not in LISTS:
            raise UnstorableFeature(f"column {key!r} holds lists of different lengths")
        self.specs[key] = spec
        if spec["kind"] in TWO_LEVEL:
            self.items[key] = 0
        return spec

    def _write(self, key: str, spec: dict[str, Any], chunk: Encoded) -> None:
        values = chunk.values
        if spec["kind"] not in LISTS:
            self._file(key).write(values.tobytes())
            return
        if values.size:
            lo, hi = int(values.min()), int(values.max())
            old = self.ranges.get(key, (lo, hi))
            self.ranges[key] = (min(old[0], lo), max(old[1], hi))
        values = values.astype(np.int32)
        self._file(key).write(values.tobytes())
        self._file(f"{key}.lengths").write(chunk.counts.tobytes())  # type: ignore[union-attr]
        self.totals[key] += int(values.size)
        if chunk.inner is not None:
            self._file(f"{key}.inner").write(chunk.inner.tobytes())
            self.items[key] += int(chunk.inner.size)

    def finish(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Close the files, narrow integer list columns, write meta.json; returns the meta."""
        for f in self._files.values():
            f.close()
        columns: dict[str, dict[str, Any]] = {}
        for key, spec in self.specs.items():
            kind = spec["kind"]
            if kind not in LISTS:
                dtype = np.float64 if kind in ("float", "floats") else np.int64
                os.replace(self.folder / f"{key}.tmp", self.folder / f"{key}.bin")
                columns[key] = {**spec, "dtype": np.dtype(dtype).name}
                continue
            _offsets(self.folder / f"{key}.lengths.tmp", self.folder / f"{key}.offsets.npy", self.count)
            if kind in TWO_LEVEL:
                _offsets(self.folder / f"{key}.inner.tmp", self.folder / f"{key}.inner.npy", self.items[key])
            dtype = _narrowest(*self.ranges.get(key, (0, 0)))
            _narrow(self.folder / f"{key}.tmp", self.folder / f"{key}.bin", self.totals[key], dtype)
            columns[key] = {**spec, "dtype": np.dtype(dtype).name, "size": self.totals[key]}
        meta = {"format_version": FORMAT_VERSION, "count": self.count, "columns": columns, **(extra or {})}
        (self.folder / META).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        return meta

    def abort(self) -> None:
        for f in self._files.values():
            f.close()


def _offsets(lengths_file: Path, target: Path, count: int) -> None:
    """int64 lengths, written a chunk at a time -> offsets (count + 1) in an .npy file."""
    lengths = np.fromfile(lengths_file, dtype=np.int64)
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    np.save(target, offsets)
    lengths_file.unlink()


def _narrowest(lo: int, hi: int) -> type:
    for dtype in (np.uint8, np.uint16):
        if lo >= 0 and hi <= np.iinfo(dtype).max:
            return dtype
    return np.int32


def _narrow(source: Path, target: Path, size: int, dtype: type) -> None:
    """Copy an int32 file into `dtype`, a block at a time."""
    if dtype is np.int32:
        os.replace(source, target)
        return
    data = np.memmap(source, dtype=np.int32, mode="r", shape=(size,)) if size else np.zeros(0, np.int32)
    with target.open("wb") as out:
        for start in range(0, size, _BLOCK):
            out.write(np.asarray(data[start : start + _BLOCK]).astype(dtype).tobytes())
    del data
    source.unlink()


class FeatureStore(Sequence[dict[str, Any]]):
    """A finished store, memory-mapped: store[i] is the i-th feature dict, as it was appended."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta_path = self.folder / META
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.folder} is not a finished feature store (no {META})")
        self.meta = load_json_object(meta_path, "the store's metadata; delete the folder to rebuild it", "store")
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{meta_path}: feature store format {self.meta.get('format_version')}, "
                             f"this bertkit reads {FORMAT_VERSION}; delete the folder to rebuild it")  # fmt: skip
        self.count: int = self.meta["count"]
        self._columns: dict[str, tuple[dict[str, Any], np.ndarray, np.ndarray | None, np.ndarray | None]] = {}
        for key, info in self.meta["columns"].items():
            dtype, kind = np.dtype(info["dtype"]), info["kind"]
            if kind not in KINDS:
                raise ValueError(f"{meta_path}: column {key!r} has kind {kind!r}, unknown to this bertkit")
            offsets = inner = None
            if kind in LISTS:
                offsets = np.load(self.folder / f"{key}.offsets.npy", mmap_mode="r")
                values = _map(self.folder / f"{key}.bin", dtype, (info["size"],))
            elif kind == "floats":
                values = _map(self.folder / f"{key}.bin", dtype, (self.count, info["width"]))
            else:
                values = _map(self.folder / f"{key}.bin", dtype, (self.count,))
            if kind in TWO_LEVEL:
                inner = np.load(self.folder / f"{key}.inner.npy", mmap_mode="r")
            self._columns[key] = (info, values, offsets, inner)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> dict[str, Any]:  # type: ignore[override]
        if not -self.count <= i < self.count:
            raise IndexError(f"feature {i} of {self.count}")
        i %= self.count
        return {key: decode(*column, i) for key, column in self._columns.items()}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(self.count):
            yield self[i]

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def lengths(self, column: str = "input_ids") -> np.ndarray:
        """(N,) len() of each feature's list in a list column, without reading the values."""
        _, _, offsets, _ = self._columns[column]
        if offsets is None:
            raise ValueError(f"column {column!r} is not a list column")
        return np.diff(offsets)

    def column(self, name: str) -> np.ndarray:
        """The memory-mapped array of a scalar or fixed-width column ((N,) or (N, K))."""
        spec, values, offsets, _ = self._columns[name]
        if offsets is not None:
            raise ValueError(f"column {name!r} holds lists; index the store instead")
        return values.astype(bool) if spec.get("elem") == "bool" else values

    def nbytes(self) -> int:
        """Bytes on disk (what a full pass pulls through the page cache)."""
        return sum(p.stat().st_size for p in self.folder.iterdir() if p.is_file())


class StoreView(Sequence[dict[str, Any]]):
    """store[order[k]] as the k-th feature, each dict built when asked for: a store in another order (an
    inference run's length-sorted order) without every feature dict in memory at once."""

    def __init__(self, store: FeatureStore, order: Sequence[int] | np.ndarray):
        self.store = store
        self.order = np.asarray(order, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, k: int) -> dict[str, Any]:  # type: ignore[override]
        return self.store[int(self.order[k])]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in self.order.tolist():
            yield self.store[i]

    def column(self, name: str) -> np.ndarray:
        return self.store.column(name)[self.order]

    def lengths(self, column: str = "input_ids") -> np.ndarray:
        return self.store.lengths(column)[self.order]


def feature_lengths(features: Sequence[dict[str, Any]]) -> list[int]:
    """len(input_ids) of every feature; a store (or a view of one) answers from its offsets without building
    the dicts."""
    if isinstance(features, FeatureStore | StoreView):
        return features.lengths().tolist()
    return [len(f["input_ids"]) for f in features]


def feature_column(features: Sequence[dict[str, Any]], name: str) -> np.ndarray:
    """One scalar field of every feature (e.g. example_index) as an array; a store reads its column."""
    store = features.store if isinstance(features, StoreView) else features
    if isinstance(store, FeatureStore) and name in store.columns:
        return np.asarray(features.column(name))  # type: ignore[union-attr]
    return np.asarray([f[name] for f in features])


def in_order(features: Sequence[dict[str, Any]], order: Sequence[int]) -> Sequence[dict[str, Any]]:
    """features[order[0]], features[order[1]], ...: a StoreView over a store, a list otherwise."""
    if isinstance(features, FeatureStore):
        return StoreView(features, order)
    return [features[i] for i in order]


def _map(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    if int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


def write_store(folder: str | Path, chunks: Iterable[Sequence[dict[str, Any]]], extra: dict | None = None) -> FeatureStore:
    """Write chunks of features to a new store at folder and open it."""
    writer = StoreWriter(folder)
    try:
        for chunk in chunks:
            writer.append(chunk)
    except BaseException:
        writer.abort()
        raise
    writer.finish(extra)
    return FeatureStore(folder)


# ---- keys and the cache ------------------------------------------------------------------------------------
def file_identity(path: str | Path) -> dict[str, Any]:
    """What identifies a data file's contents without reading it: resolved path, size, mtime (ns)."""
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 of the files the tokenizer saves (vocab, casing, special tokens): equal files, equal ids."""
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="bertkit-tok-") as tmp:
        tokenizer.save_pretrained(tmp)
        for path in sorted(Path(tmp).rglob("*")):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def examples_fingerprint(examples: Iterable[Any]) -> str:
    """sha256 over the examples' fields (a cheap guard next to the file identity: edits within one mtime tick,
    filters and --max-train-examples all change it)."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(repr(example).encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    """A short, stable name for a dict of JSON-able key parts."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


class FeatureCache:
    """Stores under one folder, one sub-folder per key; a store is built once and then only opened."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, parts: dict[str, Any]) -> Path:
        return self.root / cache_key(parts)

    def get(self, parts: dict[str, Any]) -> FeatureStore | None:
        folder = self.path(parts)
        if (folder / META).is_file():
            return FeatureStore(folder)
        return None

    def get_or_build(
        self, parts: dict[str, Any], chunks: Callable[[], Iterable[Sequence[dict[str, Any]]]]
    ) -> tuple[FeatureStore, bool]:
        """(store, built): the cached store for these key parts, or one built from chunks() and kept."""
        found = self.get(parts)
        if found is not None:
            logger.info("features from the cache %s (%d features)", found.folder, len(found))
            return found, False
        folder = self.path(parts)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=self.root))
        start = time.perf_counter()
        try:
            write_store(tmp, chunks(), {"key": parts})
            try:
                os.rename(tmp, folder)
            except OSError:  # another process finished the same store first: use theirs
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        store = FeatureStore(folder)
        logger.info("features written to %s (%d features, %.1f MB, %.1f s)", folder, len(store),
                    store.nbytes() / 1e6, time.perf_counter() - start)  # fmt: skip
        return store, True


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/bertkit/features, else ~/.cache/bertkit/features (read when called, never at import)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bertkit" / "features"
