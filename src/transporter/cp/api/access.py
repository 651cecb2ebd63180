"""Who is asking, and may they: bearer tokens on the HTTP API (:mod:`transporter.security.tokens`).

Every endpoint needs a token unless it is declared open (health, readiness, the OpenAPI
document); each declares the least role it needs, and an endpoint that declares nothing needs
``admin`` (deny by default). The token's record is read from the store at every request, so a
revocation holds at once, in every control plane on the store; but for the endpoints declared
``kept`` (submissions), whose store write checks the token again in the same atomic step that
stores what they submit: those admit a request on a record kept from an earlier read
(:class:`~.token_reads.KeptTokens`), and a token revoked since is refused by the write (401, as
at the gate), nothing stored. A revocation holds at once either way.

Refusals say what is missing: 401 (``unauthorized``, with ``WWW-Authenticate: Bearer``) when
there is no valid token, 403 (``forbidden``) when the token's role or agents do not allow the
request. Each refusal is written to the audit log (``api.refused``) and the log. A known token's
refusals (its role, its agents, its revocation) are always written: it is accountable, and its
probes must never hide among others. Callers without a known token have a budget each, by
address (:data:`AUDIT_RATE` a second on average, bursts of :data:`AUDIT_BURST`), and all of them
together :data:`ANONYMOUS_RATE`: a flood cannot make the log grow without bound, nor use up
anyone else's budget; those left out are counted in the next one written for that address.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs
import trio

from transporter.cp.api.bucket import Bucket
from transporter.cp.api.echo import quoted
from transporter.cp.api.token_reads import KeptTokens, TokenReads
from transporter.logs import about
from transporter.protocol.model import AuditEntry, EventRecord
from transporter.security.tokens import Role, TokenRecord, token_id_of
from transporter.store.base import Store, StoreUnavailable

log = logging.getLogger(__name__)

AUDIT_RATE: Final = 2.0
"""Refusals of one address without a known token written per second, on average."""
AUDIT_BURST: Final = 20
ANONYMOUS_RATE: Final = 20.0
"""Refusals of all callers without a known token written per second, on average."""
ANONYMOUS_BURST: Final = 200
ADDRESSES: Final = 4096
"""Addresses whose budgets are kept; the longest unseen is forgotten first."""
REALM: Final = 'Bearer realm="transporter"'
GATE: Final = "transporter.gate"
"""The app's extension that holds its :class:`Gate`."""
_MAX_PATH_SHOWN = 200
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,15}")
"""What an authentication scheme looks like (``Basic``, ``Negotiate``): quoted in a refusal."""


class Refused(Exception):
    """A request the caller may not make: 401 or 403, with a message that says what is missing."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        caller: Caller | None = None,
        invalid_token: bool = False,
        agent: str = "",
        event_id: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.caller = caller
        """Who asked, when known (a revoked token is known, but refused)."""
        self.invalid_token = invalid_token
        self.agent = agent
        self.event_id = event_id

    @property
    def code(self) -> str:
        return "unauthorized" if self.status == 401 else "forbidden"

    @property
    def headers(self) -> list[tuple[str, str]]:
        if self.status != 401:
            return []
        if self.invalid_token:
            return [("WWW-Authenticate", f'{REALM}, error="invalid_token"')]
        return [("WWW-Authenticate", REALM)]


@attrs.frozen
class Caller:
    """Who made a request: the token's record, or ``None`` (no token needed: an open endpoint,
    or authentication turned off, when the caller may do everything)."""

    token: TokenRecord | None
    kept: bool = False
    """Whether :attr:`token` is a record kept from an earlier request (the endpoint's write
    checks it again), not one read for this request."""

    @property
    def token_id(self) -> str | None:
        return None if self.token is None else self.token.id

    @property
    def identity(self) -> str:
        """The audit log's ``actor`` for what the caller does; ``""`` without a token."""
        return "" if self.token is None else self.token.identity

    @property
    def created_by(self) -> str | None:
        """What an event it submits is ``created_by``; ``None``: what the request says (only
        when authentication is off)."""
        return None if self.token is None else self.token.identity

    @property
    def reaches_every_agent(self) -> bool:
        return self.token is None or self.token.reaches_every_agent

    def may_target(self, agent: str) -> bool:
        return self.token is None or self.token.may_target(agent)

    def require_target(self, agent: str, doing: str) -> None:
        """:class:`Refused` (403) unless the caller may ``doing`` (``"submit events for"``,
        ``"read"``) the agent ``agent``."""
        if not self.may_target(agent):
            message = f"{self.reach(doing)}; not agent {quoted(agent)}"
            raise Refused(403, message, caller=self, agent=agent)

    def require_event(self, record: EventRecord, doing: str) -> None:
        """:class:`Refused` (403) unless the caller may ``doing`` (``"read"``, ``"cancel
        events for"``) the agent of the event ``record``: the refusal names the event."""
        if not self.may_target(record.event.target_agent):
            raise Refused(
                403,
                f"event {record.event.id!r} is for an agent outside your token's reach:"
                f" {self.reach(doing)}",
                caller=self,
                agent=record.event.target_agent,
                event_id=record.event.id,
            )

    def reach(self, doing: str) -> str:
        """``your token 'ci' may read agents matching 'team-a-*'``."""
        if self.token is None:
            return f"you may {doing} every agent"
        patterns = ", ".join(repr(pattern) for pattern in self.token.agents)
        return f"your token {self.token.name!r} may {doing} agents matching {patterns}"


