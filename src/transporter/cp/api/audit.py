"""The audit log: ``GET /audit``, for ``admin`` tokens."""

from __future__ import annotations

from quart import Blueprint, request

from transporter.cp.api.access import needs
from transporter.cp.api.errors import Answer
from transporter.cp.api.events import MAX_LIMIT
from transporter.cp.api.queries import int_arg
from transporter.cp.api.services import services
from transporter.cp.openapi.bounds import AUDIT_PAGE
from transporter.protocol import codec
from transporter.security.tokens import Role

routes = Blueprint("audit", __name__)


@routes.get("/audit")
@needs(Role.ADMIN)
async def audit() -> Answer:
    """Newest first."""
    page = await services().store.list_audit(
        limit=int_arg("limit", AUDIT_PAGE, 1, MAX_LIMIT), cursor=request.args.get("cursor") or None
    )
    return {"items": codec.unstructure(page.items), "cursor": page.cursor}, 200
