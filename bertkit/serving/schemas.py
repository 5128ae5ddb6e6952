"""Request and response bodies of the HTTP API (pydantic, so FastAPI validates and documents them).

Strict types: a number where a string belongs is a 422, never silently str()-ed. `texts` may be one string
(a batch of one). Limits that depend on the server's configuration (texts per request, text length) are
checked by the routes, which answer 413 with the limit in the message.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr, model_validator


def _one_or_many(value: Any) -> Any:
    """A lone string is a batch of one."""
    return [value] if isinstance(value, str) else value


Texts = Annotated[list[StrictStr], BeforeValidator(_one_or_many)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextsRequest(_Request):
    texts: Texts = Field(description="One text, or a list of texts.")
    text_pairs: Texts | None = Field(
        default=None, description="Second texts of sentence pairs, one per text (optional)."
    )

    @model_validator(mode="after")
    def _pairs_match(self) -> TextsRequest:
        if self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise ValueError(f"text_pairs has {len(self.text_pairs)} items but texts has {len(self.texts)}")
        return self


class EncodeRequest(TextsRequest):
    normalize: StrictBool | None = Field(
        default=None, description="L2-normalise (default: the server's setting)."
    )
    truncate: StrictBool = Field(
        default=True, description="Cut texts longer than the model's window; if false such a text is a 413."
    )


class EncodeResponse(BaseModel):
    embeddings: list[list[float]]
    model: str
    dimensions: int
    tokens: int = Field(description="Tokens the model read for this request.")


class PredictRequest(_Request):
    texts: Texts | None = Field(default=None, description="Texts (or QA questions), one per prediction.")
    text_pairs: Texts | None = Field(default=None, description="Second texts of pairs (or QA contexts).")
    inputs: list[dict[str, Any]] | None = Field(
        default=None,
        description="Task inputs as `bertkit predict` reads them, one JSON object each "
        '(e.g. {"text": ...}, {"question": ..., "context": ...}); instead of texts.',
    )

    @model_validator(mode="after")
    def _one_form(self) -> PredictRequest:
        if (self.texts is None) == (self.inputs is None):
            raise ValueError(
                "give either 'texts' (with optional 'text_pairs') or 'inputs', not both or neither"
            )
        if self.inputs is not None and self.text_pairs is not None:
            raise ValueError("'text_pairs' goes with 'texts', not with 'inputs'")
        if self.text_pairs is not None and len(self.text_pairs) != len(self.texts or []):
            raise ValueError(
                f"text_pairs has {len(self.text_pairs)} items but texts has {len(self.texts or [])}"
            )
        return self


class PredictResponse(BaseModel):
    predictions: list[dict[str, Any]] = Field(
        description="One object per input, as `bertkit predict` writes."
    )
    model: str


class TokenizeRequest(TextsRequest):
    pass


class TokenizedText(BaseModel):
    ids: list[int]
    tokens: list[str]
    type_ids: list[int]
    offsets: list[tuple[int, int]] = Field(
        description="Character span of each token in its own text; (0, 0) for specials."
    )


class TokenizeResponse(BaseModel):
    tokens: list[TokenizedText]


class HealthResponse(BaseModel):
    status: str


class Limits(BaseModel):
    max_texts_per_request: int
    max_text_chars: int
    max_length_tokens: int
    max_batch_tokens: int
    padded_batches: bool = Field(
        description="true: max_batch_tokens counts texts x longest text (the model runs the padding); "
        "false: the batch's real tokens."
    )
    max_batch_size: int
    max_wait_ms: float
    max_queue: int


class InfoResponse(BaseModel):
    model: str
    task: str | None = Field(description="The fine-tuned task family, or null for a plain encoder.")
    labels: list[str] | None
    backend: str
    device: str
    routes: list[str]
    pooling: str
    normalize: bool
    dimensions: int
    limits: Limits
    version: str
    # text-embeddings-inference's /info fields, so TEI clients read this too
    model_id: str
    served_model_name: str
    model_type: dict[str, Any] = Field(
        description='{"embedding": {"pooling"}}, {"classifier": {"id2label", "label2id"}} or {task: {...}}'
    )
    max_input_length: int = Field(description="Tokens per text the model reads (the window).")
    max_client_batch_size: int = Field(
        description="Most inputs in one OpenAI / TEI request (split into batches)."
    )
    auto_truncate: bool = Field(
        description="Embeddings (/encode, /embed, /v1/embeddings) of longer texts are cut to max_input_length."
    )
    long_inputs: str = Field(
        description="/predict of a longer text: classification and tagging read it in overlapping windows "
        "(windows), or a classifier cuts it (truncate); QA windows its context."
    )


class ErrorResponse(BaseModel):
    error: str
    detail: list[dict[str, Any]] | None = None
