"""THE name table: each bertkit parameter, the Hugging Face key(s) and the Google TF variable(s) it comes from.

A parameter with several sources (the fused q/k/v projection) is their concatenation along dim 0.
Google's TF kernels are [in, out]; a torch Linear weight is [out, in], hence `tf_transpose`.
HF keys are written in their canonical form: encoder keys carry the `bert.` prefix, LayerNorms say
weight/bias (hf.py normalises the prefix-less and gamma/beta spellings before looking them up).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bertkit.model.bert import PretrainedBert


@dataclass(frozen=True)
class Entry:
    ours: str
    hf: tuple[str, ...]
    tf: tuple[str, ...]
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


def _linear(ours: str, hf: str, tf: str, transpose: bool = True) -> list[Entry]:
    return [
        Entry(f"{ours}.weight", (f"{hf}.weight",), (f"{tf}/kernel",), transpose),
        Entry(f"{ours}.bias", (f"{hf}.bias",), (f"{tf}/bias",)),
    ]


def _norm(ours: str, hf: str, tf: str) -> list[Entry]:
    return [
        Entry(f"{ours}.weight", (f"{hf}.weight",), (f"{tf}/gamma",)),
        Entry(f"{ours}.bias", (f"{hf}.bias",), (f"{tf}/beta",)),
    ]


def _embeddings() -> list[Entry]:
    tables = ("word_embeddings", "position_embeddings", "token_type_embeddings")
    rows = [
        Entry(f"embeddings.{t}.weight", (f"bert.embeddings.{t}.weight",), (f"bert/embeddings/{t}",))
        for t in tables
    ]
    return rows + _norm("embeddings.norm", "bert.embeddings.LayerNorm", "bert/embeddings/LayerNorm")


def _layer(i: int) -> list[Entry]:
    ours, hf, tf = f"encoder.layers.{i}", f"bert.encoder.layer.{i}", f"bert/encoder/layer_{i}"
    qkv = ("query", "key", "value")
    return [
        Entry(
            f"{ours}.attention.qkv.weight",
            tuple(f"{hf}.attention.self.{p}.weight" for p in qkv),
            tuple(f"{tf}/attention/self/{p}/kernel" for p in qkv),
            tf_transpose=True,
        ),
        Entry(
            f"{ours}.attention.qkv.bias",
            tuple(f"{hf}.attention.self.{p}.bias" for p in qkv),
            tuple(f"{tf}/attention/self/{p}/bias" for p in qkv),
        ),
        *_linear(f"{ours}.attention.out", f"{hf}.attention.output.dense", f"{tf}/attention/output/dense"),
        *_norm(
            f"{ours}.attention_norm", f"{hf}.attention.output.LayerNorm", f"{tf}/attention/output/LayerNorm"
        ),
        *_linear(f"{ours}.ffn_in", f"{hf}.intermediate.dense", f"{tf}/intermediate/dense"),
        *_linear(f"{ours}.ffn_out", f"{hf}.output.dense", f"{tf}/output/dense"),
        *_norm(f"{ours}.ffn_norm", f"{hf}.output.LayerNorm", f"{tf}/output/LayerNorm"),
    ]


POOLER = _linear("pooler.dense", "bert.pooler.dense", "bert/pooler/dense")

# Head entries, keyed by the attribute name of the head on our BertFor* models.
HEADS: dict[str, list[Entry]] = {
    "mlm": [
        *_linear("mlm.transform", "cls.predictions.transform.dense", "cls/predictions/transform/dense"),
        *_norm("mlm.norm", "cls.predictions.transform.LayerNorm", "cls/predictions/transform/LayerNorm"),
        Entry("mlm.bias", ("cls.predictions.bias",), ("cls/predictions/output_bias",)),
    ],
    "nsp": [
        Entry("nsp.weight", ("cls.seq_relationship.weight",), ("cls/seq_relationship/output_weights",)),
        Entry("nsp.bias", ("cls.seq_relationship.bias",), ("cls/seq_relationship/output_bias",)),
    ],
    # Google's run_classifier.py names its layer output_weights [L, H] / output_bias, at the top level.
    "classifier": [
        Entry("classifier.weight", ("classifier.weight",), ("output_weights",)),
        Entry("classifier.bias", ("classifier.bias",), ("output_bias",)),
    ],
    # Google's run_squad.py: cls/squad/output_weights [2, H].
    "qa": [
        Entry("qa.weight", ("qa_outputs.weight",), ("cls/squad/output_weights",)),
        Entry("qa.bias", ("qa_outputs.bias",), ("cls/squad/output_bias",)),
    ],
}

# Source tensors that are known to carry nothing new: tied copies and buffers.
TIED_OR_BUFFERS = (
    "cls.predictions.decoder.weight",
    "cls.predictions.decoder.bias",
    "bert.embeddings.position_ids",
)


def encoder_prefix(model: PretrainedBert) -> str:
    """'' for a bare BertModel, 'bert.' for the BertFor* models (their encoder sits in .bert)."""
    return "bert." if hasattr(model, "bert") else ""


def table_for(model: PretrainedBert) -> tuple[list[Entry], list[Entry]]:
    """(encoder entries, head entries) for this model, with `ours` as keys of model.state_dict()."""
    prefix = encoder_prefix(model)
    encoder = model.bert if prefix else model
    rows = _embeddings() + [e for i in range(model.config.num_hidden_layers) for e in _layer(i)]
    if encoder.pooler is not None:
        rows += POOLER
    rows = [Entry(prefix + e.ours, e.hf, e.tf, e.tf_transpose) for e in rows]
    heads = [e for name, entries in HEADS.items() if hasattr(model, name) for e in entries]
    return rows, heads
