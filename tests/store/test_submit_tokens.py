"""A submission checked against its API token in the write that stores it (store/base.py
``submit_many``'s ``tokens``): an item whose token is revoked, or not stored, is
``TokenRevoked`` and nothing of it is written (no event, no audit entry), whatever else the
write holds; the others are stored as ever. On both stores."""

from __future__ import annotations

import time

from tests.bed import records as r
from tests.store.test_tokens import created, revoked, token
from transporter.cp.progress import sent
from transporter.protocol.model import EventState
from transporter.security.tokens import TokenRecord
from transporter.store import Store, verify_audit
from transporter.store.base import EventConflict, Submitted, TokenRevoked


async def _token(store: Store, name: str, *, revoke: bool = False) -> TokenRecord:
    _, record = token(name, at=time.time())
    await store.create_token(record, created(record))
    if revoke:
        await store.revoke_token(record.id, time.time(), revoked(record, time.time()))
    return record


async def _submit(
    store: Store, specs: list[tuple[str, str | None]], *, sent_after: int | None = None
) -> list[Submitted]:
    """Submit ``(event id, token id)`` for agent-a in one write (sent when ``sent_after``)."""
    now = time.time()
    events = [r.event(event_id, "agent-a", created_at=now) for event_id, _ in specs]
    return await store.submit_many(
        [(event, r.accepted_audit(event)) for event in events],
        sending=[None if sent_after is None else sent(e, now, after=sent_after) for e in events],
        tokens=[token_id for _, token_id in specs],
    )


async def _audited(store: Store) -> list[tuple[str, str]]:
    return [(e.action, e.event_id) for e in await store.audit_after(0) if e.event_id]


async def test_a_valid_tokens_submission_is_stored(store: Store) -> None:
    valid = await _token(store, "ci")
    (result,) = await _submit(store, [("ev-1", valid.id)])
    assert not isinstance(result, (EventConflict, TokenRevoked))
    assert result[1] and result[0].state is EventState.QUEUED
    assert await store.get_event("ev-1") is not None


async def test_a_revoked_or_unknown_tokens_submission_writes_nothing(store: Store) -> None:
    gone = await _token(store, "old", revoke=True)
    valid = await _token(store, "ci")
    results = await _submit(
        store,
        [("ev-1", gone.id), ("ev-2", valid.id), ("ev-3", "0123456789ab"), ("ev-4", None)],
    )
    assert [type(result).__name__ for result in results] == [
        "TokenRevoked",
        "tuple",
        "TokenRevoked",
        "tuple",
    ]
    assert isinstance(results[0], TokenRevoked) and results[0].token_id == gone.id
    assert isinstance(results[2], TokenRevoked) and results[2].token_id == "0123456789ab"
    assert await store.get_event("ev-1") is None and await store.get_event("ev-3") is None
    assert [event.id for _, event in await store.outbox("agent-a")] == ["ev-2", "ev-4"]
    assert await _audited(store) == [("event.accepted", "ev-2"), ("event.accepted", "ev-4")]
    assert (await verify_audit(store)).intact


async def test_a_revoked_token_cannot_repeat_what_it_stored(store: Store) -> None:
    """The same request again is answered with the stored record, but not for a token revoked
    since: the token is checked first."""
    record = await _token(store, "ci")
    (first,) = await _submit(store, [("ev-1", record.id)])
    assert not isinstance(first, (EventConflict, TokenRevoked))
    await store.revoke_token(record.id, time.time(), revoked(record, time.time()))
    (again,) = await _submit(store, [("ev-1", record.id)])
    assert isinstance(again, TokenRevoked)


async def test_an_event_to_be_stored_sent_is_not_stored_for_a_revoked_token(store: Store) -> None:
    gone = await _token(store, "old", revoke=True)
    valid = await _token(store, "ci")
    results = await _submit(store, [("ev-1", gone.id), ("ev-2", valid.id)], sent_after=0)
    assert isinstance(results[0], TokenRevoked)
    assert not isinstance(results[1], (EventConflict, TokenRevoked))
    assert results[1][0].state is EventState.ASSIGNED
    assert await store.get_event("ev-1") is None
    assert await _audited(store) == [("event.accepted", "ev-2"), ("event.delivered", "ev-2")]
    assert (await verify_audit(store)).intact
