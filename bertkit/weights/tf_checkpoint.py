"""Read Google TensorFlow checkpoints (tensor bundles) with numpy alone: no TensorFlow, no protobuf.

A checkpoint `PREFIX` (e.g. `bert_model.ckpt`) is an index file `PREFIX.index` plus data shards
`PREFIX.data-0000K-of-0000N`.

- The index is a LevelDB-format SSTable. It ends in a 48-byte footer: two block handles (varint offset and
  size of the metaindex and index blocks), zero padding, and the magic number 0xdb4775248b80fb57. Each block
  is a run of prefix-compressed entries (varint shared, unshared and value lengths, key suffix, value),
  then restart offsets (uint32), then their count, and is followed by a 5-byte trailer: the compression
  type (0 = none, the only kind TF writes here) and the masked crc32c of block and type byte. The index
  block maps keys to the handles of data blocks, which map variable names to values.
- Each value is a protobuf `BundleEntryProto` (dtype, shape, shard_id, offset, size, masked crc32c of the
  tensor bytes, slices). The empty key holds `BundleHeaderProto` (num_shards, endianness, version).
  Keys starting with a NUL byte describe slices of partitioned variables; they are skipped.
- A tensor is `size` raw little-endian bytes at `offset` in its shard, in C order.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from bertkit.weights.crc32c import crc32c, unmask

logger = logging.getLogger(__name__)

_MAGIC = 0xDB4775248B80FB57
_FOOTER_BYTES = 48
_BLOCK_TRAILER_BYTES = 5

# TensorFlow's DataType enum (types.proto) -> name; numpy dtypes for those we read.
_DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
                8: "complex64", 9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 18: "complex128",
                19: "float16", 20: "resource", 21: "variant", 22: "uint32", 23: "uint64"}  # fmt: skip
_NUMPY_DTYPES = {name: np.dtype(name).newbyteorder("<") for name in
                 ("float32", "float64", "float16", "int8", "int16", "int32", "int64",
                  "uint8", "uint16", "uint32", "uint64", "bool")}  # fmt: skip
_NUMPY_DTYPES["bfloat16"] = np.dtype("<u2")  # widened to float32 after reading


class CheckpointError(ValueError):
    """The checkpoint files exist but cannot be read: corrupt, truncated or in a form we do not support."""


# ---------------------------------------------------------------- protobuf wire format and the SSTable index
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]  # IndexError on truncation, turned into CheckpointError by the caller
        result |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs of a protobuf message; varints and fixed ints as int, the rest as bytes."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, pos = _varint(buf, pos)
        elif wire_type in (1, 5):  # fixed64, fixed32
            width = 8 if wire_type == 1 else 4
            value, pos = int.from_bytes(buf[pos : pos + width], "little"), pos + width
        elif wire_type == 2:
            length, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos : pos + length]), pos + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type} in field {number}")
        if pos > len(buf):
            raise ValueError("protobuf message ends in the middle of a field")
        yield number, value


def _read_block(index: bytes, offset: int, size: int, path: Path) -> bytes:
    end = offset + size + _BLOCK_TRAILER_BYTES
    if end > len(index) - _FOOTER_BYTES:
        raise CheckpointError(
            f"checkpoint index {path} is corrupt: a block at bytes {offset}..{end} runs past the data "
            f"({len(index)} bytes); re-download or re-copy the checkpoint"
        )
    block, kind, stored = index[offset : offset + size], index[offset + size], index[offset + size + 1 : end]
    if crc32c(index[offset : offset + size + 1]) != unmask(int.from_bytes(stored, "little")):
        raise CheckpointError(
            f"checkpoint index {path} is corrupt: block at byte {offset} fails its crc32c check; "
            "re-download or re-copy the checkpoint"
        )
    if kind != 0:
        raise CheckpointError(
            f"checkpoint index {path} has a block compressed with type {kind} (1 is snappy); bertkit reads "
            "only uncompressed indexes, as TensorFlow writes them: re-save the checkpoint with tf.train.Saver"
        )
    return block


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Key/value pairs of one block; keys share a prefix with the previous key."""
    restarts = int.from_bytes(block[-4:], "little")
    end, pos, key = len(block) - 4 - 4 * restarts, 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + value_length]
        pos += value_length


