"""What the exported graph of each head computes: the model's outputs as a flat tuple of traceable tensors.

One view per model class, listed in VIEWS (explicit, like every registry here); a model class without a view
is refused by name, so export never writes a graph that computes something other than the model.
Every view takes input_ids, token_type_ids, attention_mask ((B, T), or (B, C, T) for multiple choice) and
returns the head's outputs plus, where the encoder runs once per row, last_hidden_state (B, T, H), so one
exported classifier also serves embeddings.
Shapes: B batch, C choices, T length, H hidden, L labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from bertkit.model.bert import EncoderOutput, every_position
from bertkit.model.tagger import BertForTagging

INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")
_BT = {0: "batch", 1: "sequence"}
_B = {0: "batch"}


class View(nn.Module):
    """Base: `outputs` names the graph's outputs in order; `axes` gives each input's and output's dynamic axes."""

    outputs: ClassVar[tuple[str, ...]] = ()
    output_axes: ClassVar[dict[str, dict[int, str]]] = {}
    input_axes: ClassVar[dict[int, str]] = _BT

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    @property
    def axes(self) -> dict[str, dict[int, str]]:
        return {**{name: self.input_axes for name in INPUT_NAMES}, **self.output_axes}


class EncoderView(View):
    """BertModel: last_hidden_state (B, T, H) and, with a pooler, pooled_output (B, H)."""

    output_axes: ClassVar = {"last_hidden_state": _BT, "pooled_output": _B}

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.outputs = ("last_hidden_state",) + (("pooled_output",) if model.pooler is not None else ())

    def forward(
        self, input_ids: Tensor, token_type_ids: Tensor, attention_mask: Tensor
    ) -> tuple[Tensor, ...]:
        out: EncoderOutput = self.model(input_ids, token_type_ids, attention_mask)
        return (out.last_hidden_state,) + ((out.pooled_output,) if out.pooled_output is not None else ())


class _HiddenView(View):
    """A head over model.bert; the encoder's last_hidden_state is caught by a forward hook."""

    def _run(
        self, input_ids: Tensor, token_type_ids: Tensor, attention_mask: Tensor
    ) -> tuple[object, Tensor]:
        hidden: list[Tensor] = []
        hook = self.model.bert.register_forward_hook(lambda _m, _i, out: hidden.append(out.last_hidden_state))
        try:
            with every_position(self.model):  # the graph's last_hidden_state has every position
                out = self.model(input_ids, token_type_ids, attention_mask)
        finally:
            hook.remove()
        return out, hidden[-1]


class SequenceView(_HiddenView):
    """Sentence (pair) classification / regression: logits (B, L)."""

    outputs = ("logits", "last_hidden_state")
    output_axes: ClassVar = {"logits": _B, "last_hidden_state": _BT}

    def forward(
        self, input_ids: Tensor, token_type_ids: Tensor, attention_mask: Tensor
    ) -> tuple[Tensor, ...]:
        return self._run(input_ids, token_type_ids, attention_mask)  # type: ignore[return-value]


class TokenView(SequenceView):
    """transformers' token classifier: logits (B, T, L)."""

    output_axes: ClassVar = {"logits": _BT, "last_hidden_state": _BT}


class SpanView(_HiddenView):
    """Extractive QA: start_logits, end_logits (B, T)."""

    outputs = ("start_logits", "end_logits", "last_hidden_state")
    output_axes: ClassVar = {"start_logits": _BT, "end_logits": _BT, "last_hidden_state": _BT}

    def forward(
        self, input_ids: Tensor, token_type_ids: Tensor, attention_mask: Tensor
    ) -> tuple[Tensor, ...]:
        spans, hidden = self._run(input_ids, token_type_ids, attention_mask)
        return spans.start_logits, spans.end_logits, hidden


class ChoiceView(View):
    """Multiple choice: inputs (B, C, T), logits (B, C). No last_hidden_state: its rows are (context, choice)
    pairs, not the texts a client would embed."""

    outputs = ("logits",)
    output_axes: ClassVar = {"logits": {0: "batch", 1: "choices"}}
    input_axes: ClassVar = {0: "batch", 1: "choices", 2: "sequence"}

    def forward(
        self, input_ids: Tensor, token_type_ids: Tensor, attention_mask: Tensor
    ) -> tuple[Tensor, ...]:
        return (self.model(input_ids, token_type_ids, attention_mask),)