OPEN = Caller(None)

_DECLARED: Final = "transporter_needs"
_KEPT: Final = "transporter_kept"


def needs[F: Callable[..., Any]](role: Role, *, kept: bool = False) -> Callable[[F], F]:
    """Declare the least role the endpoint (the decorated view function) needs. ``kept``: the
    endpoint checks the token again in its store write (passes :attr:`Caller.token_id` to it,
    and answers :meth:`Gate.refusal` when the write finds it revoked), so a record kept from an
    earlier request may admit it."""

    def mark(view: F) -> F:
        setattr(view, _DECLARED, role)
        setattr(view, _KEPT, kept)
        return view

    return mark


def open_route[F: Callable[..., Any]](view: F) -> F:
    """Declare the endpoint open: no token needed."""
    setattr(view, _DECLARED, None)
    return view


class Gate:
    """Authentication and the role each endpoint needs; one per app."""

    def __init__(
        self, store: Store, *, enabled: bool = True, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.enabled = enabled
        self.clock = clock
        self._tokens = TokenReads(store.get_token)
        """Token records, one read for the requests that come together (:mod:`.token_reads`)."""
        self._kept = KeptTokens()
        """Valid records as last read, for the endpoints declared ``kept``."""
        self._needs: dict[str, Role | None] = {}
        self._kept_ok: set[str] = set()
        self._anonymous = Bucket(ANONYMOUS_RATE, ANONYMOUS_BURST)
        self._by_address: OrderedDict[str, Bucket] = OrderedDict()

    # --- what endpoints need ----------------------------------------------------------------

    def learn(self, views: Mapping[str, Callable[..., Any]]) -> None:
        """Take each endpoint's declaration (:func:`needs`, :func:`open_route`) from the app's
        view functions, by endpoint name; call it once every blueprint is registered."""
        self._needs = {
            endpoint: getattr(view, _DECLARED)
            for endpoint, view in views.items()
            if hasattr(view, _DECLARED)
        }
        self._kept_ok = {
            endpoint for endpoint, view in views.items() if getattr(view, _KEPT, False)
        }

    def declared(self) -> dict[str, Role | None]:
        return dict(self._needs)

    # --- per request ------------------------------------------------------------------------

    async def admit(
        self, endpoint: str | None, authorization: str | None, *, fresh: bool = False
    ) -> Caller:
        """The caller of a request to ``endpoint`` (``None``: no route matched, which the
        router answers once the caller is known), or :class:`Refused`. ``fresh``: the token's
        record read for this request, even for an endpoint declared ``kept``."""
        if endpoint is not None and endpoint in self._needs and self._needs[endpoint] is None:
            return OPEN
        if not self.enabled:
            return OPEN
        if endpoint is not None and not fresh:
            kept = self.kept_caller(endpoint, authorization)
            if kept is not None:  # else read: a refusal is never made on a kept record
                return kept
        token = await self._authenticate(authorization)
        caller = Caller(token)
        if endpoint is None:
            return caller
        needed = self._needs.get(endpoint) or Role.ADMIN
        if not token.role.allows(needed):
            roles = " or ".join(role.value for role in needed.and_above)
            raise Refused(
                403,
                f"this endpoint needs a token with role {roles}; yours ({token.name!r}) has"
                f" {token.role.value}",
                caller=caller,
            )
        return caller

    async def refusal(self, authorization: str | None, caller: Caller) -> Refused:
        """The refusal of ``caller``'s request, whose store write found its token revoked (read
        again, for the message the gate gives: who, and since when)."""
        try:
            await self._authenticate(authorization)
        except Refused as refused:
            return refused
        return Refused(401, "the bearer token was revoked", caller=caller, invalid_token=True)

    def kept_caller(self, endpoint: str, authorization: str | None) -> Caller | None:
        """The caller :meth:`admit` would find for a request to ``endpoint`` (declared ``kept``)
        on a kept record alone, with no read and no refusal; ``None`` when that takes more (a
        token not kept, not a token, a role that does not allow it: :meth:`admit` says)."""
        if not self.enabled:
            return OPEN
        if endpoint not in self._kept_ok or not authorization:
            return None
        try:
            token_id, text = _bearer(authorization)
        except Refused:
            return None
        record = self._kept.get(token_id)
        needed = self._needs.get(endpoint) or Role.ADMIN
        if record is None or not record.matches(text) or not record.role.allows(needed):
            return None
        return Caller(record, kept=True)

    def forget(self, token_id: str | None) -> None:
        """Keep no record of ``token_id`` (its write found it revoked)."""
        if token_id is not None:
            self._kept.saw(token_id, None)

    async def _authenticate(self, authorization: str | None) -> TokenRecord:
        """The token's record, read for this request (and kept when valid)."""
        token_id, text = _bearer(authorization)
        record = await self._tokens.get(token_id)
        self._kept.saw(token_id, record)
        if record is None or not record.matches(text):
            raise Refused(
                401,
                "the bearer token is not valid (unknown, or not its secret)",
                invalid_token=True,
            )
        if record.revoked_at is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(record.revoked_at))
            raise Refused(
                401,
                f"the bearer token {record.id} ({record.name!r}) was revoked at {when}",
                caller=Caller(record),
                invalid_token=True,
            )
        return record

    # --- refusals in the audit log ----------------------------------------------------------

    async def record_refusal(
        self, refused: Refused, *, method: str, path: str, remote: str | None
    ) -> None:
        """Write the refusal to the audit log and the log (within its caller's budget)."""
        caller = refused.caller
        actor = caller.identity if caller is not None else ""
        left_out = 0
        if not actor:  # no known token: a budget per address, and one for all of them
            bucket = self._bucket(remote or "unknown")
            now = trio.current_time()
            if not (bucket.take(now) and self._anonymous.take(now)):
                bucket.left_out += 1
                return
            left_out, bucket.left_out = bucket.left_out, 0
        shown = path if len(path) <= _MAX_PATH_SHOWN else path[:_MAX_PATH_SHOWN] + "…"
        detail = f"{refused.status} {method} {shown} from {remote or 'unknown'}: {refused.message}"
        if left_out:
            detail += f" ({left_out} refusals from this address before it were not recorded)"
        log.info(
            "refused: %s%s",
            f"{actor} " if actor else "",
            detail,
            extra=about(agent_id=refused.agent, event_id=refused.event_id),
        )
        entry = AuditEntry(
            at=self.clock(),
            action="api.refused",
            actor=actor,
            agent_id=refused.agent,
            event_id=refused.event_id,
            detail=detail,
        )
        try:
            await self.store.audit(entry)
        except StoreUnavailable as exc:  # the refusal stands; it is in the log at least
            log.warning("could not write a refusal to the audit log: %s", exc)

    def _bucket(self, address: str) -> Bucket:
        bucket = self._by_address.pop(address, None) or Bucket(AUDIT_RATE, AUDIT_BURST)
        self._by_address[address] = bucket
        while len(self._by_address) > ADDRESSES:
            self._by_address.popitem(last=False)
        return bucket


