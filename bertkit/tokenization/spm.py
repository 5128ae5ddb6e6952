"""Read a SentencePiece ``.model`` file (a ``ModelProto``) without the sentencepiece or protobuf packages.

Only the fields a tokenizer needs: the pieces (text, score, type), the model type, the special ids and the
normalizer's precompiled character map. Field numbers are those of sentencepiece's
``src/sentencepiece_model.proto``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

# SentencePiece.Type
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
UNIGRAM, BPE = 1, 2  # TrainerSpec.ModelType


@dataclass(frozen=True)
class Piece:
    piece: str
    score: float
    type: int = NORMAL


@dataclass(frozen=True)
class SentencePieceModel:
    """What a ``.model`` file holds, as far as a tokenizer is concerned."""

    pieces: tuple[Piece, ...]
    model_type: int = UNIGRAM
    unk_id: int = 0
    byte_fallback: bool = False
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True


def read_spm(path: Path) -> SentencePieceModel:
    """Parse a SentencePiece model file; ValueError names the file when it is not one."""
    data = Path(path).read_bytes()
    try:
        fields = _fields(data)
        pieces = tuple(_piece(value) for number, value in fields if number == 1)
        trainer = dict(_fields(next((v for n, v in fields if n == 2), b"")))
        normalizer = dict(_fields(next((v for n, v in fields if n == 3), b"")))
    except (IndexError, ValueError, UnicodeDecodeError, struct.error) as e:
        raise ValueError(f"{path} is not a SentencePiece model file ({e})") from e
    if not pieces:
        raise ValueError(f"{path} is not a SentencePiece model file: it has no pieces")
    return SentencePieceModel(
        pieces=pieces,
        model_type=_int(trainer.get(3, UNIGRAM)),
        unk_id=_int(trainer.get(40, 0)),
        byte_fallback=bool(trainer.get(35, 0)),
        precompiled_charsmap=bytes(normalizer.get(2, b"")),
        add_dummy_prefix=bool(normalizer.get(3, 1)),
    )


def _piece(data: bytes) -> Piece:
    f = dict(_fields(data))
    score = struct.unpack("<f", struct.pack("<I", f.get(2, 0)))[0]
    return Piece(bytes(f.get(1, b"")).decode("utf-8"), score, int(f.get(3, NORMAL)))


def _int(value: int) -> int:
    """An int32 field: negative values arrive as 64-bit two's complement varints."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) of each field of a protobuf message: ints for varint/fixed32, bytes otherwise."""
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            out.append((number, value))
        elif wire == 2:
            length, i = _varint(data, i)
            if i + length > len(data):
                raise ValueError("truncated field")
            out.append((number, data[i : i + length]))
            i += length
        elif wire == 5:
            out.append((number, struct.unpack_from("<I", data, i)[0]))
            i += 4
        elif wire == 1:
            i += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            return value, i
        shift += 7
