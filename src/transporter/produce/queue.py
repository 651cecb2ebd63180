"""``produce k8s --mode queue``: the event appended to the control planes' queue (a Redis
Stream) instead of posted; followed (``--wait``) through the HTTP API as in HTTP mode.

The producer chooses the event's id, so it prints it before appending (on stderr: whatever
happens next, the user knows what to look for) and an entry a control plane takes twice is the
same event. An append whose outcome is unknown (the connection dropped after the XADD, the
replicas did not confirm it) is made again with the same id, for a while: the control planes
store the event once; if it never succeeds, the user is told it may be queued, and as which id.
The entry carries the producer's token, which the control plane checks as a bearer token
(:mod:`transporter.protocol.queue_entry`). Until a control plane has taken the
entry, the event is not there (404): following waits for it (looking again less and less often),
and when the entry was refused instead, its dead letter is the answer: the same error
``POST /events`` would have given, looked up by the entry's id.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio

from transporter import output
from transporter.config.produce import ProduceConfig, QueryConfig
from transporter.produce import render, show
from transporter.produce.client import ApiError, Client, Submitted
from transporter.protocol.model import EventRecord
from transporter.protocol.queue_entry import BODY, FORMAT_VERSION, MAX_ENTRY_BYTES, TOKEN, VERSION

type Append = Callable[[Mapping[str, str]], Awaitable[str]]
"""Appends one entry to the queue; its stream id."""
type OpenQueue = Callable[[str], AbstractAsyncContextManager[Append]]
"""Opens the queue on the Redis at a URL (the command line gives it: the producer never
touches the store itself)."""

LOOK_AGAIN = (0.2, 5.0)
"""Seconds between looks for an event whose entry no control plane has taken yet: the first,
doubling to the last (each look is two requests to the API)."""
APPEND_FOR = 30.0
"""Seconds an append whose outcome is unknown is made again for (``--timeout`` if shorter)."""
APPEND_AGAIN = (0.2, 5.0)
"""Seconds between two appends of the same entry: the first, doubling to the last."""


class QueueError(Exception):
    """The queue could not take the entry (Redis unreachable, refused, the queue full);
    ``unknown``: or it may have (the append was sent, its confirmation failed)."""

    def __init__(self, message: str, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.unknown = unknown


class QueueClient(Client):
    """The API client of HTTP mode, but a submission goes to the queue."""

    def __init__(self, settings: ProduceConfig, open_queue: OpenQueue, redis_url: str) -> None:
        super().__init__(settings.cp_url, token=settings.token, ca_file=settings.ca_cert)
        self._open = open_queue
        self._url = redis_url
        self._token = settings.token or ""
        self._append_for = min(APPEND_FOR, settings.timeout)
        self.entry_id: str | None = None
        """The entry appended (its dead letter, if refused, names it)."""

    async def submit(self, event: dict[str, Any]) -> Submitted:
        chosen = await self._append(event)
        return Submitted(chosen, True, True)

    async def submit_rollout(self, body: dict[str, Any]) -> dict[str, Any]:
        """A rollout's body appended likewise: ``{"rollout_id", "status": "queued"}`` (which
        agents it matches is known once a control plane took it)."""
        return {"rollout_id": await self._append(body), "status": "queued"}

    async def _append(self, body: dict[str, Any]) -> str:
        """Append ``body`` with its id (chosen here when it names none); that id."""
        body = {**body, "id": body.get("id") or new_event_id()}
        text = json.dumps(body)
        if len(text.encode()) > MAX_ENTRY_BYTES:
            raise ApiError(
                413, "event_too_large", f"the event is more than {MAX_ENTRY_BYTES} bytes", "body"
            )
        fields = {VERSION: FORMAT_VERSION, BODY: text, TOKEN: self._token}
        chosen = str(body["id"])
        print(f"transporter produce: appending {chosen} to the queue", file=sys.stderr)
        delay, deadline = APPEND_AGAIN[0], trio.current_time() + self._append_for
        async with self._open(self._url) as append:
            while True:
                try:
                    self.entry_id = await append(fields)
                    return chosen
                except QueueError as exc:
                    if not exc.unknown:
                        raise  # nothing appended
                    if trio.current_time() + delay > deadline:
                        raise QueueError(
                            f"{exc}; the outcome is unknown: it may be queued as {chosen}"
                            f" (see: transporter produce get event {chosen})",
                            unknown=True,
                        ) from None
                await trio.sleep(delay)  # then the same entry again: stored once
                delay = min(delay * 2, APPEND_AGAIN[1])

    async def rollout(self, rollout_id: str) -> dict[str, Any]:
        """The rollout, once a control plane took its entry (followed under ``--timeout``);
        its entry's dead letter raised as the :class:`ApiError` it holds."""
        delay = LOOK_AGAIN[0]
        while True:
            try:
                return await super().rollout(rollout_id)
            except ApiError as exc:
                if exc.status != 404 or self.entry_id is None:
                    raise
            refused = await self._refusal()
            if refused is not None:
                raise refused
            await trio.sleep(delay)
            delay = min(delay * 2, LOOK_AGAIN[1])

    async def event(
        self, event_id: str, *, wait: float = 0.0, since: int = 0, manifests: bool = False
    ) -> EventRecord:
        """The event, once a control plane took its entry; its entry's dead letter raised as
        the :class:`ApiError` it holds. With ``wait`` (following it), look again until then
        (bound it with a cancel scope, as ``--timeout`` does); without, a 404 that says so."""
        delay = LOOK_AGAIN[0]
        while True:
            try:
                return await super().event(event_id, wait=wait, since=since, manifests=manifests)
            except ApiError as exc:
                if exc.status != 404 or self.entry_id is None:
                    raise
            refused = await self._refusal()
            if refused is not None:
                raise refused
            if not wait:
                raise ApiError(
                    404,
                    "not_found",
                    f"no control plane has taken the queue's entry {self.entry_id} (event"
                    f" {event_id!r}) yet",
                )
            await trio.sleep(delay)
            delay = min(delay * 2, LOOK_AGAIN[1])

    async def _refusal(self) -> ApiError | None:
        """The entry's dead letter as the API's error, if it has one."""
        query = urllib.parse.urlencode({"entry_id": self.entry_id})
        page = await self._object("GET", f"/queue/dead-letters?{query}")
        for letter in page.get("items") or []:
            if isinstance(letter, dict) and letter.get("entry_id") == self.entry_id:
                return ApiError(
                    int(letter.get("status") or 400),
                    str(letter.get("error") or "refused"),
                    str(letter.get("message") or ""),
                    letter.get("field"),
                )
        return None


