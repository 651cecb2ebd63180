"""The control plane's HTTP API (quart-trio). Routes only; serving is in :mod:`.http`."""

from __future__ import annotations

from typing import Any

from quart_trio import QuartTrio

from transporter import __version__


def create_app() -> QuartTrio:
    app = QuartTrio("transporter.cp")
    app.config["JSON_SORT_KEYS"] = False

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness: the process serves requests. Says nothing about the store."""
        return {"status": "ok", "version": __version__}

    return app
