"""Checking the audit log's hash chain in any store: :func:`verify_audit`.

The chain itself (what a record's hash covers, the genesis value) is defined in
:mod:`transporter.security.audit_chain`; the stores seal each record as they append it.
"""

from __future__ import annotations

import attrs

from transporter.protocol.model import AuditEntry
from transporter.security.audit_chain import Broken, ChainCheck, ChainHead
from transporter.store.base import MAX_LIMIT, AuditStore, StoreError, StoreUnavailable


@attrs.frozen
class VerifyResult:
    count: int
    """Records that match: all of them when the chain is intact, else those before the first
    that does not."""
    head: ChainHead
    """The last record that matched (``ChainHead()`` when none did)."""
    broken: Broken | None = None
    """The first record that does not match, and why; ``None`` when the chain is intact."""

    @property
    def intact(self) -> bool:
        return self.broken is None

    def describe(self) -> str:
        """What ``transporter audit verify`` prints."""
        last = (
            f"the last is seq {self.head.seq}, hash {self.head.hash}"
            if self.count
            else "there are none"
        )
        if self.broken is None:
            return f"audit log intact: {self.count} records; {last}"
        return (
            f"audit log broken at seq {self.broken.seq}: {self.broken.reason}\n"
            f"{self.count} records before it match; {last}"
        )


async def verify_audit(store: AuditStore, *, page: int = MAX_LIMIT) -> VerifyResult:
    """Walk the whole audit log oldest first, ``page`` records at a time, recomputing the chain.

    Names the first record whose ``seq``, ``prev_hash`` or ``hash`` does not match, or that
    cannot be read. The log must also reach the head the store keeps beside it (a log cut short
    at its end is found too). Safe on a store in use: records appended during the walk are
    checked as well, as far as the walk gets. :class:`StoreUnavailable` passes through.
    """
    before = await store.audit_head()
    check = ChainCheck()
    after = 0
    while True:
        unreadable: str | None = None
        try:
            entries = await store.audit_after(after, limit=page)
        except StoreUnavailable:
            raise
        except StoreError:  # a record of the page is not an audit entry any more: which?
            entries, unreadable = await _readable_part(store, after, page)
        for entry in entries:
            if not check.feed(entry):
                return VerifyResult(check.count, check.head, check.broken)
        if unreadable is not None:
            broken = Broken(check.head.seq + 1, f"it cannot be read: {unreadable}")
            return VerifyResult(check.count, check.head, broken)
        if len(entries) < page:
            break
        after = entries[-1].seq  # every record so far matched: its seq is its place
    check.end(before, await store.audit_head())
    return VerifyResult(check.count, check.head, check.broken)


async def _readable_part(
    store: AuditStore, after: int, page: int
) -> tuple[list[AuditEntry], str | None]:
    """The page after ``after`` read one record at a time: the records up to the first that
    cannot be read, and what is wrong with that one."""
    entries: list[AuditEntry] = []
    while len(entries) < page:
        try:
            one = await store.audit_after(after, limit=1)
        except StoreUnavailable:
            raise
        except StoreError as exc:
            return entries, str(exc)
        if not one:
            break
        entries += one
        after = one[0].seq
    return entries, None
