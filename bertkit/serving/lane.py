"""The hot POST routes without FastAPI's per-request machinery, with the same handlers and the same errors.

FastAPI walks its route table, builds the dependency graph's values and wraps every call in its middleware
stack on each request. For a lone request on a small CPU that is a measurable share of the HTTP overhead
(measured with `bench/bench_serve.py --latency-only` on 2 vCPUs: about 0.4 ms of ~2 ms). Our model routes need
none of it: each endpoint takes the `Request` and nothing else, and parses its own body. `Lane` finds those
routes in the app's own table (FastAPI's dependency analysis says which they are), calls their endpoints
directly, and hands every other request to FastAPI. An exception from a lane endpoint goes to the app's own
exception handlers, found the way Starlette finds them (by the exception's class hierarchy), so status codes
and error bodies are the same either way. The OpenAPI schema, the docs and every other route stay FastAPI's.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

Endpoint = Callable[[Request], Awaitable[Response]]


def request_only_endpoint(route: Any) -> Endpoint | None:
    """The endpoint of a POST route that FastAPI would call with the request alone (no path, query, header,
    cookie or body parameters, no dependencies, no other injected objects) and that is declared to return a
    Response, which FastAPI passes on as it is; None for any other route."""
    if not isinstance(route, APIRoute) or route.methods != {"POST"} or "{" in route.path:
        return None
    d = route.dependant
    if d.request_param_name is None:
        return None
    # d.dependencies holds the route's and the app's dependencies too (FastAPI inserts them there)
    params = (d.path_params, d.query_params, d.header_params, d.cookie_params, d.body_params, d.dependencies)
    injected = (
        d.websocket_param_name,
        d.http_connection_param_name,
        d.response_param_name,
        d.background_tasks_param_name,
        d.security_scopes_param_name,
    )
    if any(params) or any(name is not None for name in injected):
        return None
    name, call = d.request_param_name, route.endpoint
    if not inspect.iscoroutinefunction(call):
        return None  # FastAPI runs a sync endpoint in a thread pool; leave that to it
    try:
        answer = typing.get_type_hints(call).get("return")
    except (NameError, TypeError):
        return None
    if not (isinstance(answer, type) and issubclass(answer, Response)):
        return None  # FastAPI would serialise what it returns through the response model

    async def endpoint(request: Request) -> Response:
        response = await call(**{name: request})
        if not isinstance(response, Response):
            raise TypeError(
                f"{route.path}: the endpoint is declared to return a Response, not {response!r:.80}"
            )
        return response

    return endpoint


class Lane:
    """ASGI app: POST requests to request-only routes go straight to their endpoints; the rest to `app`."""

    def __init__(self, app: FastAPI):
        self.app = app
        self.routes: dict[str, Endpoint] = {}
        for route in app.router.routes:
            endpoint = request_only_endpoint(route)
            if endpoint is not None:
                self.routes[route.path] = endpoint

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        endpoint = None
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self.routes.get(scope["path"])
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app  # as FastAPI sets them: request.app, request.url_for work the same
        scope["router"] = self.app.router
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:  # noqa: BLE001 - mapped by the app's own handlers, as FastAPI would
            response = await self._error(request, exc)
        await response(scope, receive, send)

    async def _error(self, request: Request, exc: Exception) -> Response:
        handlers = self.app.exception_handlers
        handler = next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers), None)
        if handler is None:
            raise exc
        response = handler(request, exc)
        return await response if inspect.isawaitable(response) else response
