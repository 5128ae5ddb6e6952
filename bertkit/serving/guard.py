"""ASGI middleware in front of every route: API key, body-size limit, per-route request counts and latency."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi.responses import Response

from bertkit.serving import openai_routes
from bertkit.serving.config import ServeConfig
from bertkit.serving.http import error
from bertkit.serving.metrics import ServerMetrics

OPEN_ROUTES = ("/health",)


class Guard:
    """ASGI middleware: API key, body-size limit, and per-route request counts and latency."""

    def __init__(self, app: Any, config: ServeConfig, metrics: ServerMetrics, routes: Sequence[str]):
        self.app, self.metrics, self.routes = app, metrics, set(routes)
        self.key = config.api_key.encode() if config.api_key else None
        self.max_body = config.max_texts * config.max_text_chars * 4 * 2 + 65536  # pairs, UTF-8, JSON escapes

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for name, value in headers:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                if hmac.compare_digest(value[7:].strip(), self.key):
                    return True
            elif name == b"x-api-key" and hmac.compare_digest(value.strip(), self.key):
                return True
        return False

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in self.routes else "other"
        start = time.perf_counter()
        status = 500
        reply: Response | None = None
        public = path in OPEN_ROUTES or (path == "/" and scope["method"] == "GET")  # the playground page
        if self.key is not None and not public and not self._authorized(scope["headers"]):
            message = "missing or wrong API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
            if path in openai_routes.PATHS:
                reply = openai_routes.openai_error(
                    401,
                    message,
                    "invalid_request_error",
                    "invalid_api_key",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            else:
                reply = error(401, message, {"WWW-Authenticate": "Bearer"})
        else:
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                    reply = error(
                        413, f"request body of {int(value)} bytes exceeds the limit of {self.max_body}"
                    )
        if reply is not None:
            await reply(scope, receive, send)
            self.metrics.requests.inc(route=route, status=str(reply.status_code))
            return

        async def send_and_watch(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            self.metrics.in_flight.inc(-1)
            self.metrics.requests.inc(route=route, status=str(status))
            self.metrics.latency.observe(time.perf_counter() - start, route=route)
