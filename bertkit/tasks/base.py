"""The Task protocol: everything task-specific, so the training loop and the Predictor stay generic.

Data flow: reader -> Example -> task.features(example, tokenizer, max_seq_length) -> list[Feature]
(one example may give several windows) -> task.collate(features) -> Batch -> task.forward(model, batch)
-> outputs -> task.loss(outputs, batch) when training, or task.decode(...) -> predictions -> task.metrics(...).

The engine (bertkit.training.loop, bertkit.inference.predictor) sets feature["example_index"] after calling
features(), runs batches in any order it likes (length-sorted at inference, length-grouped in training) and
passes decode() the outputs of each batch together with the features in that same run order, so
`outputs[k]` holds the rows of the k-th len(batch) features. decode() returns predictions in example order.

Optional methods the engine uses when a task defines them (getattr; no base class needed):
- prepare(train_examples) -> Task: a copy completed from the training data (e.g. label names discovered).
- check(example, labelled=True) -> str | None: why an example is unusable (empty text, unknown label), or None.
  Runs over every row before any compute; bad rows are reported with file:line or go to a rejects file.
- features_batch(examples, tokenizer, max_seq_length) -> list[list[Feature]]: features() for many examples
  at once (one Rust call to the tokenizer); must equal [features(e, ...) for e in examples].
- confusion(predictions, examples) -> (L, L) array | None: a confusion matrix for the training report.
- labels: the class names, for the report and the saved model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor, nn

from bertkit.tokenization import Tokenizer

Feature = dict[str, Any]  # token ids and task fields for one window; always has "example_index": int
Batch = dict[str, Tensor]  # collated tensors; keys the task's forward/loss read


class Task(Protocol):
    name: str  # registry name (a key of bertkit.tasks.FAMILIES), saved in the model folder's bertkit.json
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

    def loss(self, outputs: Any, batch: Batch) -> Tensor:
        """Mean loss over the batch (the engine re-weights micro-batches by their example counts)."""
        ...

    def decode(
        self, outputs: Sequence[Any], features: Sequence[Feature], examples: Sequence[Any]
    ) -> list[dict]:
        """Per-batch outputs (on CPU) and the features in the order they were run -> one JSON-able
        prediction per example, in example order (group windows by feature["example_index"])."""
        ...

    def metrics(self, predictions: Sequence[dict], examples: Sequence[Any]) -> dict[str, float]: ...

    def to_json(self) -> dict[str, Any]:
        """Everything needed to rebuild the task at prediction time (labels, options); stored in bertkit.json.
        FAMILIES[task.name](**task.to_json()) must rebuild an equal task."""
        ...

    def example_from_dict(self, record: Mapping[str, Any], source: str = "") -> Any:
        """One JSON object (a `bertkit predict` input line, an HTTP request item) -> an Example.
        Raise ValueError naming the missing or mistyped field."""
        ...


@dataclass(frozen=True)
class Preset:
    """A standard dataset in its official file layout: which family, which reader and which columns/fields.

    files maps a split ("train", "dev", "test", "dev_mismatched", ...) to candidate file names inside the data
    folder; the first that exists is read. fields are the reader's keyword arguments; split_fields replace them
    for the splits it names (e.g. GLUE's unlabelled "test" files). options go to the task constructor.
    """

    family: str
    reader: str  # key of bertkit.data.readers.READERS
    files: Mapping[str, tuple[str, ...]]
    fields: Mapping[str, Any] = field(default_factory=dict)
    split_fields: Mapping[str, Mapping[str, Any]] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
