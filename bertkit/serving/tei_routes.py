"""text-embeddings-inference's routes with TEI's JSON: /embed, /embed_all, /rerank, /similarity, /decode, and
TEI's forms of /predict and /tokenize (app.py hands them over when the body has TEI's `inputs`).

Shapes and status codes are TEI's (router/src/http/types.rs, server.rs): errors are {"error", "error_type"}
with Validation 422 (413 for sizes), Empty 400, Overloaded 429 with Retry-After, Unhealthy 503. Long texts
are cut to the model's window unless `truncate` is false (then 413); /tokenize gives TEI's UTF-8 byte
`start`/`stop` and also `char_start`/`char_end` (Python / HF character offsets).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import numpy as np
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from bertkit.serving import pipelines, submit
from bertkit.serving.backend import TooLong
from bertkit.serving.batcher import QueueFull, ShuttingDown
from bertkit.serving.http import BadJson, json_response, read_json, validate, validation_message

Input = StrictStr | Annotated[list[StrictInt], Field(min_length=1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # TEI ignores unknown fields


class EmbedRequest(_Body):
    inputs: Input | list[Input]
    truncate: StrictBool | None = None
    truncation_direction: StrictStr = "right"
    prompt_name: StrictStr | None = None
    normalize: StrictBool = True
    dimensions: StrictInt | None = None


class RerankRequest(_Body):
    query: StrictStr
    texts: list[StrictStr]
    truncate: StrictBool | None = None
    truncation_direction: StrictStr = "right"
    raw_scores: StrictBool = False
    return_text: StrictBool = False


class SimilarityInputs(_Body):
    source_sentence: StrictStr
    sentences: list[StrictStr]


class SimilarityRequest(_Body):
    inputs: SimilarityInputs
    parameters: dict[str, Any] | None = None


class TokenizeRequest(_Body):
    inputs: StrictStr | list[StrictStr]
    add_special_tokens: StrictBool = True
    prompt_name: StrictStr | None = None


class DecodeRequest(_Body):
    ids: list[StrictInt] | list[list[StrictInt]]
    skip_special_tokens: StrictBool = True


def tei_error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message, "error_type": kind}, status, headers)


def tei_errors(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """Map failures to TEI's error body and status codes."""

    @functools.wraps(handler)
    async def wrapped(*args: Any, **kwargs: Any) -> Response:
        try:
            return await handler(*args, **kwargs)
        except BadJson as err:
            return tei_error(400, str(err), "Validation")
        except RequestValidationError as err:
            return tei_error(422, f"invalid request: {validation_message(err)}", "Validation")
        except TooLong as err:
            return tei_error(413, str(err), "Validation")
        except QueueFull as err:
            headers = {"Retry-After": str(int(min(err.retry_after, 10)))}
            return tei_error(429, f"model is overloaded: {err}", "Overloaded", headers)
        except ShuttingDown as err:
            return tei_error(503, str(err), "Unhealthy", {"Retry-After": "1"})
        except ValueError as err:
            empty = "is empty" in str(err)
            return tei_error(400 if empty else 422, str(err), "Empty" if empty else "Validation")

    return wrapped


def _as_list(inputs: Any) -> tuple[list[Any], bool]:
    """(inputs as a list, whether one input was sent): a string or one id list is a batch of one."""
    if isinstance(inputs, str) or submit.is_ids(inputs):
        return [inputs], True
    return list(inputs), False


async def embed_inputs(server: Any, inputs: list[Any], truncate: bool, direction: str, name: str) -> list:
    """Vectors (or token vectors, name="tokens") of texts and token-id lists, through the batcher."""
    submit.check_inputs(server, inputs)
    backend = server.backend
    texts = [(i, x) for i, x in enumerate(inputs) if isinstance(x, str)]
    encodings: list[Any] = [None] * len(inputs)
    for (i, _), enc in zip(
        texts, submit.encode_texts(backend, [t for _, t in texts], truncate, direction), strict=True
    ):
        encodings[i] = enc
    for i, x in enumerate(inputs):
        if encodings[i] is None:
            encodings[i] = submit.encode_ids(backend, x, truncate, f"inputs[{i}]")
    return await submit.run_chunks(server, name, encodings, [len(e.ids) for e in encodings])


