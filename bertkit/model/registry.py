"""Every model class bertkit saves and loads, by class name: the head registry.

MODEL_CLASSES lists them all by name (`bertkit convert --architecture`, infer_architecture's answer); each
family lists its own by task kind (bertkit.model.families), and classes_for / model_for look there. A head class declares its weight rows (PretrainedBert.head_rows) and, when it is built with options a
checkpoint does not record (a tagger's head kind), the `variants` to try; bertkit.weights.infer_model picks the
class whose rows the checkpoint holds. A new head is its class plus one line here.
"""

from __future__ import annotations

from typing import Any

from bertkit.model.bert import BertModel, PretrainedBert
from bertkit.model.families import family_of
from bertkit.model.families.albert import AlbertForMaskedLM, AlbertForPreTraining
from bertkit.model.families.distilbert import (
    DistilBertForMaskedLM,
    DistilBertForMultipleChoice,
    DistilBertForSequenceClassification,
)
from bertkit.model.families.electra import (
    ElectraForMaskedLM,
    ElectraForMultipleChoice,
    ElectraForPreTraining,
    ElectraForSequenceClassification,
)
from bertkit.model.families.roberta import (
    RobertaForMaskedLM,
    RobertaForSequenceClassification,
    XLMRobertaForMaskedLM,
    XLMRobertaForSequenceClassification,
)
from bertkit.model.heads import (
    BertForMaskedLM,
    BertForMultipleChoice,
    BertForNextSentencePrediction,
    BertForPreTraining,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
)
from bertkit.model.tagger import BertForTagging

# Order breaks ties between classes whose rows a checkpoint holds equally: transformers' classes first.
# The Bert* classes serve every family whose head has BERT's layout (ERNIE, ALBERT, RoBERTa's tagger...).
MODEL_CLASSES: dict[str, type[PretrainedBert]] = {
    cls.__name__: cls
    for cls in (
        BertModel,
        BertForPreTraining,
        BertForMaskedLM,
        BertForNextSentencePrediction,
        BertForSequenceClassification,
        BertForMultipleChoice,
        BertForTokenClassification,
        BertForQuestionAnswering,
        BertForTagging,
        DistilBertForSequenceClassification,
        DistilBertForMultipleChoice,
        DistilBertForMaskedLM,
        RobertaForSequenceClassification,
        RobertaForMaskedLM,
        XLMRobertaForSequenceClassification,
        XLMRobertaForMaskedLM,
        ElectraForSequenceClassification,
        ElectraForMultipleChoice,
        ElectraForMaskedLM,
        ElectraForPreTraining,
        AlbertForPreTraining,
        AlbertForMaskedLM,
    )
}


def classes_for(config: Any) -> list[type[PretrainedBert]]:
    """The classes a checkpoint of config's family may be: the family's heads, then the tagger."""
    family = family_of(config)
    return list(dict.fromkeys([*family.heads.values(), *family.more, BertForTagging]))


def model_for(config: Any, kind: str) -> type[PretrainedBert]:
    """The model class of a task kind ('sequence_classification', ...) in config's family."""
    return family_of(config).head(kind)
