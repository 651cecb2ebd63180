"""The routes open to everyone: liveness, readiness, and this API's OpenAPI document."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app

from transporter import __version__
from transporter.cp.api.access import open_route
from transporter.cp.api.services import services

routes = Blueprint("public", __name__)
DOCUMENT = "transporter.openapi"


@routes.get("/openapi.json")
@open_route
async def openapi() -> dict[str, Any]:
    """This API in OpenAPI 3.1."""
    document: dict[str, Any] = current_app.extensions[DOCUMENT]
    return document


@routes.get("/healthz")
@open_route
async def healthz() -> dict[str, Any]:
    """Liveness: the process serves requests. Says nothing about the store."""
    return {"status": "ok", "version": __version__}


@routes.get("/readyz")
@open_route
async def readyz() -> tuple[dict[str, Any], int]:
    """Readiness: the store answers."""
    await services().store.ping()
    return {"status": "ready"}, 200
