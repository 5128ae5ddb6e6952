"""Every model class bertkit saves and loads, by class name: the head registry.

A head class declares its weight rows (PretrainedBert.head_rows) and, when it is built with options a
checkpoint does not record (a tagger's head kind), the `variants` to try; bertkit.weights.infer_model picks the
class whose rows the checkpoint holds. A new head is its class plus one line here.
"""

from __future__ import annotations

from bertkit.model.bert import BertModel, PretrainedBert
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
    )
}
