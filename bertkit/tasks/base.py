"""The Task protocol: everything task-specific, so the training loop and the Predictor stay generic.

Data flow: reader -> Example -> task.features(example, tokenizer, max_seq_length) -> list[Feature]
(one example may give several windows) -> task.collate(features) -> Batch -> task.forward(model, batch)
-> outputs -> task.loss(outputs, batch) when training, or task.decode(...) -> predictions -> task.metrics(...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from torch import Tensor, nn

from bertkit.tokenization import Tokenizer

Feature = dict[str, Any]  # token ids and task fields for one window; always has "example_index": int
Batch = dict[str, Tensor]  # collated tensors; keys the task's forward/loss read


class Task(Protocol):
    name: str  # registry name, saved in the model folder's bertkit.json
    main_metric: str  # key of metrics() used for best checkpoint / early stopping; higher is better

    def build_model(self, model: str, *, from_finetuned: bool = False) -> tuple[nn.Module, Any]:
        """Load the encoder (or a fine-tuned folder) with this task's head -> (model, LoadReport)."""
        ...

    def features(self, example: Any, tokenizer: Tokenizer, max_seq_length: int) -> list[Feature]: ...

    def collate(self, features: Sequence[Feature]) -> Batch:
        """Dynamic padding to the longest feature in the batch."""
        ...

    def forward(self, model: nn.Module, batch: Batch) -> Any:
        """Model outputs (logits) for the batch."""
        ...

    def loss(self, outputs: Any, batch: Batch) -> Tensor: ...

    def decode(self, outputs: Sequence[Any], features: Sequence[Feature], examples: Sequence[Any]) -> list[dict]:
        """Per-batch outputs (on CPU, in feature order) -> one JSON-able prediction per example, in order."""
        ...

    def metrics(self, predictions: Sequence[dict], examples: Sequence[Any]) -> dict[str, float]: ...

    def to_json(self) -> dict[str, Any]:
        """Everything needed to rebuild the task at prediction time (labels, options); stored in bertkit.json."""
        ...
