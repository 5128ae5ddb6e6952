"""The task contract: TaskBase declares everything task-specific, so the engine and the training loop stay generic.

Data flow: reader -> Example -> task.features(example, tokenizer, max_seq_length) -> list[Feature]
(one example may give several windows) -> task.collate(features) -> Batch -> task.forward(model, batch)
-> outputs -> task.loss(outputs, batch) when training, or task.decode(...) -> predictions -> task.metrics(...).

The engine (bertkit.engine) sets feature["example_index"] after calling features(), runs batches in any order it
likes (length-sorted at inference, length-grouped in training) and passes decode() the outputs of each batch
together with the features in that same run order, so `outputs[k]` holds the rows of the k-th len(batch)
features. decode() returns predictions in example order.

A task family subclasses TaskBase (a plain class or a frozen dataclass), implements the abstract methods, and
overrides the optional hooks it needs; to_json / __eq__ / __repr__ come from its constructor arguments.
"""

from __future__ import annotations

import dataclasses
import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor, nn

from bertkit.tokenization import Tokenizer

Feature = dict[str, Any]  # token ids and task fields for one window; always has "example_index": int
Batch = dict[str, Tensor]  # collated tensors; keys the task's forward/loss read


class UnknownLabel(str):
    """A check() reason that depends on the label set: before prepare() discovers the labels it is not final."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


class TaskBase(ABC):
    """The base of every task family (registered in bertkit.tasks.FAMILIES)."""

    name: ClassVar[str]  # registry name (a key of FAMILIES), saved in the model folder's bertkit.json
    main_metric: str  # key of metrics() used for best checkpoint / early stopping; higher is better
    labels: tuple[str, ...] | None = None  # class names in id order, for the report and the saved model

    # ---- required ------------------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self, model: str, *, from_finetuned: bool = False) -> tuple[nn.Module, Any]:
        """Load the encoder at path-or-name `model` (or a fine-tuned folder) with this task's head -> (model, LoadReport)."""

    @abstractmethod
    def features(self, example: Any, tokenizer: Tokenizer, max_seq_length: int) -> list[Feature]: ...

    @abstractmethod
    def collate(self, features: Sequence[Feature]) -> Batch:
        """Dynamic padding to the longest feature in the batch."""

    @abstractmethod
    def forward(self, model: nn.Module, batch: Batch) -> Any:
        """Model outputs (logits) for the batch."""

    @abstractmethod
    def loss(self, outputs: Any, batch: Batch) -> Tensor:
        """Mean loss over the batch (the engine re-weights micro-batches by their example counts)."""

    @abstractmethod
    def decode(
        self, outputs: Sequence[Any], features: Sequence[Feature], examples: Sequence[Any]
    ) -> list[dict]:
        """Per-batch outputs (on CPU) and the features in the order they were run -> one JSON-able
        prediction per example, in example order (group windows by feature["example_index"])."""

    @abstractmethod
    def metrics(self, predictions: Sequence[dict], examples: Sequence[Any]) -> dict[str, float]: ...

    def score(
        self, outputs: Sequence[Any], features: Sequence[Feature], examples: Sequence[Any]
    ) -> dict[str, float]:
        """metrics(decode(...)) without keeping the predictions (a dev pass wants only the numbers). A task
        may compute them from its outputs' arrays instead of one dict per example; the values must be the
        same."""
        return self.metrics(self.decode(outputs, features, examples), examples)

    @abstractmethod
    def example_from_dict(self, record: Mapping[str, Any], source: str = "") -> Any:
        """One JSON object (a `bertkit predict` input line, an HTTP request item) -> an Example.
        Raise ValueError naming the missing or mistyped field."""

    # ---- optional hooks (the defaults do nothing) -------------------------------------------------------
    def prepare(self, train_examples: Sequence[Any]) -> TaskBase:
        """A copy completed from the training data (e.g. label names discovered); default: self."""
        return self

    def check(self, example: Any, labelled: bool = True) -> str | None:
        """Why an example is unusable (empty text, unknown label), or None. Runs over every row before any
        compute; bad rows are reported with file:line or go to a rejects file. A reason that only the final
        label set can decide is an UnknownLabel (it is not judged before prepare())."""
        return None

    def features_batch(
        self, examples: Sequence[Any], tokenizer: Tokenizer, max_seq_length: int
    ) -> list[list[Feature]]:
        """features() for many examples at once (override with one Rust call to the tokenizer); must equal
        [features(e, ...) for e in examples]."""
        return [self.features(e, tokenizer, max_seq_length) for e in examples]

    def confusion(self, predictions: Sequence[dict], examples: Sequence[Any]) -> Any:
        """An (L, L) confusion matrix for the training report, or None."""
        return None

    def lr_scales(self) -> dict[str, float]:
        """Learning-rate factors by parameter-name prefix (e.g. {"crf.": 100.0}); the optimizer applies them."""
        return {}

    # ---- configuration: everything needed to rebuild the task ------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The constructor arguments, stored in bertkit.json: type(self)(**task.to_json()) == task.
        Each argument is read back from the attribute (or dataclass field) of the same name."""
        if dataclasses.is_dataclass(self):
            names = [f.name for f in dataclasses.fields(self) if f.init]
        else:
            params = list(inspect.signature(type(self).__init__).parameters.values())[1:]  # after self
            names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        return {n: _jsonable(getattr(self, n)) for n in names}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_json() == other.to_json()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # equal tasks are interchangeable, not dict keys

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_json()})"


Task = TaskBase  # the name callers annotate with


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
