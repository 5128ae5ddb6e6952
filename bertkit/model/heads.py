"""The classic BERT heads and the BertFor* models that pair them with the encoder. Heads return logits only.

Shapes: B batch, T length, C choices, P predicted (masked) positions, H hidden, V vocab, L labels.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from bertkit.model.bert import BertModel, PretrainedBert, activation
from bertkit.model.config import BertConfig
from bertkit.model.dropout import Dropout
from bertkit.model.families import family_of
from bertkit.model.rows import Row, linear, norm


class MaskedLMHead(nn.Module):
    """dense -> act -> LayerNorm -> decoder tied to the word embeddings (+ its own bias).

    The dense layer maps H to the embedding width E (= H but for ALBERT / ELECTRA); act is hidden_act unless
    the family fixes it (RoBERTa's and ELECTRA's generator use the exact GELU).
    """

    def __init__(self, config: BertConfig, act: str | None = None):
        super().__init__()
        self.transform = nn.Linear(config.hidden_size, config.input_size)
        self.act = activation(act or config.hidden_act)
        self.norm = nn.LayerNorm(config.input_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: Tensor, word_embeddings: Tensor) -> Tensor:
        """(..., H), (V, E) -> (..., V)."""
        return nn.functional.linear(self.norm(self.act(self.transform(hidden))), word_embeddings, self.bias)


# Each head's rows (bertkit.model.rows), beside the head: ours <-> transformers <-> Google TF.
MLM_ROWS = [
    *linear("mlm.transform", "cls.predictions.transform.dense", "cls/predictions/transform/dense"),
    *norm("mlm.norm", "cls.predictions.transform.LayerNorm", "cls/predictions/transform/LayerNorm"),
    Row("mlm.bias", ("cls.predictions.bias",), ("cls/predictions/output_bias",)),
]
NSP_ROWS = [
    Row("nsp.weight", ("cls.seq_relationship.weight",), ("cls/seq_relationship/output_weights",)),
    Row("nsp.bias", ("cls.seq_relationship.bias",), ("cls/seq_relationship/output_bias",)),
]
# Google's run_classifier.py names its layer output_weights [L, H] / output_bias, at the top level.
CLASSIFIER_ROWS = [
    Row("classifier.weight", ("classifier.weight",), ("output_weights",)),
    Row("classifier.bias", ("classifier.bias",), ("output_bias",)),
]
# Google's run_squad.py: cls/squad/output_weights [2, H].
QA_ROWS = [
    Row("qa.weight", ("qa_outputs.weight",), ("cls/squad/output_weights",)),
    Row("qa.bias", ("qa_outputs.bias",), ("cls/squad/output_bias",)),
]


def _classifier_dropout(config: BertConfig, kind: str | None = None) -> Dropout:
    """The dropout before a head's classifier: classifier_dropout (else hidden_dropout_prob), unless the family
    names another config field for this head kind (Family.head_dropout), as transformers' class reads it."""
    source = family_of(config).head_dropout.get(kind) if kind else None
    if source is not None:
        name, default = source
        return Dropout(getattr(config, name) if hasattr(config, name) else dict(config.extras).get(name, default))
    p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
    return Dropout(p)


def gather_positions(hidden: Tensor, positions: Tensor) -> Tensor:
    """(B, T, H), (B, P) -> (B, P, H)."""
    return hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))


class PretrainingLogits(NamedTuple):
    mlm_logits: Tensor  # (B, P, V) at masked_positions, or (B, T, V)
    nsp_logits: Tensor  # (B, 2): 0 = B follows A, 1 = B is random (Google's convention)


class SpanLogits(NamedTuple):
    start_logits: Tensor  # (B, T)
    end_logits: Tensor  # (B, T)


class _MaskedLMMixin:
    def _mlm(self, hidden: Tensor, masked_positions: Tensor | None) -> Tensor:
        if masked_positions is not None:
            hidden = gather_positions(hidden, masked_positions)
        return self.mlm(hidden, self.bert.embeddings.word_embeddings.weight)


class BertForPreTraining(_MaskedLMMixin, PretrainedBert):
    hf_architecture = "BertForPreTraining"

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.mlm = MaskedLMHead(config)
        self.nsp = nn.Linear(config.hidden_size, 2)
        self.init_weights()

    def head_rows(self) -> list[Row]:
        return MLM_ROWS + NSP_ROWS

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        masked_positions: Tensor | None = None,
        *,
        task_type_ids: Tensor | None = None,
    ) -> PretrainingLogits:
        out = self.bert(input_ids, token_type_ids, attention_mask, task_type_ids=task_type_ids)
        return PretrainingLogits(
            self._mlm(out.last_hidden_state, masked_positions), self.nsp(out.pooled_output)
        )


class BertForMaskedLM(_MaskedLMMixin, PretrainedBert):
    hf_architecture = "BertForMaskedLM"
    mlm_act: ClassVar[str | None] = None  # None: config.hidden_act

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.mlm = MaskedLMHead(config, self.mlm_act)
        self.init_weights()

    def head_rows(self) -> list[Row]:
        return MLM_ROWS

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        masked_positions: Tensor | None = None,
        *,
        task_type_ids: Tensor | None = None,
    ) -> Tensor:
        """-> (B, P, V) at masked_positions when given, else (B, T, V)."""
        out = self.bert(input_ids, token_type_ids, attention_mask, task_type_ids=task_type_ids)
        return self._mlm(out.last_hidden_state, masked_positions)


