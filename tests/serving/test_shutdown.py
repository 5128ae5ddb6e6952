"""SIGTERM on a real `bertkit serve` process: the request in flight is answered, then the process exits 0."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_sigterm_finishes_in_flight_requests_then_exits(encoder_dir):
    port = free_port()
    env = {**os.environ, "BERTKIT_MAX_WAIT_MS": "1500"}  # the request sits in the batcher while we signal
    cmd = [
        sys.executable,
        "-m",
        "bertkit.cli.main",
        "serve",
        "--model",
        str(encoder_dir),
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--graceful-timeout",
        "30",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert proc.poll() is None, proc.stdout.read()
            try:
                return httpx.get(url + "/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, 120, "the server to start")
        httpx.post(url + "/encode", json={"texts": ["primer"]}, timeout=60)  # next request waits for company
        answer: dict = {}

        def call() -> None:
            answer["response"] = httpx.post(url + "/encode", json={"texts": ["in flight"]}, timeout=60)

        caller = threading.Thread(target=call)
        caller.start()

        def queued() -> bool:
            text = httpx.get(url + "/metrics", timeout=5).text
            return bool(re.search(r'^bertkit_queue_depth\{route="/encode"\} 1$', text, re.M))

        wait_until(queued, 30, "the request to be queued")
        proc.send_signal(signal.SIGTERM)
        caller.join(timeout=60)
        response = answer["response"]
        assert response.status_code == 200 and len(response.json()["embeddings"][0]) == 32
        assert proc.wait(timeout=60) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