def normalized(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def check_dimensions(server: Any, dimensions: int | None) -> None:
    width = server.backend.dimensions
    if dimensions is not None and dimensions != width:
        raise ValueError(f"dimensions={dimensions}: this model's vectors have {width} dimensions only")


async def head_logits(server: Any, texts: list[str], pairs: list[str] | None) -> list[np.ndarray]:
    """One classifier logit row (L,) per text (or pair); a long text is read in overlapping windows whose
    logits are pooled as the task pools them (unless --long-inputs truncate), never cut silently."""
    backend = server.backend
    span = backend.max_length
    stride = max(1, (span - 2) // 4) if server.config.long_inputs == "windows" else None
    encodings = backend.tokenizer.encode_batch(texts, pairs, span, stride=stride)
    windows = [(i, w) for i, e in enumerate(encodings) for w in e.windows]
    rows = await submit.run_chunks(server, "head", [w for _, w in windows], [len(w.ids) for _, w in windows])
    per_text: list[list[np.ndarray]] = [[] for _ in texts]
    for (i, _), row in zip(windows, rows, strict=True):
        per_text[i].append(row)
    return [pipelines.pool_windows(r, backend.window_pooling) for r in per_text]


def _predict_inputs(inputs: Any) -> tuple[list[str], list[str] | None, bool]:
    """TEI's /predict inputs: "t" | ["t", "pair"] | [["t"], ["t", "pair"], ...] -> texts, pairs, single."""

    def one(x: Any, where: str) -> tuple[str, str | None]:
        if isinstance(x, str):
            return x, None
        if isinstance(x, list) and len(x) in (1, 2) and all(isinstance(v, str) for v in x):
            return x[0], x[1] if len(x) == 2 else None
        raise ValueError(f"{where} must be a text, [text] or [text, text_pair]")

    single = isinstance(inputs, str) or (
        isinstance(inputs, list) and len(inputs) == 2 and all(isinstance(v, str) for v in inputs)
    )  # TEI reads a list of exactly two texts as one pair
    items = (
        [one(inputs, "inputs")] if single else [one(x, f"inputs[{i}]") for i, x in enumerate(inputs or [])]
    )
    texts = [t for t, _ in items]
    pairs = [p or "" for _, p in items] if any(p is not None for _, p in items) else None
    if pairs is not None and any(p is None for _, p in items):
        raise ValueError("mix of single texts and pairs in inputs: send all singles or all pairs")
    return texts, pairs, single


async def classify(server: Any, data: dict[str, Any], batch_shaped: bool = False) -> Response:
    """TEI /predict (raw_scores; return_all, default true: every label) and the HF text-classification pipeline
    (parameters.top_k, function_to_apply)."""
    backend = server.backend
    texts, pairs, single = _predict_inputs(data.get("inputs"))
    submit.check_inputs(server, texts + (pairs or []))
    params = data.get("parameters") or {}
    labels = backend.labels or ["LABEL_0"]
    function = params.get("function_to_apply") or (
        "none" if data.get("raw_scores") else pipelines.default_function(backend.problem_type, len(labels))
    )
    top_k = params.get("top_k")
    if top_k is None and data.get("return_all") is False:  # TEI-style: only the best label
        top_k = 1
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"parameters.top_k must be a positive integer, not {top_k!r}")
    rows = await head_logits(server, texts, pairs)
    results = [pipelines.classify(r, labels, function, top_k) for r in rows]
    return json_response(results if (not single or batch_shaped) else results[0])


def install(app: Any, server: Any) -> None:
    """Register the TEI routes on `app` for what the model can do."""
    backend = server.backend

    if backend.can_encode:

        @app.post("/embed")
        @tei_errors
        async def embed(http: Request) -> Response:
            """TEI: one vector per input, always nested ([[f32]])."""
            request = validate(await read_json(http), EmbedRequest)
            if request.prompt_name is not None:
                raise ValueError("prompt_name: this model has no prompts")
            check_dimensions(server, request.dimensions)
            inputs, _ = _as_list(request.inputs)
            truncate = True if request.truncate is None else request.truncate
            vectors = np.stack(
                await embed_inputs(server, inputs, truncate, request.truncation_direction, "/encode")
            )
            return json_response(normalized(vectors) if request.normalize else vectors)

        @app.post("/embed_all")
        @tei_errors
        async def embed_all(http: Request) -> Response:
            """TEI: every token's last-layer vector, [[[f32] per token] per input]."""
            request = validate(await read_json(http), EmbedRequest)
            inputs, _ = _as_list(request.inputs)
            truncate = True if request.truncate is None else request.truncate
            rows = await embed_inputs(server, inputs, truncate, request.truncation_direction, "tokens")
            return json_response([np.asarray(r) for r in rows])

        @app.post("/similarity")
        @tei_errors
        async def similarity(http: Request) -> Response:
            """HF sentence-similarity: cosine of each sentence with the source sentence."""
            request = validate(await read_json(http), SimilarityRequest)
            texts = [request.inputs.source_sentence, *request.inputs.sentences]
            vectors = normalized(np.stack(await embed_inputs(server, texts, True, "right", "/encode")))
            return json_response([float(v) for v in vectors[1:] @ vectors[0]])

        server.extra_routes += ["/embed", "/embed_all", "/similarity"]

    if backend.task_name == "classification":

        @app.post("/rerank")
        @tei_errors
        async def rerank(http: Request) -> Response:
            """TEI: (query, text) pairs scored by the pair classifier, best first: [{index, score, text?}]."""
            request = validate(await read_json(http), RerankRequest)
            submit.check_inputs(server, request.texts, "texts")
            rows = await head_logits(server, [request.query] * len(request.texts), request.texts)
            scores = [_relevance(r, request.raw_scores) for r in rows]
            order = sorted(range(len(scores)), key=lambda i: -scores[i])
            return json_response(
                [
                    {
                        "index": i,
                        "score": scores[i],
                        **({"text": request.texts[i]} if request.return_text else {}),
                    }
                    for i in order
                ]
            )

        server.extra_routes.append("/rerank")

    @app.post("/decode")
    @tei_errors
    async def decode(http: Request) -> Response:
        """TEI: token ids back to text, one string per id list."""
        request = validate(await read_json(http), DecodeRequest)
        batches = request.ids if request.ids and isinstance(request.ids[0], list) else [request.ids]
        return json_response([backend.tokenizer.decode(ids, request.skip_special_tokens) for ids in batches])

    server.extra_routes.append("/decode")


def _relevance(logits: np.ndarray, raw: bool) -> float:
    """A pair classifier's relevance: its one logit (sigmoid), or the last label's probability (softmax)."""
    if logits.shape[0] == 1:
        return float(logits[0] if raw else pipelines.sigmoid(logits[0]))
    return float(logits[-1] if raw else pipelines.softmax(logits)[-1])


@tei_errors
async def tokenize(server: Any, data: dict[str, Any]) -> Response:
    """TEI /tokenize: [[{id, text, special, start, stop, char_start, char_end}]] (start/stop: UTF-8 bytes)."""
    request = validate(data, TokenizeRequest)
    texts, _ = _as_list(request.inputs)
    submit.check_inputs(server, texts)
    out = []
    for text, enc in zip(texts, server.backend.tokenizer.encode_batch(texts), strict=True):
        bytes_at = pipelines.utf8_offsets(text)
        rows = []
        for k, token in enumerate(enc.tokens):
            special = bool(enc.special_tokens_mask[k])
            if special and not request.add_special_tokens:
                continue
            start, end = enc.offsets[k]
            rows.append(
                {
                    "id": enc.ids[k],
                    "text": token,
                    "special": special,
                    "start": None if special else bytes_at[start],
                    "stop": None if special else bytes_at[end],
                    "char_start": None if special else start,
                    "char_end": None if special else end,
                }  # fmt: skip
            )
        out.append(rows)
    return json_response(out)
