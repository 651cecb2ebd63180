"""The audit log's hash chain: how a record is sealed, and how a chain is checked. Pure, no I/O.

Every audit record carries three fields that the store fills in when it appends the record:

- ``seq``: 1 for the first record, then each record's ``seq`` is one more than the one before
  (no gaps: a missing number is a missing record);
- ``prev_hash``: the ``hash`` of the record before it, or :data:`GENESIS` (64 zeros) for the
  first record;
- ``hash``: SHA-256, as 64 lower-case hex digits, of the record's :func:`canonical` encoding.

The canonical encoding is the JSON object of every field of the record but ``hash`` itself::

    {"action": …, "actor": …, "agent_id": …, "at": …, "detail": …, "event_id": …,
     "prev_hash": …, "seq": …}

with keys sorted, no whitespace (separators ``,`` and ``:``), every non-ASCII character escaped
as ``\\uXXXX`` (so any text encodes, even a lone surrogate), ``seq`` as an integer, ``at`` as
Python's shortest round-tripping ``repr`` of the float (``1700000000.5``, ``1700000000.0``), and
the whole encoded as ASCII bytes: ``json.dumps(fields, sort_keys=True, separators=(",", ":"),
ensure_ascii=True, allow_nan=False)``. Outside Python, ``jq -acS 'del(.hash)'`` on a stored
record gives the same bytes (but for an ``at`` with nothing after the point, which jq writes
without its ``.0``).

Because ``prev_hash`` is inside what ``hash`` covers, changing, removing or reordering any record
changes the hashes every later record must carry; a verifier that recomputes them from the first
record finds the first record that does not match. Beside the records, the store keeps the
chain's head (``seq`` and ``hash`` of the last record appended), so a log cut short at its end is
found as well. The chain proves nothing about a log rewritten whole, every hash and the head
included: compare its head, which ``transporter audit verify`` prints, with one kept elsewhere.

A store never lets the chain fork: an append reads the head, seals the record after it with
:func:`seal`, and writes the record and the new head only if the head is still the one it read,
all as one atomic step (SQLite: one write transaction; Redis: a compare-and-set in a Lua script).
"""

from __future__ import annotations

import hashlib
import json
from typing import Final

import attrs

from transporter.protocol.model import AuditEntry

GENESIS: Final = "0" * 64
"""The ``prev_hash`` of the first record."""

HASHED_FIELDS: Final = (
    "action",
    "actor",
    "agent_id",
    "at",
    "detail",
    "event_id",
    "prev_hash",
    "seq",
)
"""The fields the hash covers: all of :class:`AuditEntry` but ``hash``. Named one by one, so that
a field added to the entry later changes no stored record's hash until it is added here, on
purpose (a test checks that none is forgotten)."""


@attrs.frozen
class ChainHead:
    """The last record of a chain: its ``seq`` (0 when there is none) and ``hash``."""

    seq: int = 0
    hash: str = GENESIS


def canonical(entry: AuditEntry) -> bytes:
    """The bytes that ``entry.hash`` is the SHA-256 of (see the module's docstring)."""
    return _encoded({name: getattr(entry, name) for name in HASHED_FIELDS})


def _encoded(fields: dict[str, object]) -> bytes:
    text = json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def entry_hash(entry: AuditEntry) -> str:
    """What ``entry.hash`` must be, given its other fields (its own ``hash`` is ignored)."""
    return hashlib.sha256(canonical(entry)).hexdigest()


def seal(entry: AuditEntry, head: ChainHead) -> AuditEntry:
    """``entry`` as the record that follows ``head``: with its ``seq``, ``prev_hash`` and
    ``hash`` (whatever those fields held before is replaced)."""
    fields = {name: getattr(entry, name) for name in HASHED_FIELDS}
    fields["seq"] = head.seq + 1
    fields["prev_hash"] = head.hash
    digest = hashlib.sha256(_encoded(fields)).hexdigest()
    return attrs.evolve(entry, seq=head.seq + 1, prev_hash=head.hash, hash=digest)


def head_of(entry: AuditEntry) -> ChainHead:
    return ChainHead(entry.seq, entry.hash)


@attrs.frozen
class Broken:
    """Where the chain breaks, and why."""

    seq: int
    """The place of the first record that does not match: one more than the last that does
    (whatever seq that record says it has, if it is there at all)."""
    reason: str


class ChainCheck:
    """Checks records fed oldest first, one by one; remembers the first that does not match.

    After a mismatch it stops checking (everything after the first broken link would fail too):
    :attr:`broken` names that record, :attr:`count` is how many matched before it.
    """

    def __init__(self) -> None:
        self.head = ChainHead()
        """The last record that matched."""
        self.count = 0
        self.broken: Broken | None = None
        self._before_head = ChainHead()

    def feed(self, entry: AuditEntry) -> bool:
        """Check the next record; ``False`` once the chain is broken (here or before)."""
        if self.broken is not None:
            return False
        problem = _problem(entry, self.head)
        if problem is not None:
            self.broken = Broken(self.head.seq + 1, problem)
            return False
        self._before_head = self.head
        self.head = head_of(entry)
        self.count += 1
        return True

    def end(self, before: ChainHead, after: ChainHead) -> None:
        """No more records. ``before`` and ``after`` are the head the store keeps beside its
        records, read before the first record was fed and after the last: the log must reach
        the first, and go no further than the second (records may be appended meanwhile)."""
        if self.broken is not None:
            return
        walked = self.head
        if walked.seq < before.seq:
            self.broken = Broken(
                walked.seq + 1,
                f"missing: the log ends at seq {walked.seq} but the store's head is seq"
                f" {before.seq}",
            )
            return
        if walked.seq > after.seq:
            self.broken = Broken(
                after.seq + 1,
                f"the store's head is seq {after.seq}, but the log goes on to seq {walked.seq}",
            )
            return
        for stored in (before, after):
            if stored.seq == walked.seq and stored.hash != walked.hash:
                # The last record, or the head, was changed: the last record does not match.
                self.broken = Broken(
                    walked.seq,
                    f"the store's head says its hash is {stored.hash}, the record has"
                    f" {walked.hash}",
                )
                self.head = self._before_head
                self.count -= 1
                return


def _problem(entry: AuditEntry, before: ChainHead) -> str | None:
    expected_seq = before.seq + 1
    if entry.seq != expected_seq:
        where = "the first record" if before.seq == 0 else f"the record after seq {before.seq}"
        if entry.seq < expected_seq:
            return f"{where} says seq {entry.seq}: out of order"
        missing = (
            f"seq {expected_seq} is"
            if entry.seq == expected_seq + 1
            else f"seqs {expected_seq}-{entry.seq - 1} are"
        )
        return f"{where} says seq {entry.seq} ({missing} missing)"
    if not entry.hash:
        return "it has no hash (written before the audit log was chained, or the hash removed)"
    if entry.prev_hash != before.hash:
        what = "the genesis value" if before.seq == 0 else f"the hash of seq {before.seq}"
        return f"prev_hash {entry.prev_hash or '(none)'} is not {what} ({before.hash})"
    try:
        expected = entry_hash(entry)
    except ValueError as exc:  # a NaN or infinite `at`: no JSON encodes it
        return f"its fields cannot be encoded: {exc}"
    if entry.hash != expected:
        return f"hash {entry.hash} does not match its content (which hashes to {expected})"
    return None
