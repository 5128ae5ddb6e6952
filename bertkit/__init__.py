"""bertkit: BERT end to end in PyTorch. Public API re-exports only."""

from bertkit.model.bert import BertModel, EncoderOutput
from bertkit.model.config import BertConfig
from bertkit.model.heads import (
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from bertkit.tokenization import Encoding, Tokenizer
from bertkit.weights.load import LoadReport, load_pretrained

__all__ = [
    "BertConfig",
    "BertForMaskedLM",
    "BertForMultipleChoice",
    "BertForNextSentencePrediction",
    "BertForPreTraining",
    "BertForQuestionAnswering",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "Encoding",
    "EncoderOutput",
    "LoadReport",
    "Tokenizer",
    "load_pretrained",
]
