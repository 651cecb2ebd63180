"""What our last apply of each object left on the API server: its resourceVersion and a digest
of its content, so that the next apply can go over that very version and be judged by its
answer alone (:mod:`transporter.kube.apply`).

One :class:`LastSeen` per API server connection (:func:`last_seen`, for a target's life),
bounded: the least recently used objects are forgotten first, and a forgotten object is read
before its next apply, as after the agent starts.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

import attrs
import trio

from transporter.kube.transport import Reply, Transport

REMEMBERED: Final = 4096
"""Objects remembered at most (each a resourceVersion and a 16-byte digest)."""
INLINE_DIGEST_BYTES: Final = 64 * 1024
"""Answers smaller than this are digested on the event loop; larger ones in a worker thread."""


def content(answer: Mapping[str, Any]) -> dict[str, Any]:
    """What an apply can change: the object without its version, field owners and status."""
    metadata = answer.get("metadata")
    kept = {k: v for k, v in answer.items() if k != "status"}
    if isinstance(metadata, dict):
        skip = ("resourceVersion", "managedFields")
        kept["metadata"] = {k: v for k, v in metadata.items() if k not in skip}
    return kept


def resource_version(answer: Mapping[str, Any]) -> str | None:
    metadata = answer.get("metadata")
    version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
    return version if isinstance(version, str) else None


def digest(answer: Mapping[str, Any]) -> bytes:
    """A digest of :func:`content`: equal for objects equal but in version, owners and status."""
    text = json.dumps(content(answer), sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


@attrs.frozen
class Stored:
    """One object as an apply left it: its resourceVersion, :func:`digest` and uid."""

    version: str
    digest: bytes
    uid: str | None = None


async def stored(reply: Reply, name: str) -> Stored | None:
    """What the answer to an apply of the object ``name`` says is stored; ``None``: the answer
    is not that object (no resourceVersion, or another name)."""
    answer = reply.body if isinstance(reply.body, dict) else {}
    metadata = answer.get("metadata")
    version = resource_version(answer)
    if version is None or not isinstance(metadata, dict) or metadata.get("name") != name:
        return None
    uid = metadata.get("uid")
    uid = uid if isinstance(uid, str) else None
    if reply.size < INLINE_DIGEST_BYTES:
        return Stored(version, digest(answer), uid)
    found = await trio.to_thread.run_sync(digest, answer, abandon_on_cancel=True)
    return Stored(version, found, uid)


class LastSeen:
    """The last answer to our apply of each object, by its path on the API server; the least
    recently used forgotten past ``size``. The next apply goes only over the version remembered
    (its precondition), so an entry made stale by another writer costs a conflict and a read,
    not a wrong verdict."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self._size = size
        self._stored: OrderedDict[str, Stored] = OrderedDict()

    def __len__(self) -> int:
        return len(self._stored)

    def get(self, path: str) -> Stored | None:
        found = self._stored.get(path)
        if found is not None:
            self._stored.move_to_end(path)
        return found

    def put(self, path: str, seen: Stored | None) -> None:
        """Remember ``seen`` for ``path`` (``None``: forget what was remembered)."""
        self._stored.pop(path, None)
        if seen is not None:
            self._stored[path] = seen
            while len(self._stored) > self._size:
                self._stored.popitem(last=False)


_MEMORIES: weakref.WeakKeyDictionary[Transport, LastSeen] = weakref.WeakKeyDictionary()


def last_seen(transport: Transport) -> LastSeen:
    """The memory of the applies sent through ``transport``, made with the first."""
    memory = _MEMORIES.get(transport)
    if memory is None:
        memory = _MEMORIES[transport] = LastSeen()
    return memory