class TaggerView(View):
    """BertForTagging, whole: encoder -> (BiLSTM) -> classifier, logits (B, T, L) (CRF emissions for a CRF
    head; the CRF's transition scores are constants, written to the file's metadata by export).

    The model runs its BiLSTM on a packed sequence, which the TorchScript exporter does not translate
    faithfully. Here the same weights run as two one-way LSTMs: forward over the padded rows (padding comes
    last, so it never reaches a real token), backward over each row reversed within its own length, which is
    what packing computes for the real tokens.
    """

    outputs = ("logits", "last_hidden_state")
    output_axes: ClassVar = {"logits": _BT, "last_hidden_state": _BT}

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.forward_lstm, self.backward_lstm = (
            split_bilstm(model.lstm) if model.lstm is not None else (None, None)
        )

    def forward(
        self, input_ids: Tensor, token_type_ids: Tensor, attention_mask: Tensor
    ) -> tuple[Tensor, ...]:
        hidden = self.model.bert(input_ids, token_type_ids, attention_mask).last_hidden_state
        scores_in = hidden
        if self.forward_lstm is not None:
            scores_in = self._bilstm(hidden, attention_mask)
        return self.model.classifier(scores_in), hidden

    def _bilstm(self, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        """(B, T, H) -> (B, T, H): both directions over each row's real tokens."""
        ones = torch.ones_like(attention_mask)
        positions = torch.cumsum(ones, 1) - 1  # (B, T): 0..T-1, traced with a dynamic T
        lengths = attention_mask.sum(1, keepdim=True)
        reverse = torch.where(positions < lengths, lengths - 1 - positions, positions)  # its own inverse
        ahead = self.forward_lstm(hidden)[0]
        flipped = hidden.gather(1, reverse.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        back = self.backward_lstm(flipped)[0]
        back = back.gather(1, reverse.unsqueeze(-1).expand(-1, -1, back.shape[-1]))
        return torch.cat([ahead, back], dim=-1)


def split_bilstm(lstm: nn.LSTM) -> tuple[nn.LSTM, nn.LSTM]:
    """A one-layer batch-first BiLSTM as two one-way LSTMs (forward, backward) sharing its weights' values."""
    if not (
        lstm.bidirectional and lstm.batch_first and lstm.num_layers == 1 and lstm.bias and not lstm.proj_size
    ):
        raise ValueError(
            f"ONNX export handles the tagger's one-layer batch-first BiLSTM with biases, not {lstm}; "
            "serve this model with the torch backend"
        )
    parts = []
    for suffix in ("", "_reverse"):
        one = nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
        with torch.no_grad():
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(one, name).copy_(getattr(lstm, name + suffix))
        parts.append(one.eval())
    return parts[0], parts[1]


# Model class name -> its view. A class that is not here cannot be exported (see `view_for`).
VIEWS: dict[str, Callable[[nn.Module], View]] = {
    "BertModel": EncoderView,
    "BertForSequenceClassification": SequenceView,
    "BertForTokenClassification": TokenView,
    "BertForQuestionAnswering": SpanView,
    "BertForMultipleChoice": ChoiceView,
    BertForTagging.__name__: TaggerView,
    # The families' own classifier layouts (model/families): same inputs and outputs as BERT's.
    "DistilBertForSequenceClassification": SequenceView,
    "RobertaForSequenceClassification": SequenceView,
    "XLMRobertaForSequenceClassification": SequenceView,
    "ElectraForSequenceClassification": SequenceView,
    "DistilBertForMultipleChoice": ChoiceView,
    "ElectraForMultipleChoice": ChoiceView,
}


def view_for(model: nn.Module) -> View:
    """The export view of `model`; ValueError naming the class when bertkit cannot export it whole."""
    name = type(model).__name__
    if name not in VIEWS:
        raise ValueError(
            f"ONNX export supports {', '.join(VIEWS)}, not {name}: exporting it would drop part of the "
            "model. Serve it with the torch backend"
        )
    return VIEWS[name](model).eval()