class BertForNextSentencePrediction(PretrainedBert):
    hf_architecture = "BertForNextSentencePrediction"

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.nsp = nn.Linear(config.hidden_size, 2)
        self.init_weights()

    def head_rows(self) -> list[Row]:
        return NSP_ROWS

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        *,
        task_type_ids: Tensor | None = None,
    ) -> Tensor:
        """-> (B, 2)."""
        return self.nsp(
            self.bert(
                input_ids, token_type_ids, attention_mask, task_type_ids=task_type_ids, first_token_only=True
            ).pooled_output
        )


class BertForSequenceClassification(PretrainedBert):
    """Pooled [CLS] -> dropout -> linear. One output and config.problem_type 'regression' for regression."""

    hf_architecture = "BertForSequenceClassification"

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def head_rows(self) -> list[Row]:
        return CLASSIFIER_ROWS

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        *,
        task_type_ids: Tensor | None = None,
    ) -> Tensor:
        """-> (B, L)."""
        pooled = self.bert(
            input_ids, token_type_ids, attention_mask, task_type_ids=task_type_ids, first_token_only=True
        ).pooled_output
        return self.classifier(self.dropout(pooled))


class BertForMultipleChoice(PretrainedBert):
    """Each (context, choice) pair is encoded; one logit per choice. Inputs (B, C, T) -> (B, C)."""

    hf_architecture = "BertForMultipleChoice"

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.dropout = _classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.init_weights()

    def head_rows(self) -> list[Row]:
        return CLASSIFIER_ROWS

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        *,
        task_type_ids: Tensor | None = None,
    ) -> Tensor:
        b, c, t = input_ids.shape

        def flat(x: Tensor | None) -> Tensor | None:
            return None if x is None else x.reshape(b * c, t)

        pooled = self.bert(
            flat(input_ids),
            flat(token_type_ids),
            flat(attention_mask),
            task_type_ids=flat(task_type_ids),
            first_token_only=True,
        ).pooled_output
        return self.classifier(self.dropout(pooled)).view(b, c)


class BertForTokenClassification(PretrainedBert):
    hf_architecture = "BertForTokenClassification"

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = _classifier_dropout(config, "token_classification")
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights()

    def head_rows(self) -> list[Row]:
        return CLASSIFIER_ROWS

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        *,
        task_type_ids: Tensor | None = None,
    ) -> Tensor:
        """-> (B, T, L)."""
        hidden = self.bert(input_ids, token_type_ids, attention_mask, task_type_ids=task_type_ids).last_hidden_state
        return self.classifier(self.dropout(hidden))


class BertForQuestionAnswering(PretrainedBert):
    hf_architecture = "BertForQuestionAnswering"

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        # no dropout in BERT's QA head; a family may have one (DistilBERT's qa_dropout)
        has_dropout = "question_answering" in family_of(config).head_dropout
        self.dropout = _classifier_dropout(config, "question_answering") if has_dropout else nn.Identity()
        self.qa = nn.Linear(config.hidden_size, 2)
        self.init_weights()

    def head_rows(self) -> list[Row]:
        return QA_ROWS

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        *,
        task_type_ids: Tensor | None = None,
    ) -> SpanLogits:
        hidden = self.bert(input_ids, token_type_ids, attention_mask, task_type_ids=task_type_ids).last_hidden_state
        logits = self.qa(self.dropout(hidden))
        start, end = logits.unbind(-1)
        return SpanLogits(start, end)


class FirstTokenClassifier(PretrainedBert):
    """[CLS] hidden state -> (dropout) -> dense -> act -> dropout -> out: the classifier layouts of RoBERTa and
    ELECTRA (dense -> tanh / gelu -> out_proj) and DistilBERT (pre_classifier -> relu -> classifier).

    A family subclasses it with its names: hf_dense / hf_out (HF key prefixes), act, dropout_first, and
    choices=True for the multiple-choice form ((B, C, T) -> (B, C), one output).
    """

    hf_dense: ClassVar[str] = "classifier.dense"
    hf_out: ClassVar[str] = "classifier.out_proj"
    act: ClassVar[str] = "tanh"
    dropout_first: ClassVar[bool] = True
    choices: ClassVar[bool] = False

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = _classifier_dropout(config)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.out = nn.Linear(config.hidden_size, 1 if self.choices else config.num_labels)
        self.init_weights()

    def head_rows(self) -> list[Row]:
        return linear("dense", self.hf_dense, None) + linear("out", self.hf_out, None)

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        *,
        task_type_ids: Tensor | None = None,
    ) -> Tensor:
        """-> (B, L), or (B, C) for choices."""
        shape = input_ids.shape
        if self.choices:

            def flat(x: Tensor | None) -> Tensor | None:
                return None if x is None else x.reshape(-1, shape[-1])

            input_ids, token_type_ids, attention_mask = flat(input_ids), flat(token_type_ids), flat(attention_mask)
            task_type_ids = flat(task_type_ids)
        x = self.bert(
            input_ids, token_type_ids, attention_mask, task_type_ids=task_type_ids, first_token_only=True
        ).last_hidden_state[:, 0]
        if self.dropout_first:
            x = self.dropout(x)
        x = self.out(self.dropout(activation(self.act)(self.dense(x))))
        return x.view(shape[0], shape[1]) if self.choices else x
