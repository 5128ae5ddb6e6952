"""BERT (Google's bert_config.json and HF model_type "bert"): the reference every other family differs from.

Its weight table (ours <-> HF with the `bert.` prefix <-> Google TF) is written once here with the prefix as a
parameter: RoBERTa, ELECTRA and ERNIE keep BERT's layer names under their own prefix and reuse it.
"""

from __future__ import annotations

from bertkit.model.bert import BertModel, Embeddings
from bertkit.model.config import BertConfig
from bertkit.model.families import Dialect, Family
from bertkit.model.heads import (
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from bertkit.model.rows import Row, linear, norm


def embedding_rows(config: BertConfig, hf: str, tf: str | None) -> list[Row]:
    """word / position (/ token type) (/ task type) tables and the LayerNorm, under the HF prefix `hf`."""
    tables = ["word_embeddings", "position_embeddings"]
    tables += ["token_type_embeddings"] if config.type_vocab_size else []
    tables += ["task_type_embeddings"] if config.task_type_vocab_size else []
    rows = [
        Row(f"embeddings.{t}.weight", (f"{hf}embeddings.{t}.weight",), (f"{tf}embeddings/{t}",) if tf else ())
        for t in tables
    ]
    return rows + norm("embeddings.norm", f"{hf}embeddings.LayerNorm", f"{tf}embeddings/LayerNorm" if tf else None)


def layer_rows(ours: str, hf: str, tf: str | None) -> list[Row]:
    """One BERT layer: ours `encoder.layers.i`, HF `<prefix>encoder.layer.i`, TF `bert/encoder/layer_i`."""
    qkv = ("query", "key", "value")

    def t(name: str) -> str | None:
        return f"{tf}/{name}" if tf else None

    return [
        Row(
            f"{ours}.attention.qkv.weight",
            tuple(f"{hf}.attention.self.{p}.weight" for p in qkv),
            tuple(f"{tf}/attention/self/{p}/kernel" for p in qkv) if tf else (),
            tf_transpose=True,
        ),
        Row(
            f"{ours}.attention.qkv.bias",
            tuple(f"{hf}.attention.self.{p}.bias" for p in qkv),
            tuple(f"{tf}/attention/self/{p}/bias" for p in qkv) if tf else (),
        ),
        *linear(f"{ours}.attention.out", f"{hf}.attention.output.dense", t("attention/output/dense")),
        *norm(f"{ours}.attention_norm", f"{hf}.attention.output.LayerNorm", t("attention/output/LayerNorm")),
        *linear(f"{ours}.ffn_in", f"{hf}.intermediate.dense", t("intermediate/dense")),
        *linear(f"{ours}.ffn_out", f"{hf}.output.dense", t("output/dense")),
        *norm(f"{ours}.ffn_norm", f"{hf}.output.LayerNorm", t("output/LayerNorm")),
    ]


def bert_like_rows(config: BertConfig, pooler: bool, hf: str, tf: str | None = None) -> list[Row]:
    """Embeddings, every layer and the pooler with BERT's names under the HF prefix `hf` (TF prefix `tf`)."""
    rows = embedding_rows(config, hf, tf)
    for i in range(config.num_hidden_layers):
        rows += layer_rows(f"encoder.layers.{i}", f"{hf}encoder.layer.{i}", f"{tf}encoder/layer_{i}" if tf else None)
    if pooler:
        rows += linear("pooler.dense", f"{hf}pooler.dense", f"{tf}pooler/dense" if tf else None)
    return rows


def _check(config: BertConfig) -> None:
    if config.embedding_size not in (None, config.hidden_size):
        raise ValueError(
            f"embedding_size {config.embedding_size} != hidden_size {config.hidden_size} is a factorized embedding "
            "(ALBERT, ELECTRA), which BERT does not have: set model_type to 'albert' or 'electra'"
        )


BERT = Family(
    dialect=Dialect("bert", fields=frozenset({"embedding_size"}), check=_check),
    class_prefix="Bert",
    hf_prefix="bert.",
    embeddings=Embeddings,
    encoder_rows=lambda config, pooler: bert_like_rows(config, pooler, "bert.", "bert/"),
    heads={
        "base": BertModel,
        "pretraining": BertForPreTraining,
        "masked_lm": BertForMaskedLM,
        "sequence_classification": BertForSequenceClassification,
        "token_classification": BertForTokenClassification,
        "question_answering": BertForQuestionAnswering,
        "multiple_choice": BertForMultipleChoice,
    },
    more=(BertForNextSentencePrediction,),
    tied=("cls.predictions.decoder.weight", "cls.predictions.decoder.bias"),
)
