"""Sentence vectors for /encode, with the same pooling, layers, whitening and defaults as `bertkit encode`.

The pooling functions and the saved choice (features.json, or sentence-transformers' 1_Pooling and
Normalize) are bertkit.inference.pooling's; this module only runs them on the server's batches, whose
tokens were counted on the event loop. Shapes: B batch, T length, H hidden, D vector size.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bertkit.data.collate import encoder_inputs
from bertkit.inference.pooling import (
    Pooling,
    pool,
    pooled_dim,
    read_feature_settings,
    reads_first_token_only,
    resolve_layers,
)
from bertkit.inference.whitening import Whitening
from bertkit.model.bert import EncoderOutput
from bertkit.model.config import BertConfig
from bertkit.tokenization.encoding import Encoding

logger = logging.getLogger(__name__)

# (input_ids, token_type_ids, attention_mask[, output_hidden_states=][, first_token_only=])
EncoderFn = Callable[..., EncoderOutput]


class Embedder:
    """An encoder plus the pooling choice: embed(encodings) -> (B, D) float32 rows, normalised or not."""

    def __init__(
        self,
        encoder: EncoderFn,
        config: BertConfig,
        folder: Path,
        *,
        pooling: str | None = None,
        normalize: bool | None = None,
        last_layer_only: bool = False,
        first_token_only: bool = False,
        pad_token_id: int = 0,
        device: torch.device | str = "cpu",
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ):
        saved = read_feature_settings(folder)
        self.pooling = Pooling.parse(pooling) if pooling else (saved.pooling or Pooling.MEAN)
        same_choice = saved.pooling in (None, self.pooling)
        self.layers = resolve_layers(
            self.pooling, saved.layers if same_choice else None, config.num_hidden_layers
        )
        if last_layer_only and self.layers != (-1,):
            raise ValueError(
                f"pooling {self.pooling.value} reads layers {list(self.layers)}, but the ONNX graph only outputs the "
                "last layer; choose --pooling cls, mean or max, or serve with --backend torch"
            )
        self.whitening = None
        if saved.whitening and same_choice:
            self.whitening = Whitening.load(folder / saved.whitening)
        self.normalize = bool(saved.normalize) if normalize is None else normalize
        self.max_length = saved.max_length
        self.dim = (
            self.whitening.dim
            if self.whitening
            else pooled_dim(self.pooling, self.layers, config.hidden_size)
        )
        self._encoder = encoder
        # what embed() asks the encoder for: every layer (a multi-layer pooling), the last layer at [CLS] alone
        # (the pooling reads nothing else, and the encoder, an eager BertModel, takes first_token_only), or the
        # last layer
        self._options: dict[str, bool] = {}
        if self.layers != (-1,):
            self._options = {"output_hidden_states": True}
        elif first_token_only and reads_first_token_only(self.pooling, self.layers):
            self._options = {"first_token_only": True}
        self._pad = pad_token_id
        self._device = torch.device(device)
        self._autocast = autocast

    def _run(self, *inputs: torch.Tensor, **options: bool) -> EncoderOutput:
        with self._autocast():
            return self._encoder(*inputs, **options)

    def embed(self, encodings: list[Encoding]) -> list[np.ndarray]:
        """One (D,) vector per encoding, before normalisation (the route normalises per request)."""
        rows = [{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in encodings]
        with (
            torch.inference_mode()
        ):  # inputs made inside too: a compiled encoder guards on how they were made
            batch = {k: v.to(self._device) for k, v in encoder_inputs(rows, self._pad).items()}
            output = self._run(
                batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], **self._options
            )
            vectors = pool(output, batch["attention_mask"], self.pooling, self.layers).float().cpu().numpy()
        if self.whitening is not None:
            vectors = self.whitening.apply(vectors)
        return list(vectors)

    def embed_tokens(self, encodings: list[Encoding]) -> list[np.ndarray]:
        """The last layer's (T, H) token vectors of each encoding, padding dropped."""
        rows = [{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in encodings]
        with torch.inference_mode():
            batch = {k: v.to(self._device) for k, v in encoder_inputs(rows, self._pad).items()}
            output = self._run(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
            hidden = output.last_hidden_state.float().cpu().numpy()
        return [hidden[i, : len(e.ids)] for i, e in enumerate(encodings)]
