"""RoBERTa and XLM-RoBERTa (HF model_type "roberta", "xlm-roberta"): BERT's layers under `roberta.`.

Differences: positions start after the padding id (padding_idx + 1 + i for real tokens, padding_idx at pads, so
max_position_embeddings is 2 larger than the usable length); one token type; the classifier reads <s> through
dense -> tanh -> out_proj without the pooler; the MLM head is `lm_head` with the exact GELU.
"""

from __future__ import annotations

from torch import Tensor

from bertkit.model.bert import BertModel, Embeddings
from bertkit.model.config import BertConfig
from bertkit.model.families import Dialect, Family
from bertkit.model.families.bert import bert_like_rows
from bertkit.model.heads import (
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForTokenClassification,
    FirstTokenClassifier,
)
from bertkit.model.rows import Row, linear, norm

PREFIX = "roberta."


class RobertaEmbeddings(Embeddings):
    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.max_length = config.max_position_embeddings - config.pad_token_id - 1

    def position_ids(self, input_ids: Tensor) -> Tensor:
        """(B, T) -> padding_idx + 1, + 2, ... at real tokens and padding_idx at pads, as fairseq numbers them."""
        real = input_ids.ne(self.padding_idx).long()
        return real.cumsum(1) * real + self.padding_idx


class RobertaForSequenceClassification(FirstTokenClassifier):
    hf_architecture = "RobertaForSequenceClassification"


class RobertaForMaskedLM(BertForMaskedLM):
    hf_architecture = "RobertaForMaskedLM"
    mlm_act = "gelu"

    def head_rows(self) -> list[Row]:
        return [
            *linear("mlm.transform", "lm_head.dense", None),
            *norm("mlm.norm", "lm_head.layer_norm", None),
            Row("mlm.bias", ("lm_head.bias",)),
        ]


class XLMRobertaForSequenceClassification(RobertaForSequenceClassification):
    hf_architecture = "XLMRobertaForSequenceClassification"


class XLMRobertaForMaskedLM(RobertaForMaskedLM):
    hf_architecture = "XLMRobertaForMaskedLM"


def _family(model_type: str, class_prefix: str, classifier: type, mlm: type) -> Family:
    return Family(
        dialect=Dialect(model_type),
        class_prefix=class_prefix,
        hf_prefix=PREFIX,
        embeddings=RobertaEmbeddings,
        encoder_rows=lambda config, pooler: bert_like_rows(config, pooler, PREFIX),
        heads={
            "base": BertModel,
            "masked_lm": mlm,
            "sequence_classification": classifier,
            "token_classification": BertForTokenClassification,
            "question_answering": BertForQuestionAnswering,
            "multiple_choice": BertForMultipleChoice,
        },
        tied=("lm_head.decoder.weight", "lm_head.decoder.bias"),
        tokenizer="bpe" if model_type == "roberta" else "sentencepiece",
    )


ROBERTA = _family("roberta", "Roberta", RobertaForSequenceClassification, RobertaForMaskedLM)
XLM_ROBERTA = _family("xlm-roberta", "XLMRoberta", XLMRobertaForSequenceClassification, XLMRobertaForMaskedLM)
