"""DistilBERT (HF model_type "distilbert"): BERT's layers under other names, no token types, no pooler.

Differences: config keys (dim, n_layers, n_heads, hidden_dim, activation, dropout...), layer names
(`distilbert.transformer.layer.i.attention.q_lin`...), the sinusoidal position option, and its heads: the
classifier is pre_classifier -> relu -> dropout -> classifier on [CLS]; the MLM head is vocab_transform ->
act -> vocab_layer_norm -> vocab_projector (tied to the word embeddings).
"""

from __future__ import annotations

from bertkit.model.bert import BertModel, Embeddings
from bertkit.model.config import BertConfig
from bertkit.model.families import Dialect, Family
from bertkit.model.heads import (
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForTokenClassification,
    FirstTokenClassifier,
)
from bertkit.model.rows import Row, linear, norm

PREFIX = "distilbert."


def encoder_rows(config: BertConfig, pooler: bool) -> list[Row]:
    if pooler:
        raise ValueError("DistilBERT has no pooler; build its encoder with add_pooling_layer=False")
    rows = [
        Row(f"embeddings.{t}.weight", (f"{PREFIX}embeddings.{t}.weight",))
        for t in ("word_embeddings", "position_embeddings")
    ]
    rows += norm("embeddings.norm", f"{PREFIX}embeddings.LayerNorm", None)
    for i in range(config.num_hidden_layers):
        ours, hf = f"encoder.layers.{i}", f"{PREFIX}transformer.layer.{i}"
        qkv = ("q_lin", "k_lin", "v_lin")
        rows += [
            Row(f"{ours}.attention.qkv.weight", tuple(f"{hf}.attention.{p}.weight" for p in qkv)),
            Row(f"{ours}.attention.qkv.bias", tuple(f"{hf}.attention.{p}.bias" for p in qkv)),
            *linear(f"{ours}.attention.out", f"{hf}.attention.out_lin", None),
            *norm(f"{ours}.attention_norm", f"{hf}.sa_layer_norm", None),
            *linear(f"{ours}.ffn_in", f"{hf}.ffn.lin1", None),
            *linear(f"{ours}.ffn_out", f"{hf}.ffn.lin2", None),
            *norm(f"{ours}.ffn_norm", f"{hf}.output_layer_norm", None),
        ]
    return rows


class DistilBertForSequenceClassification(FirstTokenClassifier):
    hf_architecture = "DistilBertForSequenceClassification"
    hf_dense, hf_out, act, dropout_first = "pre_classifier", "classifier", "relu", False


class DistilBertForMultipleChoice(DistilBertForSequenceClassification):
    hf_architecture = "DistilBertForMultipleChoice"
    choices = True


class DistilBertForMaskedLM(BertForMaskedLM):
    hf_architecture = "DistilBertForMaskedLM"

    def head_rows(self) -> list[Row]:
        return [
            *linear("mlm.transform", "vocab_transform", None),
            *norm("mlm.norm", "vocab_layer_norm", None),
            Row("mlm.bias", ("vocab_projector.bias",)),
        ]


DISTILBERT = Family(
    dialect=Dialect(
        "distilbert",
        renames={
            "dim": "hidden_size",
            "n_layers": "num_hidden_layers",
            "n_heads": "num_attention_heads",
            "hidden_dim": "intermediate_size",
            "activation": "hidden_act",
            "dropout": "hidden_dropout_prob",
            "attention_dropout": "attention_probs_dropout_prob",
            "seq_classif_dropout": "classifier_dropout",
        },
        fields=frozenset({"sinusoidal_pos_embds"}),
        kept=frozenset({"qa_dropout", "tie_weights_"}),
        implied={"type_vocab_size": 0, "classifier_dropout": 0.2},
        not_written=frozenset({"type_vocab_size", "layer_norm_eps", "position_embedding_type"}),
    ),
    class_prefix="DistilBert",
    hf_prefix=PREFIX,
    embeddings=Embeddings,
    encoder_rows=encoder_rows,
    heads={
        "base": BertModel,
        "masked_lm": DistilBertForMaskedLM,
        "sequence_classification": DistilBertForSequenceClassification,
        "token_classification": BertForTokenClassification,
        "question_answering": BertForQuestionAnswering,
        "multiple_choice": DistilBertForMultipleChoice,
    },
    pooler=False,
    tied=("vocab_projector.weight",),
    # transformers: DistilBertForTokenClassification drops out with config.dropout (not seq_classif_dropout),
    # DistilBertForQuestionAnswering with qa_dropout
    head_dropout={"token_classification": ("hidden_dropout_prob", 0.1), "question_answering": ("qa_dropout", 0.1)},
)
