"""``/metrics``: the control plane's metrics, as Prometheus scrapes them."""

from __future__ import annotations

from typing import Any

from transporter.cp.openapi.parts import STRING, UNAVAILABLE

TEXT = "text/plain"


def paths() -> dict[str, Any]:
    return {
        "/metrics": {
            "get": {
                "operationId": "getMetrics",
                "summary": (
                    "Counters, histograms and gauges of this control plane in Prometheus' text"
                    " format (OpenMetrics when the Accept header asks for it). Needs a read"
                    " token that reaches every agent (``--agents '*'``): the figures cover all"
                    " of them."
                ),
                "responses": {
                    "200": {
                        "description": "The metrics (``text/plain; version=0.0.4``).",
                        "content": {TEXT: {"schema": STRING}},
                    },
                    "503": UNAVAILABLE,
                },
            }
        }
    }
