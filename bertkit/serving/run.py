"""serve(config): load the model, then run the app under uvicorn until SIGTERM / SIGINT.

On SIGTERM uvicorn stops accepting connections, lets in-flight requests finish (up to graceful_timeout),
then the app's shutdown drains the batchers and stops the model thread.
"""

from __future__ import annotations

import logging

from bertkit.serving.config import ServeConfig

logger = logging.getLogger(__name__)


def serve(config: ServeConfig) -> None:
    """Blocking: serve until a shutdown signal."""
    try:
        import uvicorn
    except ImportError as err:
        raise ImportError("the HTTP server needs uvicorn: pip install 'bertkit[serve]'") from err
    from bertkit.serving.app import create_app

    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=config.log_level,
            access_log=config.access_log,
            timeout_graceful_shutdown=config.graceful_timeout,
            lifespan="on",
        )
    )
    logger.info("bertkit serve: listening on http://%s:%d", config.host, config.port)
    server.run()