def _bearer(authorization: str | None) -> tuple[str, str]:
    """The token id and the token of an ``Authorization`` header; else :class:`Refused`."""
    if not authorization:
        raise Refused(
            401,
            "this endpoint needs a token: send 'Authorization: Bearer tpt_…' (a token from"
            " `transporter token create` on the control plane's host)",
        )
    scheme, _, text = authorization.strip().partition(" ")
    text = text.strip()
    if scheme.lower() != "bearer" or not text:
        # The scheme is named only when it looks like one: a token sent without "Bearer "
        # would otherwise be quoted (in the answer, the log and the audit log).
        said = f"not {scheme!r} …" if _SCHEME.fullmatch(scheme) else "not a bare credential"
        raise Refused(
            401,
            f"the Authorization header must be 'Bearer <token>', {said}",
            invalid_token=True,
        )
    token_id = token_id_of(text)
    if token_id is None:
        raise Refused(
            401,
            "the bearer token is not a transporter token (tpt_<id>_<secret>)",
            invalid_token=True,
        )
    return token_id, text


def listing(agents: Iterable[str]) -> str:
    """``'a', 'b' and 3 more``: a few agent ids for a message."""
    unique = list(dict.fromkeys(agents))
    shown = ", ".join(repr(agent) for agent in unique[:5])
    return shown + (f" and {len(unique) - 5} more" if len(unique) > 5 else "")
