"""BertForTagging: BERT -> (BiLSTM) -> linear label scores per token, with an optional CRF over the words.

Shapes: B batch, T tokens, H hidden, L labels.
The BERT + classifier part is exactly transformers' BertForTokenClassification (same names, same
`hf_architecture`), so a saved folder loads there; the LSTM and CRF have no transformers equivalent and are
declared with own_rows: saved under our own names (lstm.*, crf.*) in the same model.safetensors. Folders
written before that keep them in `tagging_head.safetensors`, which bertkit.weights still reads. For the BiLSTM
the classifier input stays H (two directions of H/2), so the classifier keeps its transformers shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bertkit.model.bert import BertModel, PretrainedBert
from bertkit.model.config import BertConfig
from bertkit.model.crf import CRF
from bertkit.model.heads import CLASSIFIER_ROWS, _classifier_dropout
from bertkit.model.rows import Row, own_rows

HEADS = ("softmax", "crf", "lstm_crf")


class BertForTagging(PretrainedBert):
    """head: "softmax" (transformers' token classifier), "crf" (+ a CRF) or "lstm_crf" (+ a BiLSTM and a CRF).

    transitions: (start (L,), pairs (L, L), end (L,)) boolean masks of the moves the tag scheme allows,
    used by the CRF; None allows every move.
    """

    hf_architecture = "BertForTokenClassification"
    variants: ClassVar[tuple[dict[str, Any], ...]] = tuple({"head": h} for h in HEADS)

    def __init__(
        self,
        config: BertConfig,
        head: str = "softmax",
        transitions: tuple[Sequence[bool], Sequence[Sequence[bool]], Sequence[bool]] | None = None,
    ):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.config = config
        self.head = head
        h = config.hidden_size
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = _classifier_dropout(config, "token_classification")
        self.lstm: nn.LSTM | None = None
        if head == "lstm_crf":
            if h % 2:
                raise ValueError(f"lstm_crf needs an even hidden_size (two directions of H/2), got {h}")
            self.lstm = nn.LSTM(h, h // 2, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(h, config.num_labels)
        self.init_weights()
        self.crf = CRF(config.num_labels, *(transitions or (None, None, None))) if head != "softmax" else None

    def head_rows(self) -> list[Row]:
        """The classifier under transformers' names; the BiLSTM and the CRF under ours."""
        rows = list(CLASSIFIER_ROWS)
        if self.lstm is not None:
            rows += own_rows("lstm", self.lstm)
        if self.crf is not None:
            rows += own_rows("crf", self.crf)
        return rows

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        *,
        task_type_ids: Tensor | None = None,
    ) -> Tensor:
        """-> label scores (B, T, L): logits for softmax, CRF emissions otherwise."""
        hidden = self.bert(input_ids, token_type_ids, attention_mask, task_type_ids=task_type_ids).last_hidden_state
        if self.lstm is not None:
            hidden = self._lstm(self.dropout(hidden), attention_mask)
        return self.classifier(self.dropout(hidden))

    def _lstm(self, hidden: Tensor, attention_mask: Tensor | None) -> Tensor:
        """BiLSTM over the real tokens only (packed), so padding never reaches the backward direction."""
        b, t, _ = hidden.shape
        if attention_mask is None:
            return self.lstm(hidden)[0]
        lengths = attention_mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(hidden, lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=t)
        return out
