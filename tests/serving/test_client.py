"""bertkit.client against a real server: the same calls as the routes, errors as BertkitError, retries on 503."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import time

import numpy as np
import pytest

from bertkit.client import AsyncClient, BertkitError, Client
from bertkit.serving.config import ServeConfig


@pytest.fixture(scope="module")
def url(classifier_dir, serve):
    with serve(ServeConfig(model=str(classifier_dir), api_key="k", max_texts=8)) as base:
        yield base


def test_sync_client_calls_match_the_routes(url, http):
    with Client(url, api_key="k") as c, http(url, "k") as raw:
        assert c.health()
        info = c.info()
        assert info["task"] == "classification" and "/predict" in info["routes"]
        vectors = c.encode(["a b", "c"])
        assert vectors.dtype == np.float32 and vectors.shape == (2, 32)
        np.testing.assert_allclose(
            vectors, raw.post("/encode", json={"texts": ["a b", "c"]}).json()["embeddings"], rtol=1e-6
        )
        assert c.predict("a b") == raw.post("/predict", json={"texts": ["a b"]}).json()["predictions"]
        assert c.predict(inputs=[{"text": "x", "text_pair": "y"}]) == c.predict(["x"], ["y"])
        assert c.tokenize("a b")[0]["tokens"][0] == "[CLS]"
        assert "bertkit_requests_total" in c.metrics()


def test_errors_carry_status_and_message(url):
    with Client(url, api_key="k") as c:
        with pytest.raises(BertkitError) as info:
            c.encode(["x"] * 9)
        assert info.value.status == 413 and "limit is 8" in info.value.message
    with Client(url) as anonymous, pytest.raises(BertkitError) as info:
        anonymous.encode("x")
    assert info.value.status == 401
    with pytest.raises(ValueError, match="either texts"):
        Client(url).predict()


def test_no_server_is_status_zero():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", timeout=5) as c:
        assert not c.health()
        with pytest.raises(BertkitError) as info:
            c.encode("x")
    assert info.value.status == 0


def test_async_client(url):
    async def main():
        async with AsyncClient(url, api_key="k") as c:
            vectors, predictions = await asyncio.gather(c.encode(["a", "b"]), c.predict(["a", "b"]))
            return vectors, predictions, await c.health(), await c.tokenize("a")

    vectors, predictions, healthy, tokens = asyncio.run(main())
    assert (
        vectors.shape == (2, 32)
        and len(predictions) == 2
        and healthy
        and tokens[0]["ids"][0] == tokens[0]["ids"][0]
    )
    with Client(url, api_key="k") as c:
        assert predictions == c.predict(["a", "b"])


def test_retry_after_503(encoder_dir, serve):
    config = ServeConfig(model=str(encoder_dir), max_queue=2, max_texts=2, max_wait_ms=1500)
    with serve(config) as base, Client(base, retries=0) as impatient, Client(base, retries=3) as patient:
        impatient.encode("primer")  # requests now count as frequent, so the next one waits for company
        with cf.ThreadPoolExecutor(1) as pool:
            first = pool.submit(impatient.encode, ["a", "b"])  # fills the queue for ~1.5 s
            time.sleep(0.5)
            with pytest.raises(BertkitError) as info:
                impatient.encode("c")
            assert info.value.status == 503 and info.value.retry_after >= 1
            assert patient.encode("c").shape == (1, 32)  # waited Retry-After, then got in
            assert first.result().shape == (2, 32)