async def dead_letters(settings: QueryConfig, client: Client) -> int:
    """``produce get dead-letters``: the queue's refused entries the token may see, newest
    first (an admin's: all; another token's: those that carried it)."""
    query = urllib.parse.urlencode({"limit": settings.limit})
    page = await client._object("GET", f"/queue/dead-letters?{query}")
    items = [item for item in page.get("items") or [] if isinstance(item, dict)]
    wide, now = settings.output == "wide", time.time()
    headers: tuple[str, ...] = ("ID", "AGE", "STATUS", "ERROR", "EVENT", "TOKEN")
    if wide:
        headers += ("AT", "ENTRY")
    rows = []
    for item in items:
        at = float(item.get("at") or 0)
        row = tuple(
            str(item.get(name) or "-") for name in ("id", "at", "status", "error", "event_id")
        )
        row = (row[0], render.age(at, now), *row[2:], str(item.get("token_id") or "-"))
        if wide:
            row += (output.rfc3339(at), str(item.get("entry_id") or "-"))
        rows.append((*row, str(item.get("message") or "")))
    data = [{**item, "at": output.rfc3339(float(item.get("at") or 0))} for item in items]
    ids = [str(item.get("id")) for item in items]
    show.show(settings, "dead-letter", data, ids, ((*headers, "MESSAGE"), rows))
    return show.EXIT_OK


def new_event_id() -> str:
    """A random (version 4) UUID, as the control plane names an event that came without an id.
    Made here rather than by :mod:`uuid`, whose C part an agent or producer of the single file
    would otherwise unpack at start (the command line imports this module)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
