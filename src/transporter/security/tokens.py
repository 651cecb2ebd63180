"""API tokens: what a bearer token looks like, what the store keeps of it, what it allows. Pure.

A token is ``tpt_<id>_<secret>``: ``id`` is 12 lower-case hex digits (how the control plane
finds the token's record without trying every one, and how ``transporter token revoke`` names
it); ``secret`` is 256 random bits, URL-safe base64. The store keeps the SHA-256 of the whole
token text, never the text: the secret is shown once, when the token is created. A random
256-bit secret needs no slow password hash (nobody can guess it, so there is nothing to make
slow), and the comparison takes constant time.

A token has a ``name``, the identity it stands for: events it submits are ``created_by``
``token:<name>``, and audit records name it. Several tokens may carry one name (a new token
for a producer, then the old one revoked: a rotation), and each has its own role and agents.

Roles, each allowing what the one before it allows:

- ``read``: the ``GET`` endpoints (events and agents), for the agents it may target;
- ``submit``: also ``POST /events`` and ``POST /events/batch``, for the agents it may target;
- ``admin``: everything, the audit log included, for every agent.

The agents a ``read`` or ``submit`` token may target are glob patterns (``*``, ``?``, ``[…]``,
case-sensitive, as in the agent's policy); ``admin`` tokens have none: they reach every agent.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Final

import attrs

PREFIX: Final = "tpt"
IDENTITY_PREFIX: Final = "token:"
"""``created_by`` and audit ``actor`` of what a token did: ``token:<name>``."""

_ID = re.compile(r"^[0-9a-f]{12}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{43}$")
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$")
_PATTERN = re.compile(r"^[-a-z0-9.*?\[\]!]{1,253}$")
"""Agent ids are lower-case letters, digits, '-' and '.'; patterns add ``* ? [ ] !``."""


class Role(StrEnum):
    READ = "read"
    SUBMIT = "submit"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """Whether a token with this role may do what ``needed`` may do."""
        return self.rank >= needed.rank

    @property
    def and_above(self) -> tuple[Role, ...]:
        """The roles that allow what this one allows, this one first."""
        return tuple(role for role in Role if role.allows(self))


@attrs.frozen
class TokenRecord:
    """What the store keeps of a token: never its text, only the hash of it."""

    id: str
    name: str
    role: Role
    agents: tuple[str, ...]
    """Glob patterns of the agents a ``read`` or ``submit`` token may target; ``()`` for admin."""
    created_at: float
    hash: str = attrs.field(repr=False)
    """SHA-256 of the token's text, as 64 hex digits (:func:`token_hash`)."""
    revoked_at: float | None = None
    created_by: str = ""
    """Who created it (``cli:<user>`` for ``transporter token create``)."""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def identity(self) -> str:
        """What it stands for in ``created_by`` and the audit log."""
        return IDENTITY_PREFIX + self.name

    def may_target(self, agent: str) -> bool:
        """Whether the token may read and (with role submit) submit the events of ``agent``."""
        if self.role is Role.ADMIN:
            return True
        return any(fnmatchcase(agent, pattern) for pattern in self.agents)

    @property
    def reaches_every_agent(self) -> bool:
        return self.role is Role.ADMIN or "*" in self.agents

    def matches(self, token: str) -> bool:
        """Whether ``token`` is this record's token; constant time."""
        return hmac.compare_digest(token_hash(token), self.hash)

    def describe(self) -> str:
        """One line for people and the audit log: never the secret, nor its hash."""
        reach = "every agent" if self.role is Role.ADMIN else "agents " + " ".join(self.agents)
        return f"token {self.id} {self.name!r}, role {self.role.value}, {reach}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_id_of(token: str) -> str | None:
    """The id in a token's text, or ``None`` when the text is not a token of ours."""
    prefix, sep, rest = token.partition("_")
    token_id, sep2, secret = rest.partition("_")
    if prefix != PREFIX or not sep or not sep2:
        return None
    if not _ID.fullmatch(token_id) or not _SECRET.fullmatch(secret):
        return None
    return token_id


def new_token(
    *, name: str, role: Role, agents: tuple[str, ...], now: float, created_by: str = ""
) -> tuple[str, TokenRecord]:
    """A new token: its text (to show once) and the record to store."""
    check_name(name)
    agents = check_agents(role, agents)
    token_id = secrets.token_hex(6)
    text = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
    record = TokenRecord(
        id=token_id,
        name=name,
        role=role,
        agents=agents,
        created_at=now,
        hash=token_hash(text),
        created_by=created_by,
    )
    return text, record


def check_id(token_id: str) -> str:
    if not _ID.fullmatch(token_id):
        raise ValueError(f"{token_id!r} is not a token id (12 hex digits, as `token list` shows)")
    return token_id


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"token name {name!r} must be 1-64 letters, digits, '.', '_' or '-',"
            " starting and ending with a letter or digit"
        )
    return name


def check_pattern(pattern: str) -> str:
    if not _PATTERN.fullmatch(pattern):
        raise ValueError(
            f"agent pattern {pattern!r} can match no agent id: use lower-case letters, digits,"
            " '-', '.' and the wildcards '*', '?', '[...]'"
        )
    return pattern


def check_agents(role: Role, agents: tuple[str, ...]) -> tuple[str, ...]:
    """The agents a token of ``role`` may target, checked: admin tokens name none, the others
    at least one pattern."""
    if role is Role.ADMIN:
        if agents:
            raise ValueError("an admin token reaches every agent: give it no agent patterns")
        return ()
    if not agents:
        raise ValueError(
            f"a {role.value} token needs the agents it may target: glob patterns ('*' for all)"
        )
    return tuple(dict.fromkeys(check_pattern(pattern) for pattern in agents))
