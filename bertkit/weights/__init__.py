"""Getting tensors in and out of checkpoint files; plugs the file formats into Model.from_pretrained (model/io.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from bertkit.model.io import plug
from bertkit.weights.hf import save_hf
from bertkit.weights.load import load_pretrained


class _Formats:
    """bertkit.model.io.CheckpointIO over load_pretrained and save_hf."""

    def load(self, model_class: type[nn.Module], path: str | Path, **options: Any) -> nn.Module:
        return load_pretrained(path, model_class, **options)[0]

    def save(self, model: nn.Module, directory: str | Path) -> None:
        save_hf(model, directory)


plug(_Formats())
