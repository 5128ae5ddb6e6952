"""The one door from model classes to checkpoint files: `Model.from_pretrained` / `save_pretrained` go through it.

model/ knows no file format and imports nothing above it (STYLE §2). The file formats live in bertkit.weights,
which imports model/ and plugs its reader and writer in here when it is imported. The dependency then points one
way only, weights -> model, and `BertModel.from_pretrained(path)` still reads the way users expect: importing any
bertkit module runs bertkit/__init__.py, which imports bertkit.weights, so the door is always open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from torch import nn


class CheckpointIO(Protocol):
    def load(self, model_class: type[nn.Module], path: str | Path, **options: Any) -> nn.Module: ...

    def save(self, model: nn.Module, directory: str | Path) -> None: ...


_plugged: list[CheckpointIO] = []


def plug(io: CheckpointIO) -> None:
    """Called once by bertkit.weights: the formats from_pretrained / save_pretrained read and write."""
    _plugged[:] = [io]


def checkpoint_io() -> CheckpointIO:
    if not _plugged:
        raise RuntimeError("no checkpoint reader is plugged in: `import bertkit.weights` before from_pretrained")
    return _plugged[0]