def _read_table(path: Path) -> dict[bytes, bytes]:
    """All key/value pairs of an SSTable file."""
    index = path.read_bytes()
    if len(index) < _FOOTER_BYTES or int.from_bytes(index[-8:], "little") != _MAGIC:
        raise CheckpointError(
            f"{path} is not a TensorFlow checkpoint index: its last 8 bytes are not the table magic number "
            f"0x{_MAGIC:x} (truncated or corrupt file); re-download or re-copy the checkpoint"
        )
    try:
        _, pos = _varint(index, len(index) - _FOOTER_BYTES)  # the metaindex block handle: not needed
        _, pos = _varint(index, pos)
        index_offset, pos = _varint(index, pos)
        index_size, pos = _varint(index, pos)
        table = {}
        for _, handle in _block_entries(_read_block(index, index_offset, index_size, path)):
            offset, pos = _varint(handle, 0)
            size, _ = _varint(handle, pos)
            table.update(_block_entries(_read_block(index, offset, size, path)))
    except IndexError as e:
        raise CheckpointError(f"checkpoint index {path} is corrupt ({e}); re-download or re-copy it") from e
    return table


# ---------------------------------------------------------------- bundle entries
@dataclass(frozen=True)
class _Entry:
    dtype: str
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    masked_crc32c: int
    sliced: bool


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _parse_shape(message: bytes) -> tuple[int, ...]:
    dims = []
    for number, dim in _fields(message):
        if number == 2:  # repeated Dim {int64 size = 1; string name = 2}
            dims.append(next((_signed64(v) for n, v in _fields(dim) if n == 1), 0))
    return tuple(dims)


def _parse_entry(value: bytes) -> _Entry:
    fields = dict(_fields(value))  # repeated fields (only slices, 7) keep their last value
    dtype_enum = fields.get(1, 0)
    return _Entry(
        dtype=_DTYPE_NAMES.get(dtype_enum, f"dtype_enum_{dtype_enum}"),
        shape=_parse_shape(fields.get(2, b"")),
        shard_id=fields.get(3, 0),
        offset=fields.get(4, 0),
        size=fields.get(5, 0),
        masked_crc32c=fields.get(6, 0),
        sliced=7 in fields,
    )


def _index_of(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".index")


def _read_index(prefix: Path) -> tuple[int, dict[str, _Entry]]:
    """(number of data shards, variable name -> entry) from PREFIX.index."""
    path = _index_of(prefix)  # resolve_checkpoint_prefix has checked that it exists
    table = _read_table(path)
    if b"" not in table:
        raise CheckpointError(
            f"{path} has no bundle header (empty key): it is not a TensorFlow tensor bundle"
        )
    try:
        header = dict(_fields(table.pop(b"")))
        entries = {
            key.decode("utf-8"): _parse_entry(value)
            for key, value in table.items()
            if not key.startswith(b"\0")
        }
    except (ValueError, IndexError) as e:
        raise CheckpointError(f"checkpoint index {path} is corrupt: {e}; re-download or re-copy it") from e
    if header.get(2, 0) != 0:
        raise CheckpointError(
            f"checkpoint {prefix} was written big-endian; bertkit reads only little-endian ones"
        )
    return header.get(1, 1), entries


# ---------------------------------------------------------------- public API
def resolve_checkpoint_prefix(path: str | Path) -> Path:
    """Checkpoint prefix from a folder (via its `checkpoint` file or its only `*.index`) or from a prefix.

    Example: resolve_checkpoint_prefix("uncased_L-12_H-768_A-12") -> Path(".../bert_model.ckpt")
    """
    path = Path(path)
    if path.is_dir():
        state = path / "checkpoint"
        if state.is_file():
            match = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', state.read_text(), flags=re.MULTILINE)
            if match is None:
                raise CheckpointError(f"{state} has no model_checkpoint_path line; fix or delete that file")
            named = Path(match.group(1))
            candidates = [named if named.is_absolute() else path / named, path / named.name]
            for prefix in candidates:
                if _index_of(prefix).is_file():
                    return prefix
            raise FileNotFoundError(
                f"{state} names checkpoint {named}, but neither {_index_of(candidates[0])} nor "
                f"{_index_of(candidates[1])} exists; copy that checkpoint's files into {path} or edit {state}"
            )
        indexes = sorted(path.glob("*.index"))
        if len(indexes) == 1:
            return indexes[0].with_suffix("")
        if not indexes:
            raise FileNotFoundError(
                f"no TensorFlow checkpoint in {path}: looked for a `checkpoint` file and for a `*.index` file; "
                "pass the folder holding e.g. bert_model.ckpt.index, or the prefix path/bert_model.ckpt"
            )
        raise FileNotFoundError(
            f"{path} holds several checkpoints ({', '.join(p.name for p in indexes)}) and no `checkpoint` file "
            "says which to use; pass the prefix, e.g. " + str(indexes[-1].with_suffix(""))
        )
    if path.suffix == ".index" or re.search(r"\.data-\d{5}-of-\d{5}$", path.name):
        path = path.with_name(re.sub(r"\.(index|data-\d{5}-of-\d{5})$", "", path.name))
    if _index_of(path).is_file():
        return path
    raise FileNotFoundError(
        f"no TensorFlow checkpoint at {path}: looked for {_index_of(path)}; pass a folder holding a checkpoint "
        "or a prefix such as path/bert_model.ckpt (the file names without .index or .data-*)"
    )


