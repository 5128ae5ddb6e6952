"""Python clients for `bertkit serve`: the same calls as the HTTP routes, sync (Client) and async (AsyncClient).

    with Client("http://127.0.0.1:8080", api_key="...") as c:
        vectors = c.encode(["a sentence", "another"])          # np.ndarray (N, H), float32
        labels = c.predict(["what a film"])                    # [{"label": ..., "probabilities": {...}}]

Errors come back as BertkitError(status, message, retry_after). With retries > 0 a 503 (queue full or
a replica shutting down) or a refused connection is retried after the server's Retry-After (capped).
Needs httpx (the `serve` extra).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_BACKOFF_S = 5.0


class BertkitError(Exception):
    """An error answer from the server (status >= 400) or no answer at all (status 0)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__(f"{status}: {message}" if status else message)
        self.status, self.message, self.retry_after = status, message, retry_after


def _httpx():
    try:
        import httpx
    except ImportError as err:
        raise ImportError("bertkit.client needs httpx: pip install 'bertkit[serve]'") from err
    return httpx


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _texts_body(
    texts: str | Sequence[str], text_pairs: str | Sequence[str] | None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"texts": [texts] if isinstance(texts, str) else list(texts)}
    if text_pairs is not None:
        body["text_pairs"] = [text_pairs] if isinstance(text_pairs, str) else list(text_pairs)
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def _predict_body(
    texts: str | Sequence[str] | None, text_pairs: str | Sequence[str] | None, inputs: Sequence[dict] | None
) -> dict[str, Any]:
    if (texts is None) == (inputs is None):
        raise ValueError("pass either texts (with optional text_pairs) or inputs")
    return {"inputs": list(inputs)} if inputs is not None else _texts_body(texts, text_pairs)


def _result(response: Any) -> Any:
    """The JSON of a 2xx answer; BertkitError with the server's message otherwise."""
    if response.status_code < 400:
        return response.json() if "json" in response.headers.get("content-type", "") else response.text
    try:
        message = response.json().get("error", response.text)
    except ValueError:
        message = response.text
    retry = response.headers.get("retry-after")
    raise BertkitError(response.status_code, message, float(retry) if retry else None)


def _backoff(err: BertkitError, attempt: int) -> float | None:
    """Seconds to wait before the next try, or None when the error is not worth retrying."""
    if err.status not in (0, 503):
        return None
    return min(MAX_BACKOFF_S, err.retry_after or 0.1 * 2**attempt)


class Client:
    """Blocking client; one connection pool, reuse it (or use it as a context manager)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 0,
    ):
        httpx = _httpx()
        self.retries = retries
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=_headers(api_key), timeout=timeout)
        self._transport_errors = (httpx.TransportError,)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        for attempt in range(self.retries + 1):
            try:
                try:
                    response = self._http.request(method, path, json=body)
                except self._transport_errors as err:
                    raise BertkitError(0, f"no answer from {self._http.base_url}{path}: {err}") from err
                return _result(response)
            except BertkitError as err:
                wait = _backoff(err, attempt)
                if wait is None or attempt == self.retries:
                    raise
                time.sleep(wait)
        raise AssertionError("unreachable")

    def encode(
        self,
        texts: str | Sequence[str],
        text_pairs: str | Sequence[str] | None = None,
        *,
        normalize: bool | None = None,
        truncate: bool = True,
    ) -> np.ndarray:
        """Embeddings (N, H) as float32, one row per text."""
        out = self._call(
            "POST", "/encode", _texts_body(texts, text_pairs, normalize=normalize, truncate=truncate)
        )
        return np.asarray(out["embeddings"], dtype=np.float32)

    def predict(
        self,
        texts: str | Sequence[str] | None = None,
        text_pairs: str | Sequence[str] | None = None,
        *,
        inputs: Sequence[dict] | None = None,
    ) -> list[dict]:
        """Task predictions, one per text or input dict, as `bertkit predict` writes them."""
        return self._call("POST", "/predict", _predict_body(texts, text_pairs, inputs))["predictions"]

    def tokenize(
        self, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None
    ) -> list[dict]:
        """Per text: ids, tokens, type_ids, offsets."""
        return self._call("POST", "/tokenize", _texts_body(texts, text_pairs))["tokens"]

    def health(self) -> bool:
        """True when the server answers /health with 200."""
        try:
            self._call("GET", "/health")
        except BertkitError:
            return False
        return True

    def info(self) -> dict[str, Any]:
        return self._call("GET", "/info")

    def metrics(self) -> str:
        return self._call("GET", "/metrics")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncClient:
    """The same calls for asyncio code (`await client.encode(...)`)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8080",
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int = 0,
        max_connections: int = 100,
    ):
        httpx = _httpx()
        self.retries = retries
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=_headers(api_key), timeout=timeout, limits=limits
        )
        self._transport_errors = (httpx.TransportError,)

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        for attempt in range(self.retries + 1):
            try:
                try:
                    response = await self._http.request(method, path, json=body)
                except self._transport_errors as err:
                    raise BertkitError(0, f"no answer from {self._http.base_url}{path}: {err}") from err
                return _result(response)
            except BertkitError as err:
                wait = _backoff(err, attempt)
                if wait is None or attempt == self.retries:
                    raise
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def encode(
        self,
        texts: str | Sequence[str],
        text_pairs: str | Sequence[str] | None = None,
        *,
        normalize: bool | None = None,
        truncate: bool = True,
    ) -> np.ndarray:
        out = await self._call(
            "POST", "/encode", _texts_body(texts, text_pairs, normalize=normalize, truncate=truncate)
        )
        return np.asarray(out["embeddings"], dtype=np.float32)

    async def predict(
        self,
        texts: str | Sequence[str] | None = None,
        text_pairs: str | Sequence[str] | None = None,
        *,
        inputs: Sequence[dict] | None = None,
    ) -> list[dict]:
        return (await self._call("POST", "/predict", _predict_body(texts, text_pairs, inputs)))["predictions"]

    async def tokenize(
        self, texts: str | Sequence[str], text_pairs: str | Sequence[str] | None = None
    ) -> list[dict]:
        return (await self._call("POST", "/tokenize", _texts_body(texts, text_pairs)))["tokens"]

    async def health(self) -> bool:
        try:
            await self._call("GET", "/health")
        except BertkitError:
            return False
        return True

    async def info(self) -> dict[str, Any]:
        return await self._call("GET", "/info")

    async def metrics(self) -> str:
        return await self._call("GET", "/metrics")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
