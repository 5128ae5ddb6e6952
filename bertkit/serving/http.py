"""HTTP helpers every route module shares: JSON parsing with clear 400/422s, orjson responses, error bodies."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

Body = TypeVar("Body", bound=BaseModel)


class BadJson(ValueError):
    """The body is not JSON (400)."""


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a JSON body that the route parses itself (so any content type with JSON in it works)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


async def parse(request: Request, model: type[Body]) -> Body:
    """The request body as `model`: 400 when it is not JSON, 422 when a field is missing or mistyped."""
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise BadJson(
            f'malformed JSON body ({err}); send a JSON object such as {{"texts": ["..."]}}'
        ) from err
    return validate(data, model)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """orjson straight to bytes (numpy arrays included): no pydantic round trip on the hot path."""
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status, headers, "application/json"
    )


def error(status: int, message: str, headers: dict[str, str] | None = None, detail: Any = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return json_response(body, status, headers)


async def read_json(request: Request) -> Any:
    """The raw JSON body (any type): 400 when it is not JSON."""
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise BadJson(f"malformed JSON body ({err})") from err


def validate(data: Any, model: type[Body]) -> Body:
    """An already-parsed JSON object as `model`; a missing or mistyped field is a 422 naming it."""
    if not isinstance(data, dict):
        raise RequestValidationError(
            [
                {
                    "loc": ("body",),
                    "msg": f"the body must be a JSON object, not {type(data).__name__}",
                    "type": "object_type",
                }
            ]
        )
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise RequestValidationError(
            [
                {**e, "loc": ("body", *e.get("loc", ()))}
                for e in err.errors(include_url=False, include_context=False)
            ]
        ) from None


def validation_message(exc: RequestValidationError) -> str:
    """'field.path: what is wrong' for the first error of a 422."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return f"{where}: {first.get('msg', 'invalid')}"
