"""Tests for bertkit/weights/crc32c.py: the vectorised CRC-32C against the published check value and a
byte-at-a-time reference, and LevelDB's mask undone."""

from __future__ import annotations

import numpy as np
import pytest

from bertkit.weights.crc32c import crc32c, unmask


def _crc32c_reference(data: bytes) -> int:
    """Byte-at-a-time crc32c in plain Python."""
    table = []
    for byte in range(256):
        for _ in range(8):
            byte = (byte >> 1) ^ (0x82F63B78 if byte & 1 else 0)
        table.append(byte)
    crc = 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def test_crc32c_known_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0


@pytest.mark.parametrize("n", [1, 3, 4, 5, 63, 64, 65, 1000, 4097, 300_001, 4_194_309])
def test_crc32c_matches_reference(n: int) -> None:
    data = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
    assert crc32c(data.tobytes()) == crc32c(data) == _crc32c_reference(data.tobytes())


def test_unmask_undoes_leveldbs_mask() -> None:
    """LevelDB's mask (crc32c.h): rotate right by 15 bits, add 0xa282ead8."""
    for crc in (0, 1, 0xE3069283, 0xFFFFFFFF, crc32c(b"tensor bytes")):
        masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
        assert unmask(masked) == crc
