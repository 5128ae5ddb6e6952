"""ELECTRA (HF model_type "electra", e.g. HFL's Chinese ELECTRA discriminators): BERT's layers under `electra.`.

Differences: factorized embeddings (width embedding_size, then `embeddings_project` to hidden_size when they
differ); no pooler; the classifier reads [CLS] through dense -> gelu -> out_proj; multiple choice through
`sequence_summary` (dense -> gelu) then a classifier; the discriminator head (dense -> act -> one logit per
token) and the generator's MLM head (dense H -> E -> gelu -> LayerNorm -> tied decoder).
"""

from __future__ import annotations

from torch import Tensor, nn

from bertkit.model.bert import BertModel, Embeddings, PretrainedBert, activation
from bertkit.model.config import BertConfig
from bertkit.model.families import Dialect, Family
from bertkit.model.families.bert import bert_like_rows
from bertkit.model.heads import (
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForTokenClassification,
    FirstTokenClassifier,
)
from bertkit.model.rows import Row, linear, norm

PREFIX = "electra."


def _embeddings(config: BertConfig) -> Embeddings:
    return Embeddings(config, project=config.input_size != config.hidden_size)


def encoder_rows(config: BertConfig, pooler: bool) -> list[Row]:
    if pooler:
        raise ValueError("ELECTRA has no pooler; build its encoder with add_pooling_layer=False")
    rows = bert_like_rows(config, False, PREFIX)
    if config.input_size != config.hidden_size:
        rows += linear("embeddings.project", f"{PREFIX}embeddings_project", None)
    return rows


class ElectraForSequenceClassification(FirstTokenClassifier):
    hf_architecture = "ElectraForSequenceClassification"
    act = "gelu"


class ElectraForMultipleChoice(FirstTokenClassifier):
    hf_architecture = "ElectraForMultipleChoice"
    hf_dense, hf_out, act, dropout_first, choices = "sequence_summary.summary", "classifier", "gelu", False, True


class ElectraForMaskedLM(BertForMaskedLM):
    """The generator."""

    hf_architecture = "ElectraForMaskedLM"
    mlm_act = "gelu"

    def head_rows(self) -> list[Row]:
        return [
            *linear("mlm.transform", "generator_predictions.dense", None),
            *norm("mlm.norm", "generator_predictions.LayerNorm", None),
            Row("mlm.bias", ("generator_lm_head.bias",)),
        ]


class ElectraForPreTraining(PretrainedBert):
    """The discriminator: one 'was this token replaced' logit per token."""

    hf_architecture = "ElectraForPreTraining"

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = activation(config.hidden_act)
        self.prediction = nn.Linear(config.hidden_size, 1)
        self.init_weights()

    def head_rows(self) -> list[Row]:
        return linear("dense", "discriminator_predictions.dense", None) + linear(
            "prediction", "discriminator_predictions.dense_prediction", None
        )

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        *,
        task_type_ids: Tensor | None = None,
    ) -> Tensor:
        """-> (B, T) logits."""
        hidden = self.bert(input_ids, token_type_ids, attention_mask, task_type_ids=task_type_ids).last_hidden_state
        return self.prediction(self.act(self.dense(hidden))).squeeze(-1)


ELECTRA = Family(
    dialect=Dialect(
        "electra",
        fields=frozenset({"embedding_size"}),
        kept=frozenset({"summary_type", "summary_use_proj", "summary_activation", "summary_last_dropout"}),
    ),
    class_prefix="Electra",
    hf_prefix=PREFIX,
    embeddings=_embeddings,
    encoder_rows=encoder_rows,
    heads={
        "base": BertModel,
        "discriminator": ElectraForPreTraining,
        "masked_lm": ElectraForMaskedLM,
        "sequence_classification": ElectraForSequenceClassification,
        "token_classification": BertForTokenClassification,
        "question_answering": BertForQuestionAnswering,
        "multiple_choice": ElectraForMultipleChoice,
    },
    pooler=False,
    tied=("generator_lm_head.weight",),
)
