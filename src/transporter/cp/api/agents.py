"""Reading agents: ``GET /agents`` and ``GET /agents/{id}``, with this process's live view of
the connections it holds."""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from transporter.cp.api.access import needs
from transporter.cp.api.echo import quoted
from transporter.cp.api.errors import Answer, error
from transporter.cp.api.queries import caller
from transporter.cp.api.services import Services, services
from transporter.protocol import codec
from transporter.protocol.model import AgentRecord, AgentStatus
from transporter.security.tokens import Role

routes = Blueprint("agents", __name__)


@routes.get("/agents")
@needs(Role.READ)
async def list_agents() -> dict[str, Any]:
    """Every agent that ever registered; for a token that sees only some, those."""
    who = caller()
    found = services()
    records = [r for r in await found.store.list_agents() if who.may_target(r.info.id)]
    return {"items": [_agent_view(r, found) for r in records]}


@routes.get("/agents/<agent_id>")
@needs(Role.READ)
async def get_agent(agent_id: str) -> Answer:
    caller().require_target(agent_id, "read")
    found = services()
    record = await found.store.get_agent(agent_id)
    if record is None:
        return error(404, "not_found", f"no agent {quoted(agent_id)} has ever registered")
    return _agent_view(record, found), 200


def _agent_view(record: AgentRecord, found: Services) -> dict[str, Any]:
    """The stored record, with this process's live view of a connection it holds."""
    data: dict[str, Any] = codec.unstructure(record)
    live = found.live.get(record.info.id)
    if live is not None:
        data["status"] = live.status.value
        data["last_heartbeat"] = live.last_heard
        data["connected_since"] = live.connected_since
    elif record.status is not AgentStatus.DISCONNECTED and not found.shared_store:
        # With the embedded store this process is the only one agents connect to.
        data["status"] = AgentStatus.DISCONNECTED.value
    return data
