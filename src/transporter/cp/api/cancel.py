"""``POST /events/{id}/cancel``: an event not yet sent is never sent.

Only a ``queued`` event can be cancelled (:func:`transporter.protocol.status.advance`): one that
was sent may be running on its agent, and ends as it ends there (409 ``not_cancellable``, saying
where it stands). A rollout's child events are cancelled the same way, one by one; cancelling the
rollout (``POST /rollouts/{id}/cancel``) cancels all that are still queued and starts no more.
"""

from __future__ import annotations

from quart import Blueprint

from transporter.cp.api.access import needs
from transporter.cp.api.echo import quoted
from transporter.cp.api.errors import Answer, NotFound
from transporter.cp.api.queries import caller
from transporter.cp.api.services import services
from transporter.security.tokens import Role

routes = Blueprint("cancel", __name__)


@routes.post("/events/<event_id>/cancel")
@needs(Role.SUBMIT)
async def cancel_event(event_id: str) -> Answer:
    who = caller()
    found = services()
    record = await found.store.get_event(event_id)
    if record is None:
        raise NotFound(f"no event {quoted(event_id)}")
    who.require_event(record, "cancel events for")
    cancelled = await found.rollouts.cancel_event(event_id, actor=who.identity)
    return {"event_id": cancelled.event.id, "state": cancelled.state.value}, 200
