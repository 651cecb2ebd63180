"""The agents' records as their connections come and go: stored (with the audit log's entry)
when an agent connects, replaces its connection, changes status or leaves; what was sent to an
agent that left and did not finish goes back to its outbox."""

from __future__ import annotations

import logging
import time

from transporter.cp.live import Connection
from transporter.cp.progress import Progress
from transporter.logs import about
from transporter.protocol.model import AgentRecord, AgentStatus, AuditEntry, EventState
from transporter.protocol.status import StatusUpdate
from transporter.store.base import Store

log = logging.getLogger(__name__)


async def arrived(store: Store, connection: Connection, *, peer: str, replaced: bool) -> None:
    """``connection`` is attached (``replaced``: instead of the agent's previous one)."""
    info, now = connection.info, connection.connected_since
    await store.put_agent(AgentRecord(info, AgentStatus.CONNECTED, now, now, updated_at=now))
    detail = f"from {peer}"
    if connection.certificate is not None:
        detail += f", certificate serial {connection.certificate.serial}"
    action = "agent.replaced" if replaced else "agent.connected"
    await store.audit(AuditEntry(at=now, action=action, agent_id=info.id, detail=detail))
    log.info(
        "agent %s connected from %s%s",
        info.id,
        peer,
        " (replacing its previous connection)" if replaced else "",
        extra=about(agent_id=info.id),
    )


async def left(store: Store, progress: Progress, connection: Connection) -> None:
    """``connection`` ended, and no newer one of the agent replaced it."""
    now = time.time()
    info = connection.info
    await save_status(store, connection, AgentStatus.DISCONNECTED)
    await store.audit(AuditEntry(at=now, action="agent.disconnected", agent_id=info.id))
    # Sent but not finished: back to queued (in_progress ones stay as they are).
    went_away = StatusUpdate(at=now, state=EventState.QUEUED, message="agent went away")
    pending = [
        await progress.enqueue(event_id, info.id, went_away) for event_id in connection.window
    ]
    for one in pending:
        await progress.updated(one, info.id)
    log.info("agent %s disconnected", info.id, extra=about(agent_id=info.id))


async def save_status(
    store: Store, connection: Connection, status: AgentStatus | None = None
) -> None:
    """Store the agent's record as this connection sees it (``status``: its new status)."""
    await store.put_agent(
        AgentRecord(
            connection.info,
            status or connection.status,
            connection.connected_since,
            connection.last_heard,
            updated_at=time.time(),
        )
    )
