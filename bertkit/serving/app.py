"""The HTTP routes: parse -> limits -> batcher -> backend -> response. FastAPI, run by uvicorn (`serve` extra).

Routes: GET /health, /info, /metrics; POST /tokenize, /encode, and /predict for fine-tuned folders.
Status codes: 400 malformed JSON, 401 missing or wrong API key, 404 unknown route, 413 too many texts /
text too long / body too large, 422 wrong types or fields, 503 queue full or shutting down (with
Retry-After), 500 only for a server bug. Every error body is {"error": message, "detail": ...}.

The compatibility routes live in their own modules, on the same batchers, limits, key and metrics:
openai_routes (/v1/embeddings, /v1/models), tei_routes (/embed, /embed_all, /similarity, /rerank, /decode, and
TEI's /predict and /tokenize, handed over here when the body has `inputs`), hf_routes (POST /, HF pipeline
shapes), playground (GET /). They answer in their own protocol's error shapes and status codes (429 when full).

A request passes Guard (API key, body-size limit, per-route counts and latency), then the Lane (lane.py),
which calls the POST routes' endpoints directly, without FastAPI's per-request machinery; FastAPI's own
exception handlers still shape their errors. Everything else is FastAPI's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

try:
    import orjson  # noqa: F401 - checked here so the message below names the extra
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException
except ImportError as err:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the HTTP server needs fastapi, uvicorn and orjson: pip install 'bertkit[serve]'"
    ) from err

import numpy as np

from bertkit.serving import hf_routes, openai_routes, playground, tei_routes
from bertkit.serving.backend import Backend, TooLong
from bertkit.serving.batcher import Batcher, BatchStats, QueueFull, ShuttingDown
from bertkit.serving.config import ServeConfig
from bertkit.serving.guard import Guard
from bertkit.serving.http import BadJson, body_schema, error, json_response, parse, read_json, validate
from bertkit.serving.lane import Lane
from bertkit.serving.metrics import ServerMetrics
from bertkit.serving.model_thread import ModelThread
from bertkit.serving.schemas import (
    EncodeRequest,
    EncodeResponse,
    ErrorResponse,
    HealthResponse,
    InfoResponse,
    Limits,
    PredictRequest,
    PredictResponse,
    TokenizeRequest,
    TokenizeResponse,
)

logger = logging.getLogger(__name__)

VERSION = "0.1.0"
OFFLOAD_CHARS = 20000  # requests with more text than this are tokenized off the event loop
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 413, 422, 503)
}


class Server:
    """The backend, one batcher per model route, the metrics; routes call into it."""

    def __init__(self, config: ServeConfig, backend: Backend | None = None):
        self.config = config
        self.backend = backend or Backend(config)
        self.metrics = ServerMetrics()
        self.executor = ModelThread()  # its thread exits when idle: see model_thread
        self.batchers: dict[str, Batcher] = {}
        if self.backend.can_encode:
            self.batchers["/encode"] = self._batcher("/encode", self.backend.embed)
            self.batchers["tokens"] = self._batcher("tokens", self.backend.embed_tokens)
        if self.backend.can_predict:
            self.batchers["/predict"] = self._batcher("/predict", self.backend.predict)
            if self.backend.task_name in ("classification", "tagging"):
                self.batchers["head"] = self._batcher("head", self.backend.head_outputs)
        self.extra_routes: list[str] = []  # routes the compatibility modules add (for metrics and 404s)
        self.closing = False

    @property
    def model_name(self) -> str:
        return self.config.served_model_name or self.backend.name

    def _batcher(self, route: str, run: Callable) -> Batcher:
        c = self.config

        def record(stats: BatchStats) -> None:
            self.metrics.batch_size.observe(stats.size, route=route)
            self.metrics.batch_tokens.observe(stats.tokens, route=route)
            self.metrics.batch_duration.observe(stats.seconds, route=route)
            self.metrics.texts.inc(stats.size, route=route)

        return Batcher(
            run,
            self.executor,
            max_batch_tokens=self.backend.max_batch_tokens,
            max_batch_size=c.max_batch_size,
            padded=self.backend.padded_batches,
            max_wait_ms=c.max_wait_ms,
            max_queue=c.max_queue,
            on_batch=record,
            inline_max_tokens=c.inline_max_tokens,
            alone=lambda: self.metrics.in_flight.get() <= 1,
        )

    @property
    def routes(self) -> list[str]:
        own = [name for name in self.batchers if name.startswith("/")]
        return ["/health", "/info", "/metrics", "/tokenize", *own, *self.extra_routes]

    async def start(self) -> None:
        for batcher in self.batchers.values():
            batcher.start()

    async def stop(self) -> None:
        self.closing = True
        await asyncio.gather(*(b.close() for b in self.batchers.values()))
        self.executor.shutdown(wait=True)

    def check_limits(self, texts: Sequence[str], pairs: Sequence[str] | None) -> None:
        c = self.config
        if len(texts) > c.max_texts:
            raise TooLong(
                f"{len(texts)} texts in one request; the limit is {c.max_texts} (split the request)"
            )
        for name, values in (("texts", texts), ("text_pairs", pairs or ())):
            for i, text in enumerate(values):
                if len(text) > c.max_text_chars:
                    raise TooLong(f"{name}[{i}] has {len(text)} characters; the limit is {c.max_text_chars}")

    async def off_loop(self, size: int, fn: Callable, *args: Any) -> Any:
        """Run fn here when the input is small, else in a thread so the event loop keeps answering."""
        if size <= OFFLOAD_CHARS:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    def info(self) -> dict[str, Any]:
        c, b = self.config, self.backend
        limits = Limits(
            max_texts_per_request=c.max_texts,
            max_text_chars=c.max_text_chars,
            max_length_tokens=b.max_length,
            max_batch_tokens=b.max_batch_tokens,
            padded_batches=b.padded_batches,
            max_batch_size=c.max_batch_size,
            max_wait_ms=c.max_wait_ms,
            max_queue=c.max_queue,
        )
        return InfoResponse(
            model=b.name,
            task=b.task_name,
            labels=b.labels,
            backend=c.backend,
            device=str(b.device),
            routes=self.routes,
            pooling=b.pooling,
            normalize=b.normalize,
            dimensions=b.dimensions,
            limits=limits,
            version=VERSION,
            model_id=b.name,
            served_model_name=self.model_name,
            model_type=self._model_type(),
            max_input_length=b.max_length,
            max_client_batch_size=c.max_client_batch_size,
            auto_truncate=True,
            long_inputs=c.long_inputs,
        ).model_dump()

    def _model_type(self) -> dict[str, Any]:
        b = self.backend
        if b.task_name == "classification":
            labels = b.labels or []
            return {
                "classifier": {
                    "id2label": {str(i): n for i, n in enumerate(labels)},
                    "label2id": {n: i for i, n in enumerate(labels)},
                }
            }
        if b.task_name is not None:
            return {b.task_name: {"labels": b.labels}}
        return {"embedding": {"pooling": b.pooling}}


def _chars(texts: Sequence[str], pairs: Sequence[str] | None) -> int:
    return sum(map(len, texts)) + (sum(map(len, pairs)) if pairs else 0)


def create_app(config: ServeConfig, backend: Backend | None = None) -> Any:
    """The ASGI app: Guard (API key, body size, metrics) -> Lane (the model routes straight to their
    endpoints) -> FastAPI (everything else). Loads the model now, so the server is ready when it listens."""
    server = Server(config, backend)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await server.start()
        yield
        await server.stop()

    app = FastAPI(
        title="bertkit",
        version=VERSION,
        lifespan=lifespan,
        description=f"BERT model server for {server.backend.name}.",
    )
    app.state.server = server
    install_error_handlers(app, server)

    @app.get("/health", response_model=HealthResponse)
    async def health() -> Response:
        """200 once the model is loaded; 503 while shutting down."""
        if server.closing:
            return json_response({"status": "shutting down"}, 503, {"Retry-After": "1"})
        return json_response({"status": "ok"})

    @app.get("/info", response_model=InfoResponse)
    async def info() -> Response:
        """Model, task, labels, backend, pooling and limits."""
        return json_response(server.info())

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus text exposition."""
        for route, batcher in server.batchers.items():
            server.metrics.queue_depth.set(batcher.queued, route=route)
        return Response(server.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post(
        "/tokenize",
        response_model=TokenizeResponse,
        responses=ERRORS,
        openapi_extra=body_schema(TokenizeRequest),
    )
    async def tokenize(http: Request) -> Response:
        """WordPiece tokens, ids, type ids and character offsets (cut to the model's max length); a body with
        TEI's `inputs` gets TEI's answer (tei_routes.tokenize)."""
        data = await read_json(http)
        if isinstance(data, dict) and "inputs" in data and "texts" not in data:
            return await tei_routes.tokenize(server, data)
        request = validate(data, TokenizeRequest)
        texts, pairs = request.texts, request.text_pairs
        server.check_limits(texts, pairs)
        encodings = await server.off_loop(_chars(texts, pairs), server.backend.tokenize, texts, pairs, True)
        return json_response(
            {
                "tokens": [
                    {"ids": e.ids, "tokens": e.tokens, "type_ids": e.type_ids, "offsets": e.offsets}
                    for e in encodings
                ]
            }
        )

    if server.backend.can_encode:

        @app.post(
            "/encode",
            response_model=EncodeResponse,
            responses=ERRORS,
            openapi_extra=body_schema(EncodeRequest),
        )
        async def encode(http: Request) -> Response:
            """Sentence embeddings, one per text (pooling as configured; optional L2 normalisation)."""
            request = await parse(http, EncodeRequest)
            texts, pairs = request.texts, request.text_pairs
            server.check_limits(texts, pairs)
            encodings = await server.off_loop(
                _chars(texts, pairs), server.backend.tokenize, texts, pairs, request.truncate
            )
            lengths = [len(e.ids) for e in encodings]
            vectors = np.stack(await server.batchers["/encode"].submit(encodings, lengths))
            normalize = server.backend.normalize if request.normalize is None else request.normalize
            if normalize:
                vectors = tei_routes.normalized(vectors)
            return json_response(
                {
                    "embeddings": vectors,
                    "model": server.backend.name,
                    "dimensions": int(vectors.shape[1]),
                    "tokens": sum(lengths),
                }
            )

    if server.backend.can_predict:

        @app.post(
            "/predict",
            response_model=PredictResponse,
            responses=ERRORS,
            openapi_extra=body_schema(PredictRequest),
        )
        async def predict(http: Request) -> Response:
            """Task predictions (labels and probabilities, entities with offsets, answers with scores); a body
            with TEI / HF `inputs` (a text, texts, pairs, or {question, context}) gets the HF pipeline's shape."""
            data = await read_json(http)
            if hf_routes.is_pipeline_body(data):
                return await hf_routes.pipeline(server, data)
            request = validate(data, PredictRequest)
            backend = server.backend
            if request.inputs is not None:
                inputs = request.inputs
                if len(inputs) > config.max_texts:
                    raise TooLong(f"{len(inputs)} inputs in one request; the limit is {config.max_texts}")
                for i, record in enumerate(inputs):
                    for key, value in record.items():
                        if isinstance(value, str) and len(value) > config.max_text_chars:
                            raise TooLong(
                                f"inputs[{i}].{key} has {len(value)} characters; "
                                f"the limit is {config.max_text_chars}"
                            )
                size = sum(len(v) for r in inputs for v in r.values() if isinstance(v, str))
            else:
                server.check_limits(request.texts, request.text_pairs)
                inputs = backend.predict_inputs(request.texts, request.text_pairs)
                size = _chars(request.texts, request.text_pairs)
            items = await server.off_loop(size, backend.prepare, inputs)
            predictions = await server.batchers["/predict"].submit(items, [it.tokens for it in items])
            return json_response({"predictions": predictions, "model": backend.name})

    openai_routes.install(app, server)
    tei_routes.install(app, server)
    hf_routes.install(app, server)
    playground.install(app, server)
    return Guard(Lane(app), config, server.metrics, server.routes)


def install_error_handlers(app: Any, server: Server) -> None:
    """Map every failure to its status code and a JSON body that says what to fix."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in errors
        ]
        return error(422, f"invalid request: {where}: {first.get('msg', 'invalid')}", detail=detail)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no route here; this server offers {', '.join(server.routes)}"
        elif exc.status_code == 405:
            message = f"method not allowed: {message}"
        return error(exc.status_code, message, dict(exc.headers or {}))

    @app.exception_handler(BadJson)
    async def bad_json(_request: Request, exc: BadJson) -> Response:
        return error(400, str(exc))

    @app.exception_handler(TooLong)
    async def too_long(_request: Request, exc: TooLong) -> Response:
        return error(413, str(exc))

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull) -> Response:
        server.metrics.rejected.inc(route=request.url.path)
        return error(503, f"server busy: {exc}", {"Retry-After": str(int(exc.retry_after))})

    @app.exception_handler(ShuttingDown)
    async def shutting_down(_request: Request, exc: ShuttingDown) -> Response:
        return error(503, f"{exc}; retry on another replica", {"Retry-After": "1"})

    @app.exception_handler(ValueError)
    async def bad_value(_request: Request, exc: ValueError) -> Response:
        return error(422, f"invalid input: {exc}")

    @app.exception_handler(Exception)
    async def crash(_request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error(500, f"internal error ({type(exc).__name__}); see the server log")
