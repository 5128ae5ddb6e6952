"""The lane: the request-only POST routes skip FastAPI's per-request machinery and answer byte for byte as
FastAPI answers them, errors included (the reference is the same app's FastAPI, called without the lane)."""

from __future__ import annotations

import asyncio

import httpx
import orjson
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from bertkit.serving.app import create_app
from bertkit.serving.config import ServeConfig
from bertkit.serving.lane import Lane


class Spy:
    """Passes everything to the FastAPI app and records the paths it was called for."""

    def __init__(self, app: FastAPI):
        self.inner, self.paths = app, []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.inner(scope, receive, send)


def test_only_async_post_routes_that_take_just_the_request_use_the_lane():
    app = FastAPI()

    class Body(BaseModel):
        x: int

    async def one() -> int:
        return 1

    @app.post("/raw")
    async def raw(http: Request) -> JSONResponse:
        return JSONResponse(
            {"app": http.app.title, "url": str(http.url_for("raw")), "body": (await http.body()).decode()}
        )

    @app.post("/unannotated")
    async def unannotated(http: Request):
        return JSONResponse({})

    @app.post("/model")
    async def model(http: Request) -> dict:
        return {"answer": "FastAPI serialises this"}

    @app.post("/typed")
    async def typed(body: Body) -> JSONResponse:
        return None

    @app.post("/item/{n}")
    async def item(n: int, http: Request) -> JSONResponse:
        return None

    @app.post("/query")
    async def query(http: Request, k: int = 0) -> JSONResponse:
        return None

    @app.post("/dep")
    async def dep(http: Request, v: int = Depends(one)) -> JSONResponse:
        return None

    @app.post("/route-dep", dependencies=[Depends(one)])
    async def route_dep(http: Request) -> JSONResponse:
        return None

    @app.post("/sync")
    def sync(http: Request) -> JSONResponse:
        return None

    @app.get("/get")
    async def get(http: Request) -> JSONResponse:
        return None

    @app.api_route("/both", methods=["GET", "POST"])
    async def both(http: Request) -> JSONResponse:
        return None

    lane = Lane(app)
    assert set(lane.routes) == {"/raw"}
    spy = Spy(app)
    lane.app = spy
    response = asyncio.run(exchange(lane, [("POST", "/raw", b"abc")]))
    assert spy.paths == []
    assert orjson.loads(response[0][3]) == {"app": "FastAPI", "url": "http://t/raw", "body": "abc"}


