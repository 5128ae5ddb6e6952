"""A real server on loopback for the tests: uvicorn on 127.0.0.1 at an ephemeral port, in a thread, always
stopped. Shared by tests/serving (its conftest's `serve` and `http` fixtures) and tests/families:
`import live_server` (tests/ is on pytest's pythonpath). fastapi, uvicorn and httpx are test dependencies."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from bertkit.serving.app import create_app
from bertkit.serving.config import ServeConfig

TIMEOUT = 60.0  # a shared 2-core machine can be slow; no request should ever take this long


@contextmanager
def running_server(config: ServeConfig, startup_timeout: float = 60.0, backend=None) -> Iterator[str]:
    """Serve create_app(config, backend) on 127.0.0.1:<free port> in a thread; yields the base URL; always
    stops it."""
    import uvicorn

    app = create_app(config, backend)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=10)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def client(url: str, api_key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=url, timeout=TIMEOUT, headers=headers)
