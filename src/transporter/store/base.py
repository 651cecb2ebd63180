"""The Store boundary: everything the control plane keeps, behind one interface.

Two implementations pass one conformance suite (``tests/store/``): the embedded SQLite file and
Redis. Every method is async and safe to call from any trio task; blocking drivers run in worker
threads with a limiter and a timeout inside the implementation. Errors of the driver never escape:
they become :class:`StoreUnavailable` (the store cannot be reached or answered too slowly) or
:class:`EventConflict` (the caller's fault).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from transporter.protocol.identity import IssuedCertificate, Revocation
from transporter.protocol.model import (
    AgentRecord,
    AuditEntry,
    Event,
    EventRecord,
    EventState,
)
from transporter.protocol.rollout import RolloutKind, RolloutRecord, RolloutState
from transporter.protocol.status import StatusUpdate
from transporter.security.audit_chain import ChainHead
from transporter.security.tokens import TokenRecord
from transporter.store.event_progress import EventProgress as EventProgress
from transporter.store.queue_store import QueueStore
from transporter.store.replica_feed import ChangeSink as ChangeSink
from transporter.store.replica_feed import ReplicaFeed as ReplicaFeed
from transporter.store.sending import Sending as Sending

MAX_LIMIT = 1000
"""The most items one call returns; a larger ``limit`` is lowered to this."""


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreUnavailable(StoreError):
    """The store could not be reached, or did not answer in time.

    Nothing was changed, except when a write timed out after it had been sent: then its outcome
    is unknown (repeating a ``submit`` with the same event is safe, it is idempotent).
    """


class EventConflict(StoreError):
    """An event with this id exists and asks for something else."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"event {event_id!r} exists with different content")
        self.event_id = event_id


class TokenRevoked(StoreError):
    """A submission's token is revoked (or not stored): checked in the write that would have
    stored it, nothing of it was (:meth:`EventStore.submit_many`'s ``tokens``)."""

    def __init__(self, token_id: str) -> None:
        super().__init__(f"token {token_id!r} is revoked")
        self.token_id = token_id


type Submitted = tuple[EventRecord, bool] | EventConflict | TokenRevoked
"""What :meth:`EventStore.submit_many` gives for each item."""


class TokenConflict(StoreError):
    """A token with this id is stored already (ids are random: a new one will do)."""

    def __init__(self, token_id: str) -> None:
        super().__init__(f"a token with id {token_id!r} exists")
        self.token_id = token_id


class RolloutConflict(StoreError):
    """A rollout with this id exists and asks for something else."""

    def __init__(self, rollout_id: str) -> None:
        super().__init__(f"rollout {rollout_id!r} exists with different content")
        self.rollout_id = rollout_id


class QueueUnsupported(StoreError):
    """This store has no queue (the embedded store): queue mode needs Redis."""


class InvalidCursor(StoreError, ValueError):
    """A ``cursor`` that no listing of this store handed out (the caller's fault)."""

    def __init__(self, cursor: str) -> None:
        super().__init__(f"invalid cursor {cursor!r}")
        self.cursor = cursor


@attrs.frozen
class Page[T]:
    items: list[T]
    cursor: str | None
    """Pass back to get the next page; ``None`` when there is no more."""


