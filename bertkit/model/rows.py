"""Weight rows: how each of our parameters is named in a Hugging Face state dict and a Google TF checkpoint.

Every model declares its rows next to its modules: the encoder declares its table, and each head class declares
the rows of its own parameters (`PretrainedBert.head_rows`). bertkit.weights reads and writes checkpoints from
these rows only, so a new head is one class with its rows and nothing else to edit.

A parameter with several sources (the fused q/k/v projection) is their concatenation along dim 0.
Google's TF kernels are [in, out]; a torch Linear weight is [out, in], hence `tf_transpose`.
A head with no transformers equivalent (a BiLSTM, a CRF) is declared with `own_rows`: it is saved under our own
parameter names in the same model.safetensors, and has no TF name (tf == ()).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn


@dataclass(frozen=True)
class Row:
    ours: str  # key of model.state_dict()
    hf: tuple[str, ...]  # Hugging Face key(s), canonical spelling (LayerNorm weight/bias, encoder prefix included)
    tf: tuple[str, ...] = ()  # Google TF variable(s); () when the parameter has no TF form
    tf_transpose: bool = False

    def from_parts(self, parts: list[torch.Tensor], tf: bool) -> torch.Tensor:
        """Source tensors (HF or TF layout) -> our tensor."""
        if tf and self.tf_transpose:
            parts = [p.t() for p in parts]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)

    def to_parts(self, tensor: torch.Tensor, tf: bool) -> list[torch.Tensor]:
        """Our tensor -> HF (or TF) tensors, in the order of self.hf / self.tf."""
        parts = list(tensor.chunk(len(self.hf), dim=0)) if len(self.hf) > 1 else [tensor]
        return [p.t() for p in parts] if tf and self.tf_transpose else parts


def linear(ours: str, hf: str, tf: str | None, transpose: bool = True) -> list[Row]:
    """weight + bias of an nn.Linear; TF names '<tf>/kernel', '<tf>/bias'."""
    return [
        Row(f"{ours}.weight", (f"{hf}.weight",), (f"{tf}/kernel",) if tf else (), transpose),
        Row(f"{ours}.bias", (f"{hf}.bias",), (f"{tf}/bias",) if tf else ()),
    ]


def norm(ours: str, hf: str, tf: str | None) -> list[Row]:
    """weight + bias of an nn.LayerNorm; TF names gamma / beta."""
    return [
        Row(f"{ours}.weight", (f"{hf}.weight",), (f"{tf}/gamma",) if tf else ()),
        Row(f"{ours}.bias", (f"{hf}.bias",), (f"{tf}/beta",) if tf else ()),
    ]


def own_rows(prefix: str, module: nn.Module) -> list[Row]:
    """Rows for a module transformers does not know: saved under our own names, no TF form.

    Example: own_rows("crf", CRF(3)) -> [Row("crf.start_transitions", ("crf.start_transitions",)), ...].
    """
    return [Row(f"{prefix}.{k}", (f"{prefix}.{k}",)) for k in module.state_dict()]


def under(rows: list[Row], ours: str, hf: str = "", tf: str = "") -> list[Row]:
    """The same rows with prefixes added: a submodule's rows seen from its parent."""
    return [
        replace(r, ours=ours + r.ours, hf=tuple(hf + k for k in r.hf), tf=tuple(tf + k for k in r.tf))
        for r in rows
    ]


def check_rows(rows: list[Row], state_keys: list[str], owner: str) -> None:
    """Every state_dict key has exactly one row and every row a key; otherwise a parameter would be dropped."""
    declared = [r.ours for r in rows]
    declared_set, state_set = set(declared), set(state_keys)
    missing = [k for k in state_keys if k not in declared_set]
    extra = [k for k in declared if k not in state_set]
    repeated = sorted({k for k in declared if declared.count(k) > 1})
    if missing or extra or repeated:
        raise ValueError(
            f"{owner}'s weight rows do not match its parameters: no row for {missing}, rows without a "
            f"parameter {extra}, repeated rows {repeated}. Declare every parameter of a head in its head_rows() "
            "(own_rows(...) for parameters transformers does not know)"
        )
