"""Appending to the audit chain on Redis: a compare-and-set on the chain's head.

The client seals the entry (seq, prev_hash, hash) after the head it last saw, and the script (of
``audit``, ``submit``, ``update_event`` ...) appends it and moves the head only if that is still
the head; else it writes nothing and answers with the current head, and the client seals again.
Two appends can never both follow one head, whichever replica sends them: the chain cannot
fork. Within one process appends take turns (a lock), so they only ever retry for another
replica's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, cast

import coredis
import trio
from coredis.commands.script import Script

from transporter.protocol.model import AuditEntry
from transporter.security import audit_chain
from transporter.security.audit_chain import ChainHead
from transporter.store.base import StoreError
from transporter.store.json_rows import dump
from transporter.store.redis.keys import Keys
from transporter.store.redis.scripts import HEAD_MOVED


class AuditChain:
    """This process's side of the chain: the head as last seen, and the turn to append."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys.chain()
        """What the scripts take after their own keys, to append."""
        self.lock = trio.Lock()
        """Held while appending: this process's appends take turns."""
        self.head = ChainHead()
        """The chain's head as last seen; a script that finds another corrects it."""

    async def append(
        self, script: Script[str], keys: list[str], args: list[str], entry: AuditEntry
    ) -> tuple[int, list[Any], AuditEntry]:
        """Run ``script`` with ``entry`` sealed after the head, again while another replica's
        append moved the head; the script's status and reply, and the entry as sealed."""
        async with self.lock:
            while True:
                sealed = audit_chain.seal(entry, self.head)
                reply: Any = await script(
                    keys=[*keys, *self.keys], args=[*args, *arguments(sealed)]
                )
                status = self.follow(reply, sealed)
                if status != HEAD_MOVED:
                    return status, cast(list[Any], reply), sealed

    async def append_all(
        self, script: Script[str], keys: list[str], args: list[str], entries: Sequence[AuditEntry]
    ) -> tuple[int, list[Any]]:
        """Like :meth:`append`, for a script that appends ``entries`` (at least one) in order,
        after one check of the head (:func:`arguments_all`)."""
        async with self.lock:
            while True:
                sealed = [seal for seal in self.seal_all(entries) if seal is not None]
                reply: Any = await script(
                    keys=[*keys, *self.keys], args=[*args, *arguments_all(sealed)]
                )
                status = self.follow(reply, sealed[-1])
                if status != HEAD_MOVED:
                    return status, cast(list[Any], reply)

    def seal_all(self, entries: Sequence[AuditEntry | None]) -> list[AuditEntry | None]:
        """``entries`` sealed each after the one before, from the head (held under
        :attr:`lock`): as a pipeline of scripts will append them, if the head stays."""
        head = self.head
        sealed: list[AuditEntry | None] = []
        for entry in entries:
            if entry is None:
                sealed.append(None)
                continue
            seal = audit_chain.seal(entry, head)
            sealed.append(seal)
            head = audit_chain.head_of(seal)
        return sealed

    def call(
        self,
        script: Script[str],
        keys: list[str],
        args: list[str],
        sealed: AuditEntry | None,
        client: coredis.client.Client[str] | None = None,
    ) -> Awaitable[Any]:
        """``script`` with its own keys and arguments and those that append ``sealed`` (none
        for ``None``), on ``client`` (a pipeline) or the script's own."""
        if sealed is not None:
            keys, args = [*keys, *self.keys], [*args, *arguments(sealed)]
        return script(keys=keys, args=args, client=client)

    def follow(self, reply: Any, sealed: AuditEntry | None) -> int:
        """A script's status; follows the chain's head: to ``sealed`` when the script appended
        it (status 1), to the head the script found when that had moved."""
        answer = cast(list[Any], reply)
        status = int(answer[0])
        if status == HEAD_MOVED:
            self.head = chain_head(answer[1], answer[2])
        elif status == 1 and sealed is not None:
            self.head = audit_chain.head_of(sealed)
        return status


def arguments(sealed: AuditEntry) -> list[str]:
    """The head ``sealed`` follows, and ``sealed`` itself: what the scripts' audit_moved and
    append_audit take."""
    return [str(sealed.seq - 1), sealed.prev_hash, str(sealed.seq), sealed.hash, dump(sealed)]


def arguments_all(sealed: Sequence[AuditEntry]) -> list[str]:
    """The head the first of ``sealed`` follows, then seq, hash and JSON of each: what the
    scripts' audit_moved and append_audits take."""
    first = sealed[0]
    args = [str(first.seq - 1), first.prev_hash]
    for entry in sealed:
        args += [str(entry.seq), entry.hash, dump(entry)]
    return args


def chain_head(seq: object, hash_: object) -> ChainHead:
    if not (isinstance(seq, str) and seq.isascii() and seq.isdecimal()):
        raise StoreError(f"the audit chain's head seq in Redis is {seq!r}, not a number")
    return ChainHead(int(seq), str(hash_))