class EventStore(Protocol):
    """Events: accepted once, then their progress as their agent reports it."""

    async def submit(self, event: Event, audit: AuditEntry) -> tuple[EventRecord, bool]:
        """Store a new event as ``queued`` together with its audit entry, durably, at once.

        Returns the record and ``True``; for an id already stored with the same request
        (:meth:`Event.same_request`) returns the existing record and ``False`` and writes
        nothing; with a different request raises :class:`EventConflict`.
        """
        ...

    async def submit_many(
        self,
        items: Sequence[tuple[Event, AuditEntry]],
        *,
        sending: Sequence[Sending | None] = (),
        tokens: Sequence[str | None] = (),
    ) -> list[Submitted]:
        """:meth:`submit` for each item, durably, as one write where the store allows: a
        conflict is returned in its item's place and the other items are still stored.
        ``sending`` (per item): a new event stored sent when it can be (:class:`Sending`).
        ``tokens`` (per item): the id of the API token that submits it, checked in the write:
        an item whose token is revoked (or not stored) is :class:`TokenRevoked`, nothing of it
        written, so a control plane may admit a request on a token record it kept."""
        ...

    async def update_many(
        self, items: Sequence[tuple[str, StatusUpdate, AuditEntry | None]]
    ) -> list[EventRecord | None]:
        """:meth:`update_event` for each ``(event_id, update, audit)``, in order, as one write
        where the store allows (the control plane batches what arrives together)."""
        ...

    async def get_event(self, event_id: str) -> EventRecord | None: ...

    async def get_events(self, event_ids: Sequence[str]) -> list[EventRecord | None]:
        """:meth:`get_event` for each id, in order, in one read (a rollout's children)."""
        ...

    async def event_progress(self, event_ids: Sequence[str]) -> list[EventProgress | None]:
        """For each id, in order, the event's :class:`EventProgress` (``None``: unknown), in one
        read that neither reads nor decodes any event's payload: a rollout's engine looks at
        its children this way however large their manifests are."""
        ...

    async def list_events(
        self,
        *,
        agent: str | None = None,
        state: EventState | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[EventRecord]:
        """Newest first (by ``seq``), filtered by target agent and state."""
        ...

    async def update_event(
        self, event_id: str, update: StatusUpdate, *, audit: AuditEntry | None = None
    ) -> EventRecord | None:
        """Apply ``update`` with :func:`transporter.protocol.status.advance`, atomically.

        Returns the new record, or ``None`` when the event is unknown or the update does not
        apply (for example the event is already terminal). ``audit`` is appended in the same
        transaction, when (and only when) the update applies.
        """
        ...

    async def outbox(
        self, agent_id: str, *, after: int = 0, limit: int = 100
    ) -> list[tuple[int, Event]]:
        """The agent's unfinished events (not terminal) with ``seq`` greater than ``after``,
        oldest first, as ``(seq, event)``: a reader that remembers the last ``seq`` it saw
        reads each event once."""
        ...

    async def agents_with_unfinished(self, agent_ids: Sequence[str]) -> set[str]:
        """Which of ``agent_ids`` (:data:`MAX_LIMIT` at most) have an unfinished event."""
        ...

    async def expiring(self, now: float, *, limit: int = 100) -> list[str]:
        """Ids of unfinished events whose ``expires_at`` is at or before ``now``."""
        ...

    async def count_unfinished(self) -> dict[EventState, int]:
        """How many events are in each state that is not final (``queued``, ``assigned``,
        ``in_progress``; a state with none may be left out). Read from an index: its cost
        grows with the unfinished events at most, never with the whole history."""
        ...


class RolloutStore(Protocol):
    """Rollouts and plans (:mod:`transporter.protocol.rollout`); their child events are events.

    A rollout's record is written over the version it was read at: two writers (the rollout's
    engine and an ``approve``, or two replicas) never undo each other's change; the one that
    loses reads again and retries. Its spec (the payload, a plan's apply's expects: megabytes)
    is written once, by :meth:`create_rollout`; a save writes the rest only.
    """

    async def create_rollout(
        self, record: RolloutRecord, audit: AuditEntry
    ) -> tuple[RolloutRecord, bool]:
        """Store a new rollout (its ``version`` becomes 1, its ``seq`` the next) with its audit
        entry, durably, at once. Returns the stored record and ``True``; for an id stored
        already with an equal ``spec`` (``created_at`` aside) the stored record and ``False``
        (nothing written); with another spec raises :class:`RolloutConflict`."""
        ...

    async def get_rollout(self, rollout_id: str) -> RolloutRecord | None: ...

    async def save_rollout(
        self, record: RolloutRecord, audits: Sequence[AuditEntry] = ()
    ) -> RolloutRecord | None:
        """Replace the stored record by ``record`` if the stored ``version`` still equals
        ``record.version``: stores it with ``version + 1`` (and ``updated_at`` as given), with
        ``audits`` in the same transaction, and returns it as stored. ``None`` when the stored
        version differs (read again and retry) or the rollout is unknown; nothing is written.

        ``record.spec`` is not written (a rollout's spec never changes): a record whose spec is
        not the stored one raises :class:`ValueError` and nothing is written (compared whole
        when the store keeps the spec decoded, else by its ``kind``)."""
        ...

    async def list_rollouts(
        self,
        *,
        state: RolloutState | None = None,
        kind: RolloutKind | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RolloutRecord]:
        """Newest first (by ``seq``), filtered by state and kind."""
        ...

    async def open_rollouts(self) -> list[str]:
        """Ids of the rollouts whose state is not final (``standing`` ones included), oldest
        first. Read from an index: its cost grows with the open rollouts, not the history."""
        ...


class AgentStore(Protocol):
    """What the control plane last knew of each agent."""

    async def put_agent(self, record: AgentRecord) -> None: ...

    async def put_agents(
        self, records: Sequence[AgentRecord], audits: Sequence[AuditEntry] = ()
    ) -> None:
        """Store many agents' records and audit entries as one write (a reconnect storm of
        thousands of agents must not cost a durable write each): all of them, or none."""
        ...

    async def get_agent(self, agent_id: str) -> AgentRecord | None: ...

    async def list_agents(self) -> list[AgentRecord]:
        """Sorted by id."""
        ...


class AuditStore(Protocol):
    """The audit log, a hash chain (:mod:`transporter.security.audit_chain`).

    Every append, by :meth:`audit` or with a write of another concern (``submit``,
    ``update_event``, a token's change ...), reads the store's chain head, seals the entry after
    it (``seq``, ``prev_hash``, ``hash``; whatever the caller put there is replaced) and moves
    the head, as one atomic step: concurrent appends, from any task or process, never fork it.
    """

    async def audit(self, entry: AuditEntry) -> AuditEntry:
        """Append ``entry``; returns it as stored: with its ``seq``, ``prev_hash`` and ``hash``."""
        ...

    async def list_audit(self, *, limit: int = 100, cursor: str | None = None) -> Page[AuditEntry]:
        """Newest first."""
        ...

    async def audit_after(self, after: int = 0, *, limit: int = 100) -> list[AuditEntry]:
        """Entries in the store's order of ``seq``, oldest first, from the first after ``after``:
        a reader that passes back the last ``seq`` it saw walks the whole log once."""
        ...

    async def audit_head(self) -> ChainHead:
        """The chain head the store keeps beside the log: ``seq`` and ``hash`` of the last entry
        it appended (``ChainHead()`` before the first)."""
        ...


class CredentialStore(Protocol):
    """API tokens, revoked and issued agent certificates, and pinned key fingerprints."""

    # --- API tokens ---------------------------------------------------------------------------

    # Each change is written with its audit entry, as one atomic step (like ``submit``). A token
    # is read from the store at every request it comes with: a revocation holds at once, in every
    # control plane on the store.

    async def create_token(self, record: TokenRecord, audit: AuditEntry) -> None:
        """Store a new token (not revoked) and its audit entry; :class:`TokenConflict` when its
        id is taken."""
        ...

    async def get_token(self, token_id: str) -> TokenRecord | None: ...

    async def list_tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones included, oldest first (then by id)."""
        ...

    async def revoke_token(
        self, token_id: str, at: float, audit: AuditEntry
    ) -> tuple[TokenRecord, bool] | None:
        """Mark the token revoked at ``at``, with its audit entry. Returns the stored record
        and ``True``; for a token revoked already, that record (its first ``revoked_at`` kept)
        and ``False``, and writes nothing; ``None`` for an unknown id."""
        ...

    # --- revoked agent certificates -----------------------------------------------------------

    # Every control plane on the store reads these at start and then asks for newer ones every
    # few seconds (``revocations(after=...)``): a revocation reaches all of them, refuses the
    # certificate at its next handshake and ends its open connection.

    async def revoke_certificate(
        self, revocation: Revocation, audit: AuditEntry
    ) -> tuple[Revocation, bool]:
        """Store ``revocation`` with its audit entry, as one atomic step; returns it as stored
        (with its ``seq``) and ``True``. A certificate revoked already by the same ``key`` is
        returned as first stored, with ``False``, and nothing is written."""
        ...

    async def revocations(self, *, after: int = 0) -> list[Revocation]:
        """The revocations with ``seq`` greater than ``after``, oldest first. Cheap when there
        is nothing new: control planes ask every few seconds."""
        ...

    # --- issued agent certificates ------------------------------------------------------------

    async def record_certificate(self, certificate: IssuedCertificate, audit: AuditEntry) -> None:
        """Record a certificate the CA issued, with its audit entry, as one atomic step (a
        serial recorded already is left as it is)."""
        ...

    async def issued_certificates(self) -> list[IssuedCertificate]:
        """Every certificate recorded, oldest first."""
        ...

    # --- pins ---------------------------------------------------------------------------------

    async def pin(self, name: str, value: str) -> str:
        """Record ``value`` under ``name`` unless a value is recorded there already (atomically:
        of control planes starting at once, one wins); returns the value recorded. Control
        planes pin the fingerprints of their CA and signing key, so that a replica with other
        keys on the same store refuses to start instead of failing every agent."""
        ...


class Store(
    EventStore,
    RolloutStore,
    AgentStore,
    AuditStore,
    CredentialStore,
    ReplicaFeed,
    QueueStore,
    Protocol,
):
    """What the control plane needs from durable state: every concern above, and the store's
    own life."""

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the store answers (``/readyz``)."""

    async def aclose(self) -> None: ...

    async def durability_warnings(self) -> list[str]:
        """What keeps this store from the promise that an accepted event survives a crash,
        one sentence each; empty when it keeps it. The control plane logs them at start."""
        ...