def list_variables(prefix: str | Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Variable name -> (dtype name, shape), sorted by name like tf.train.list_variables."""
    _, entries = _read_index(resolve_checkpoint_prefix(prefix))
    return {name: (entry.dtype, entry.shape) for name, entry in sorted(entries.items())}


def read_checkpoint(
    prefix: str | Path, names: Iterable[str] | None = None, *, verify: bool = True
) -> dict[str, np.ndarray]:
    """Variables of a checkpoint as numpy arrays (bfloat16 widened to float32), each checked by its crc32c.

    With names=None, reads every variable of a supported dtype and skips (with a warning) the others.
    """
    prefix = resolve_checkpoint_prefix(prefix)
    num_shards, entries = _read_index(prefix)
    if names is None:
        wanted = [name for name in sorted(entries) if not _unreadable(entries[name])]
        if skipped := sorted(set(entries) - set(wanted)):
            logger.warning("skipping %d variables we cannot read in %s: %s", len(skipped), prefix, skipped)
    else:
        wanted = list(names)
        for name in wanted:
            if name not in entries:
                close = difflib.get_close_matches(name, entries, n=3)
                raise ValueError(f"variable {name!r} is not in checkpoint {prefix}; close names: {close}")
            if reason := _unreadable(entries[name]):
                raise ValueError(f"variable {name!r} in {prefix} {reason}")
    arrays: dict[str, np.ndarray] = {}
    by_shard: dict[int, list[str]] = {}
    for name in wanted:
        by_shard.setdefault(entries[name].shard_id, []).append(name)
    for shard_id, shard_names in sorted(by_shard.items()):
        path = prefix.with_name(f"{prefix.name}.data-{shard_id:05d}-of-{num_shards:05d}")
        if not path.is_file():
            raise FileNotFoundError(
                f"checkpoint data file {path} is missing (the index lists {num_shards} shard(s)); "
                f"copy all the {prefix.name}.* files together"
            )
        with path.open("rb") as file:
            file_size = path.stat().st_size
            for name in sorted(shard_names, key=lambda n: entries[n].offset):  # read the file front to back
                arrays[name] = _read_tensor(file, path, file_size, name, entries[name], verify)
    logger.debug("read %d variables from %s", len(arrays), prefix)
    return {name: arrays[name] for name in wanted}


def _unreadable(entry: _Entry) -> str:
    """Why we cannot read this entry, or "" if we can."""
    if entry.sliced:
        return "is partitioned into slices, which bertkit does not read"
    if entry.dtype not in _NUMPY_DTYPES:
        return f"has dtype {entry.dtype}, which bertkit does not read"
    return ""


def _read_tensor(
    file: BinaryIO, path: Path, file_size: int, name: str, entry: _Entry, verify: bool
) -> np.ndarray:
    start, end = entry.offset, entry.offset + entry.size
    if end > file_size:
        raise CheckpointError(
            f"checkpoint data file {path} is truncated: variable {name} needs bytes {start}..{end} but the file "
            f"has {file_size} bytes; re-download or re-copy the checkpoint"
        )
    dtype = _NUMPY_DTYPES[entry.dtype]
    if entry.size != int(np.prod(entry.shape, dtype=np.int64)) * dtype.itemsize:
        raise CheckpointError(
            f"variable {name} in {path} has {entry.size} bytes, which does not fit dtype {entry.dtype} and shape "
            f"{entry.shape}; the checkpoint is corrupt"
        )
    buffer = bytearray(entry.size)  # writable, so torch.from_numpy does not warn
    file.seek(start)
    file.readinto(buffer)
    if verify and crc32c(buffer) != unmask(entry.masked_crc32c):
        raise CheckpointError(
            f"variable {name} in checkpoint data file {path} fails its crc32c check (bytes {start}..{end}); "
            "the file is corrupt: re-download or re-copy the checkpoint"
        )
    array = np.frombuffer(buffer, dtype=dtype).reshape(entry.shape)
    if entry.dtype == "bfloat16":  # bfloat16 is the high half of a float32
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array
