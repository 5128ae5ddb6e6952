"""serve(config): load the model, then run the app under uvicorn until SIGTERM / SIGINT.

On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish (up to graceful_timeout),
then the app's shutdown drains the batchers and stops the model thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator

from bertkit.serving.config import ServeConfig

logger = logging.getLogger(__name__)


def _graceful_server(uvicorn, config):  # noqa: ANN001, ANN202 - uvicorn is imported lazily
    class GracefulServer(uvicorn.Server):
        """uvicorn's Server, except that a handled SIGTERM / SIGINT ends the process normally (status 0).

        uvicorn re-raises the signal after its graceful shutdown, so the process would die by the signal
        (status -15, or a KeyboardInterrupt traceback for Ctrl-C) even though nothing went wrong.
        """

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return GracefulServer(config)


def serve(config: ServeConfig) -> None:
    """Blocking: serve until a shutdown signal."""
    try:
        import uvicorn
    except ImportError as err:
        raise ImportError("the HTTP server needs uvicorn: pip install 'bertkit[serve]'") from err
    from bertkit.serving.app import create_app

    # The Rust tokenizer would fan every request's few texts out to its own thread pool, which then competes
    # with the model's threads; one request's texts are tokenized faster on the calling thread.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The model thread re-takes the GIL after every op; with the default 5 ms switch interval a busy event loop
    # makes it wait (measured: a forward 2.7x slower beside a busy Python thread, 1.8x at 0.5 ms).
    sys.setswitchinterval(0.001)
    app = create_app(config)
    server = _graceful_server(
        uvicorn,
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=config.log_level,
            access_log=config.access_log,
            timeout_graceful_shutdown=config.graceful_timeout,
            lifespan="on",
        ),
    )
    logger.info("bertkit serve: listening on http://%s:%d", config.host, config.port)
    server.run()
    logger.info("bertkit serve: stopped")
