"""OpenAI's embeddings API: POST /v1/embeddings (and /embeddings), GET /v1/models (and /models).

What real clients do (serving-conventions.md §1): the openai SDK asks for `encoding_format: "base64"` unless
told otherwise and decodes little-endian float32; LangChain's OpenAIEmbeddings sends tiktoken token ids unless
`check_embedding_ctx_length=False`. Such ids belong to another vocabulary, so they are refused with a 422 that
names that fix (ServeConfig.accept_token_ids reads them as this model's own ids, range-checked). Errors are
{"error": {"message", "type", "param", "code"}}, what the SDK reads; a full queue is a 429 with a short
Retry-After, which the SDK honours. Texts longer than the model's window are truncated, as OpenAI-style
servers do.
"""

from __future__ import annotations

import base64
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr

from bertkit.serving import submit, tei_routes
from bertkit.serving.backend import TooLong
from bertkit.serving.batcher import QueueFull, ShuttingDown
from bertkit.serving.http import BadJson, json_response, read_json, validate, validation_message

PATHS = ("/v1/embeddings", "/embeddings", "/v1/models", "/models")
TOKEN_IDS_REFUSED = (
    "input holds token ids, not text. They are most likely tiktoken ids from LangChain's OpenAIEmbeddings, "
    "which this model cannot read (its vocabulary is another). Send text: OpenAIEmbeddings(..., "
    "check_embedding_ctx_length=False); or, for ids of this model's own vocabulary, start the server with "
    "--accept-token-ids"
)


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `user` and vendor extras are accepted and ignored

    input: Any
    model: StrictStr | None = None
    encoding_format: StrictStr = "float"
    dimensions: StrictInt | None = None


def openai_error(
    status: int, message: str, kind: str, code: str | None = None, param: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    return json_response(
        {"error": {"message": message, "type": kind, "param": param, "code": code}}, status, headers
    )


def openai_errors(handler: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    @functools.wraps(handler)
    async def wrapped(*args: Any, **kwargs: Any) -> Response:
        try:
            return await handler(*args, **kwargs)
        except BadJson as err:
            return openai_error(400, str(err), "invalid_request_error")
        except RequestValidationError as err:
            return openai_error(422, f"invalid request: {validation_message(err)}", "invalid_request_error")
        except TokenIds as err:
            return openai_error(422, str(err), "invalid_request_error", "token_ids_not_accepted", "input")
        except TooLong as err:
            return openai_error(413, str(err), "invalid_request_error", param="input")
        except QueueFull as err:
            wait = max(1, int(min(err.retry_after, 10)))
            headers = {"Retry-After": str(wait), "retry-after-ms": str(wait * 1000)}
            return openai_error(
                429, f"server busy: {err}", "server_overloaded", "overloaded", headers=headers
            )
        except ShuttingDown as err:
            return openai_error(503, str(err), "server_error", headers={"Retry-After": "1"})
        except ValueError as err:
            return openai_error(400, str(err), "invalid_request_error")

    return wrapped


class TokenIds(ValueError):
    """Token-id input while the server does not accept ids (422)."""


def split_input(value: Any, accept_ids: bool) -> list[str | list[int]]:
    """OpenAI's `input`: a text, texts, one id list, or id lists -> a list of texts / id lists."""
    if isinstance(value, str):
        return [value]
    if submit.is_ids(value):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ValueError("input must be a non-empty string or a non-empty list of strings")
    for i, item in enumerate(value):
        if submit.is_ids(item):
            if not accept_ids:
                raise TokenIds(TOKEN_IDS_REFUSED)
        elif not isinstance(item, str):
            raise ValueError(f"input[{i}] must be a string, not {type(item).__name__}")
    return value


def install(app: Any, server: Any) -> None:
    if not server.backend.can_encode:
        return

    @openai_errors
    async def embeddings(http: Request) -> Response:
        request = validate(await read_json(http), EmbeddingsRequest)
        if request.encoding_format not in ("float", "base64"):
            raise ValueError(f"encoding_format must be float or base64, not {request.encoding_format!r}")
        tei_routes.check_dimensions(server, request.dimensions)
        inputs = split_input(request.input, server.config.accept_token_ids)
        submit.check_inputs(server, inputs, "input")
        backend = server.backend
        texts = [(i, x) for i, x in enumerate(inputs) if isinstance(x, str)]
        encodings: list[Any] = [None] * len(inputs)
        size = sum(len(t) for _, t in texts)
        tokenized = await server.off_loop(size, backend.tokenize, [t for _, t in texts], None, True)
        for (i, _), enc in zip(texts, tokenized, strict=True):
            encodings[i] = enc
        for i, x in enumerate(inputs):
            if encodings[i] is None:
                encodings[i] = submit.encode_ids(backend, x, True, f"input[{i}]")
        lengths = [len(e.ids) for e in encodings]
        vectors = np.stack(await submit.run_chunks(server, "/encode", encodings, lengths)).astype(np.float32)
        if backend.normalize:
            vectors = tei_routes.normalized(vectors).astype(np.float32)
        if request.encoding_format == "base64":
            data = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
        else:
            data = list(vectors)
        return json_response(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
                "model": server.model_name,
                "usage": {"prompt_tokens": sum(lengths), "total_tokens": sum(lengths)},
            }
        )

    created = int(time.time())

    async def models(_http: Request) -> Response:
        card = {"id": server.model_name, "object": "model", "created": created, "owned_by": "bertkit"}
        return json_response({"object": "list", "data": [card]})

    for path in ("/v1/embeddings", "/embeddings"):
        app.add_api_route(path, embeddings, methods=["POST"], summary="OpenAI embeddings")
    for path in ("/v1/models", "/models"):
        app.add_api_route(path, models, methods=["GET"], summary="OpenAI model list")
    server.extra_routes += list(PATHS)
