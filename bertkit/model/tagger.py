"""BertForTagging: BERT -> (BiLSTM) -> linear label scores per token, with an optional CRF over the words.

Shapes: B batch, T tokens, H hidden, L labels.
The BERT + classifier part is exactly transformers' BertForTokenClassification (same names, same
`hf_architecture`), so a saved folder loads there; the LSTM and CRF weights are extra and go to their own
file, `tagging_head.safetensors`, beside model.safetensors. For the BiLSTM the classifier input stays H
(two directions of H/2), so the classifier keeps its transformers shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bertkit.model.bert import BertModel, PretrainedBert
from bertkit.model.config import BertConfig
from bertkit.model.crf import CRF

HEADS = ("softmax", "crf", "lstm_crf")
EXTRA_WEIGHTS = "tagging_head.safetensors"


class BertForTagging(PretrainedBert):
    """head: "softmax" (transformers' token classifier), "crf" (+ a CRF) or "lstm_crf" (+ a BiLSTM and a CRF).

    transitions: (start (L,), pairs (L, L), end (L,)) boolean masks of the moves the tag scheme allows,
    used by the CRF; None allows every move.
    """

    hf_architecture = "BertForTokenClassification"

    def __init__(
        self,
        config: BertConfig,
        head: str = "softmax",
        transitions: tuple[Sequence[bool], Sequence[Sequence[bool]], Sequence[bool]] | None = None,
        *,
        encoder: BertModel | None = None,
        classifier: nn.Linear | None = None,
    ):
        """encoder / classifier: modules of an already loaded BertForTokenClassification to reuse."""
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.config = config
        self.head = head
        h = config.hidden_size
        self.bert = encoder if encoder is not None else BertModel(config, add_pooling_layer=False)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.lstm: nn.LSTM | None = None
        if head == "lstm_crf":
            if h % 2:
                raise ValueError(f"lstm_crf needs an even hidden_size (two directions of H/2), got {h}")
            self.lstm = nn.LSTM(h, h // 2, batch_first=True, bidirectional=True)
        self.classifier = classifier if classifier is not None else nn.Linear(h, config.num_labels)
        if encoder is None:
            self.init_weights()
        elif classifier is None:
            self._init_linear(self.classifier)
        self.crf = CRF(config.num_labels, *(transitions or (None, None, None))) if head != "softmax" else None

    def _init_linear(self, layer: nn.Linear) -> None:
        std = self.config.initializer_range
        nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
        nn.init.zeros_(layer.bias)

    def forward(
        self, input_ids: Tensor, token_type_ids: Tensor | None = None, attention_mask: Tensor | None = None
    ) -> Tensor:
        """-> label scores (B, T, L): logits for softmax, CRF emissions otherwise."""
        hidden = self.bert(input_ids, token_type_ids, attention_mask).last_hidden_state
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

    # ---- the weights transformers does not know ---------------------------------------------------------
    def extra_state_dict(self) -> dict[str, Tensor]:
        """LSTM and CRF parameters (empty for softmax)."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(("lstm.", "crf."))}

    def load_extra_state_dict(self, state: dict[str, Tensor], source: str = "<state>") -> None:
        """Load LSTM/CRF parameters exactly: a missing or unexpected key raises, naming it."""
        wanted = self.extra_state_dict()
        missing = sorted(set(wanted) - set(state))
        unexpected = sorted(set(state) - set(wanted))
        if missing or unexpected:
            raise ValueError(
                f"{source}: the {self.head} head needs {sorted(wanted)}; missing {missing}, unexpected {unexpected}. "
                "The folder was saved with a different head: pass the head it was trained with"
            )
        for key, value in state.items():
            if tuple(value.shape) != tuple(wanted[key].shape):
                raise ValueError(
                    f"{source}: {key} has shape {tuple(value.shape)}, expected {tuple(wanted[key].shape)}"
                )
        self.load_state_dict({**self.state_dict(), **state}, strict=True)

    def save_pretrained(self, directory: str | Path) -> None:
        """transformers' folder (BERT + classifier) plus tagging_head.safetensors for the LSTM/CRF."""
        from safetensors.torch import save_file

        super().save_pretrained(directory)
        extra = self.extra_state_dict()
        target = Path(directory) / EXTRA_WEIGHTS
        if extra:
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in extra.items()},
                str(target),
                metadata={"head": self.head},
            )
        elif target.exists():
            target.unlink()