async def exchange(app, requests: list[tuple[str, str, bytes]]) -> list[tuple[int, str, str | None, bytes]]:
    """(status, content-type, retry-after, body) for each (method, path, body), in order, through `app`. A
    test makes all its exchanges on one event loop: the server's batchers belong to the loop that started
    them."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # a 500 is an answer here
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        out = []
        for method, path, body in requests:
            r = await c.request(method, path, content=body, headers={"content-type": "application/json"})
            headers = r.headers
            out.append((r.status_code, headers.get("content-type"), headers.get("retry-after"), r.content))
        return out


ENCODER_REQUESTS = [
    ("POST", "/encode", b'{"texts": ["a short text", "and a second, longer text of several words"]}'),
    ("POST", "/encode", b'{"texts": "one text", "normalize": true}'),
    ("POST", "/encode", b'{"texts": ["pair a"], "text_pairs": ["pair b"]}'),
    ("POST", "/encode", b'{"texts": ["x"'),  # malformed JSON: 400
    ("POST", "/encode", b"[1, 2]"),  # not an object: 422
    ("POST", "/encode", b'{"text": ["typo in the field name"]}'),  # 422 naming the field
    ("POST", "/encode", b'{"texts": [1, 2]}'),  # wrong type: 422
    ("POST", "/encode", b'{"texts": ["a", "b", "c", "d", "e"]}'),  # over max_texts: 413
    ("POST", "/encode", b'{"texts": ["' + b"long " * 60 + b'"]}'),  # over max_text_chars: 413
    ("POST", "/encode", b'{"texts": ["a"], "text_pairs": ["b", "c"]}'),  # pairs do not match: 422
    ("POST", "/tokenize", b'{"texts": ["tokenize me"]}'),
    ("POST", "/tokenize", b'{"inputs": "tei shape"}'),
    ("POST", "/tokenize", b"not json"),
    ("POST", "/v1/embeddings", b'{"input": ["openai shape"], "model": "m"}'),
    ("POST", "/v1/embeddings", b'{"input": "x", "model": "m", "encoding_format": "base64"}'),
    ("POST", "/v1/embeddings", b'{"input": "x", "model": "m", "encoding_format": "int8"}'),  # 400
    ("POST", "/v1/embeddings", b'{"input": [], "model": "m"}'),
    ("POST", "/embed", b'{"inputs": ["tei embed"], "normalize": false}'),
    ("POST", "/embed", b'{"inputs": []}'),  # TEI's "Empty"
    ("POST", "/embed", b'{"inputs": "x", "dimensions": 7}'),
    ("POST", "/embed_all", b'{"inputs": "all the tokens"}'),
    ("POST", "/", b'{"inputs": "hf pipeline shape"}'),
]


def test_the_lane_answers_as_fastapi_does_and_fastapi_never_sees_those_requests(encoder_dir):
    guard = create_app(ServeConfig(model=str(encoder_dir), max_texts=4, max_text_chars=200))
    lane = guard.app
    laned = {"/encode", "/tokenize", "/v1/embeddings", "/embeddings", "/embed", "/embed_all", "/"}
    assert laned <= set(lane.routes)
    spy = Spy(lane.app)
    lane.app = spy

    async def main():
        others = [("GET", "/health", b""), ("POST", "/health", b"")]
        via_lane = await exchange(guard, ENCODER_REQUESTS + others)
        seen = list(spy.paths)
        return via_lane, seen, await exchange(spy.inner, ENCODER_REQUESTS)

    via_lane, seen, via_fastapi = asyncio.run(main())
    assert seen == ["/health", "/health"]  # only what the lane does not serve reached FastAPI
    assert via_lane[: len(ENCODER_REQUESTS)] == via_fastapi
    statuses = [status for status, *_ in via_fastapi]
    assert statuses == [
        *(200, 200, 200, 400, 422, 422, 422, 413, 413, 422),  # /encode
        *(200, 200, 400),  # /tokenize
        *(200, 200, 400, 400),  # /v1/embeddings
        *(200, 400, 422, 200),  # /embed, /embed_all
        200,  # POST /
    ]
    assert via_lane[-2][0] == 200 and via_lane[-1][0] == 405  # GET /health; POST /health: FastAPI's 405


def test_predict_and_an_unexpected_failure_answer_alike(classifier_dir, monkeypatch):
    guard = create_app(ServeConfig(model=str(classifier_dir)))
    lane = guard.app
    assert "/predict" in lane.routes
    requests = [
        ("POST", "/predict", b'{"texts": ["good film", "bad film"]}'),
        ("POST", "/predict", b'{"inputs": [{"text": "as bertkit predict reads it"}]}'),
        ("POST", "/predict", b'{"inputs": "hf shape"}'),
        ("POST", "/predict", b'{"texts": 5}'),
    ]
    crash = [("POST", "/predict", b'{"texts": ["anything"]}')]
    server = lane.app.state.server

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    async def main():
        alike = (await exchange(guard, requests), await exchange(lane.app, requests))
        monkeypatch.setattr(server.backend, "prepare", broken)
        crashed = (await exchange(guard, crash), await exchange(lane.app, crash))
        monkeypatch.undo()
        return alike, crashed, await exchange(guard, requests[:1])

    (via_lane, via_fastapi), (crash_lane, crash_fastapi), after = asyncio.run(main())
    assert via_lane == via_fastapi
    assert [status for status, *_ in via_lane] == [200, 200, 200, 422]
    assert crash_lane == crash_fastapi
    assert crash_lane[0][0] == 500 and b"internal error (RuntimeError)" in crash_lane[0][3]
    assert after[0][0] == 200  # the server still answers after the failure


@pytest.mark.parametrize("root_path", ["/api"])
def test_a_mounted_app_goes_through_fastapi(encoder_dir, root_path):
    """Under a root path FastAPI's routing decides what the path means; the lane steps aside."""
    guard = create_app(ServeConfig(model=str(encoder_dir)))
    spy = Spy(guard.app.app)
    guard.app.app = spy

    async def main():
        transport = httpx.ASGITransport(app=guard, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await c.post(f"{root_path}/encode", json={"texts": ["mounted"]})

    response = asyncio.run(main())
    assert spy.paths == [f"{root_path}/encode"]
    assert response.status_code == 200 and len(response.json()["embeddings"][0]) == 32
