"""ALBERT (HF model_type "albert"; Google's albert_config.json): factorized embeddings and shared layers.

Differences: embeddings of width embedding_size, always projected to hidden_size
(`encoder.embedding_hidden_mapping_in`); num_hidden_groups groups of inner_group_num layers shared across the
num_hidden_layers steps (`albert_layer_groups.g.albert_layers.j`, with its own sub-layer names); the pooler is a
bare Linear (`albert.pooler`); the MLM head is `predictions` (dense H -> E); sentence-order prediction
(`sop_classifier`) takes NSP's place. Classification, tagging, QA and multiple-choice heads are BERT's.
Google's TF checkpoints (albert_config.json + model.ckpt-*) load through the TF names of the same rows:
`bert/encoder/transformer/group_g/inner_group_j/{attention_1, LayerNorm, ffn_1, LayerNorm_1}/...`, the
projection `bert/encoder/embedding_hidden_mapping_in`, and `cls/predictions` / `cls/seq_relationship`.
"""

from __future__ import annotations

from bertkit.model.bert import BertModel, Embeddings
from bertkit.model.config import BertConfig
from bertkit.model.families import Dialect, Family
from bertkit.model.heads import (
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from bertkit.model.rows import Row, linear, norm

PREFIX = "albert."


def _embeddings(config: BertConfig) -> Embeddings:
    return Embeddings(config, project=True)


def encoder_rows(config: BertConfig, pooler: bool) -> list[Row]:
    """Ours <-> HF `albert.` <-> Google's ALBERT TF names (bert/encoder/transformer/group_g/inner_group_j/...)."""
    tables = ["word_embeddings", "position_embeddings"] + (["token_type_embeddings"] if config.type_vocab_size else [])
    rows = [Row(f"embeddings.{t}.weight", (f"{PREFIX}embeddings.{t}.weight",), (f"bert/embeddings/{t}",)) for t in tables]
    rows += norm("embeddings.norm", f"{PREFIX}embeddings.LayerNorm", "bert/embeddings/LayerNorm")
    rows += linear(
        "embeddings.project", f"{PREFIX}encoder.embedding_hidden_mapping_in", "bert/encoder/embedding_hidden_mapping_in"
    )
    groups, inner = config.num_hidden_groups or 1, config.inner_group_num
    for g in range(groups):
        for j in range(inner):
            ours, hf = f"encoder.layers.{g * inner + j}", f"{PREFIX}encoder.albert_layer_groups.{g}.albert_layers.{j}"
            tf = f"bert/encoder/transformer/group_{g}/inner_group_{j}"
            qkv = ("query", "key", "value")
            rows += [
                Row(
                    f"{ours}.attention.qkv.weight",
                    tuple(f"{hf}.attention.{p}.weight" for p in qkv),
                    tuple(f"{tf}/attention_1/self/{p}/kernel" for p in qkv),
                    tf_transpose=True,
                ),
                Row(
                    f"{ours}.attention.qkv.bias",
                    tuple(f"{hf}.attention.{p}.bias" for p in qkv),
                    tuple(f"{tf}/attention_1/self/{p}/bias" for p in qkv),
                ),
                *linear(f"{ours}.attention.out", f"{hf}.attention.dense", f"{tf}/attention_1/output/dense"),
                *norm(f"{ours}.attention_norm", f"{hf}.attention.LayerNorm", f"{tf}/LayerNorm"),
                *linear(f"{ours}.ffn_in", f"{hf}.ffn", f"{tf}/ffn_1/intermediate/dense"),
                *linear(f"{ours}.ffn_out", f"{hf}.ffn_output", f"{tf}/ffn_1/intermediate/output/dense"),
                *norm(f"{ours}.ffn_norm", f"{hf}.full_layer_layer_norm", f"{tf}/LayerNorm_1"),
            ]
    if pooler:
        rows += linear("pooler.dense", f"{PREFIX}pooler", "bert/pooler/dense")
    return rows


MLM_ROWS = [
    *linear("mlm.transform", "predictions.dense", "cls/predictions/transform/dense"),
    *norm("mlm.norm", "predictions.LayerNorm", "cls/predictions/transform/LayerNorm"),
    Row("mlm.bias", ("predictions.bias",), ("cls/predictions/output_bias",)),
]
# Google's run_pretraining.py keeps BERT's NSP names for sentence-order prediction: [2, H], not transposed
SOP_ROWS = [
    Row("nsp.weight", ("sop_classifier.classifier.weight",), ("cls/seq_relationship/output_weights",)),
    Row("nsp.bias", ("sop_classifier.classifier.bias",), ("cls/seq_relationship/output_bias",)),
]


class AlbertForMaskedLM(BertForMaskedLM):
    hf_architecture = "AlbertForMaskedLM"

    def head_rows(self) -> list[Row]:
        return MLM_ROWS


class AlbertForPreTraining(BertForPreTraining):
    """MLM + sentence-order prediction; nsp_logits are the SOP logits."""

    hf_architecture = "AlbertForPreTraining"

    def head_rows(self) -> list[Row]:
        return MLM_ROWS + SOP_ROWS


def _check(config: BertConfig) -> None:
    if config.embedding_size is None:
        raise ValueError("an ALBERT config needs embedding_size")


ALBERT = Family(
    dialect=Dialect(
        "albert",
        renames={"classifier_dropout_prob": "classifier_dropout"},
        fields=frozenset({"embedding_size", "num_hidden_groups", "inner_group_num"}),
        kept=frozenset({"net_structure_type", "gap_size", "num_memory_blocks", "down_scale_factor"}),
        # ALBERT's defaults, for Google's albert_config.json (transformers cannot build a dropout of None)
        implied={"embedding_size": 128, "num_hidden_groups": 1, "hidden_act": "gelu_new", "classifier_dropout": 0.1},
        check=_check,
    ),
    class_prefix="Albert",
    hf_prefix=PREFIX,
    embeddings=_embeddings,
    encoder_rows=encoder_rows,
    heads={
        "base": BertModel,
        "pretraining": AlbertForPreTraining,
        "masked_lm": AlbertForMaskedLM,
        "sequence_classification": BertForSequenceClassification,
        "token_classification": BertForTokenClassification,
        "question_answering": BertForQuestionAnswering,
        "multiple_choice": BertForMultipleChoice,
    },
    tied=("predictions.decoder.weight", "predictions.decoder.bias"),
    tokenizer="sentencepiece",
)
