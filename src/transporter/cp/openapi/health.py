"""The open endpoints: liveness, readiness and this document (no token needed)."""

from __future__ import annotations

from typing import Any

from transporter.cp.openapi.parts import STRING, UNAVAILABLE, answer, obj


def paths() -> dict[str, Any]:
    return {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process serves requests (says nothing of the store).",
                "responses": {
                    "200": answer(
                        "Alive.", obj(["status", "version"], status={"const": "ok"}, version=STRING)
                    )
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the store answers.",
                "responses": {
                    "200": answer("Ready.", obj(["status"], status={"const": "ready"})),
                    "503": UNAVAILABLE,
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "responses": {"200": answer("OpenAPI 3.1.", {"type": "object"})},
            }
        },
    }
