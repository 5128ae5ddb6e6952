"""The playground: one self-contained page at GET / (index.html: inline CSS and JS, no network) that shows what
the loaded model does, through the same routes any client uses."""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi.responses import HTMLResponse, Response

from bertkit.serving.http import json_response


def page() -> str:
    return resources.files(__package__).joinpath("index.html").read_text(encoding="utf-8")


def install(app: Any, server: Any) -> None:
    if not server.config.playground:

        @app.get("/")
        async def root_health() -> Response:
            """Health (the playground is off: --no-playground)."""
            return json_response({"status": "ok"})

        return
    html = page()

    @app.get("/", response_class=HTMLResponse)
    async def playground() -> Response:
        """The playground page."""
        return HTMLResponse(html)
