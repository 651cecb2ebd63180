"""``GET /metrics``: the control plane's metrics in Prometheus' text format
(:mod:`transporter.cp.metrics`), for a ``read`` token that reaches every agent: the figures
cover all of them."""

from __future__ import annotations

from quart import Blueprint, Response, request

from transporter.cp.api.access import Refused, needs
from transporter.cp.api.queries import caller
from transporter.cp.api.services import services
from transporter.security.tokens import Role

routes = Blueprint("metrics", __name__)


@routes.get("/metrics")
@needs(Role.READ)
async def metrics() -> Response:
    """Counters, histograms and gauges of this control plane, as Prometheus scrapes them."""
    who = caller()
    if not who.reaches_every_agent:
        raise Refused(
            403,
            f"the metrics cover every agent; {who.reach('read')}: a read token with"
            " --agents '*' may read them",
            caller=who,
        )
    found = services()
    text, content_type = await found.metrics.render(found.store, request.headers.get("Accept"))
    return Response(text, status=200, content_type=content_type)
