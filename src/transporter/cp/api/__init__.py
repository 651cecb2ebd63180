"""The control plane's HTTP API (quart-trio): routes in one module per resource; serving is in
:mod:`transporter.cp.http`.

Every answer is JSON, refusals included (:mod:`.errors`). Every route declares what it needs
(:mod:`.access`): open to all, or the least role of a token; a ``read`` or ``submit`` token sees
only the events and agents its patterns match, and may submit only for those agents.
"""

from __future__ import annotations

from quart import Response, g, request
from quart_trio import QuartTrio

from transporter import __version__
from transporter.cp.api import (
    agents,
    audit,
    cancel,
    errors,
    events,
    metrics,
    plans,
    public,
    queue,
    rollouts,
    submit,
)
from transporter.cp.api.access import GATE, Gate
from transporter.cp.api.errors import BadBody
from transporter.cp.api.services import KEY, Services
from transporter.cp.api.strict_json import use_strict_json
from transporter.cp.openapi import openapi_document
from transporter.protocol.submission import MAX_MANIFEST_BYTES

__all__ = ["GATE", "create_app"]


def create_app(found: Services, *, auth: bool = True) -> QuartTrio:
    """The API on ``found``; ``auth=False`` (``--insecure-no-auth``): no token needed."""
    app = QuartTrio("transporter.cp")
    app.config["JSON_SORT_KEYS"] = False
    app.config["MAX_CONTENT_LENGTH"] = 2 * MAX_MANIFEST_BYTES
    app.extensions[KEY] = found
    app.extensions[public.DOCUMENT] = openapi_document(
        version=__version__,
        max_wait=events.MAX_WAIT,
        max_limit=events.MAX_LIMIT,
        max_batch=submit.MAX_BATCH,
    )
    for module in (public, submit, events, cancel, rollouts, plans, agents, audit, queue, metrics):
        app.register_blueprint(module.routes)
    gate = Gate(found.store, enabled=auth)
    gate.learn(app.view_functions)
    app.extensions[GATE] = gate
    errors.register(app, gate)
    use_strict_json(app)

    @app.before_request
    async def framing() -> None:
        """Both lengths at once is how request smuggling starts: a proxy in front may frame
        the body by the other one."""
        if "Content-Length" in request.headers and "Transfer-Encoding" in request.headers:
            raise BadBody(
                "bad_request", "a request may not carry both Content-Length and Transfer-Encoding"
            )

    @app.before_request
    async def authenticate() -> None:
        authorization = request.headers.get("Authorization")
        # only a POST's write checks the token (OPTIONS reaches a submission's endpoint too)
        fresh = request.method != "POST"
        g.caller = await gate.admit(request.endpoint, authorization, fresh=fresh)

    @app.after_request
    async def count_refusals(response: Response) -> Response:
        found.metrics.answered(response.status_code)
        return response

    return app
