"""The Redis store's :class:`~transporter.store.base.ReplicaFeed`: hints on one pub/sub channel.

Each write that another replica may care about publishes a hint (:mod:`.hints`) from the
script that writes it, after its writes and atomic with them: so a replica that hears it and
reads finds the write. A batch of scripts (a pipeline, not a transaction) publishes one message
for all instead: a batch of submissions in the same pipeline, after its scripts (an event
refused as a repeat is told too: a ``queued`` hint only makes a replica look), a batch of
progress reports once the replies say which were written (a ``progressed`` hint of an event's
end frees a slot of its agent's delivery window). Pub/sub
keeps nothing for a listener that is away: after each (re)subscribe the sink is told to
``resync`` (look at everything again), and the replicas' periodic looks catch anything else.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import trio
from coredis.exceptions import AuthorizationError
from coredis.retry import NoRetryPolicy

from transporter.store.base import MAX_LIMIT, ChangeSink, StoreError
from transporter.store.redis import hints
from transporter.store.redis.connection import RedisConnection

log = logging.getLogger(__name__)

REOPEN_FIRST = 0.1
REOPEN_MOST = 5.0
"""Seconds before listening again after the subscription failed: doubled each time, from the
first to the most."""
KEEPALIVE = 5.0
"""Seconds of silence on the subscription after which coredis checks it with a PING (below the
connection's read timeout, so a quiet channel is not taken for a dead one)."""
REFUSED_LOGGED = 10
"""Messages not understood that are logged (each in one line) per :data:`REFUSED_WINDOW`."""
REFUSED_WINDOW = 60.0
DENIED = "the Redis user may not use channel"


class Hinting(RedisConnection):
    """What the parts of the store that write share to tell the other replicas."""

    @functools.cached_property
    def _origin(self) -> str:
        """This store object's mark on its messages: it ignores its own."""
        return hints.new_origin()

    def _hint(self, line: str) -> str:
        """One hint as a message, for a script to publish."""
        return next(hints.messages(self._origin, [line]))

    def _hint_batch(self, pipe: Any, lines: Sequence[str]) -> None:
        """Queue on ``pipe`` (after the batch's writes) the messages that tell ``lines``."""
        for message in hints.messages(self._origin, lines):
            self._scripts.notify(keys=[self._keys.notify], args=[message], client=pipe)

    async def _hint_now(self, lines: Sequence[str]) -> None:
        """Publish the messages that tell ``lines`` (of writes done), in one round trip."""
        if not lines:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            self._hint_batch(pipe, lines)


class RedisFeed(Hinting):
    async def follow_changes(
        self, sink: ChangeSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on the channel until cancelled; started once subscribed, or once the first
        try failed (a control plane must start while Redis is away; it resyncs when back)."""
        started = False
        delay = REOPEN_FIRST
        said: str | None = None  # the kind of failure logged in this outage (None: hearing)
        refused = _Budget(REFUSED_LOGGED, REFUSED_WINDOW)

        def subscribed() -> None:
            nonlocal started, said, delay
            sink.resync()  # hints may have been missed while not subscribed
            if not started:
                task_status.started()
                started = True
            if said is not None:
                log.info("store: hearing the other replicas again (resync)")
            said, delay = None, REOPEN_FIRST

        while True:
            failed: BaseException | None = None
            try:
                await self._listen(sink, subscribed, refused)
            except* Exception as group:  # any failure of the listener: listen again
                failed = group
            # (with except*: coredis's task group may add its own failure to a cancel, which
            # is no outage: the sleep below raises the cancel)
            if failed is not None and trio.current_effective_deadline() != -math.inf:
                reason = await self._why(failed)
                kind = "denied" if reason.startswith(DENIED) else "failed"
                if kind != said:  # once an outage, and again if a grant is found missing
                    log.warning(
                        "store: not hearing the other replicas (%s); their changes are seen by"
                        " the periodic looks until listening again",
                        reason,
                    )
                said = kind
            if not started:
                task_status.started()
                started = True
            await trio.sleep(delay)
            delay = min(delay * 2, REOPEN_MOST)

    async def _listen(
        self, sink: ChangeSink, subscribed: Callable[[], None], refused: _Budget
    ) -> None:
        """Subscribe and hand ``sink`` what comes; ``subscribed()`` at each (re)subscribe.
        Outside the store's guard: it has a call timeout, this runs for ever. Read with
        ``get_message`` in a loop: coredis's ``async for`` ends quietly after a reconnect."""
        if self._closed:
            raise RuntimeError("the store is closed")
        pubsub = self._client.pubsub(
            channels=[self._keys.notify], retry_policy=NoRetryPolicy(), max_idle_seconds=KEEPALIVE
        )
        async with pubsub:
            while True:
                message = await pubsub.get_message()
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    subscribed()
                elif message["type"] == "message":
                    self._heard(message["data"], sink, refused)

    async def _why(self, failed: BaseException) -> str:
        """Why listening failed, in one line. A subscription the Redis user may not make shows
        in coredis as often as a timeout as a refusal: a refusal, or a timeout, is checked with
        a ``PUBLISH`` of an empty message (this store's origin and no hint, which replicas
        ignore), which is refused alike."""
        reason = _reason(failed)
        if not reason.startswith(("TimeoutError", "AuthorizationError")):
            return reason
        try:
            with trio.move_on_after(KEEPALIVE):
                await self._client.publish(self._keys.notify, self._origin)
        except AuthorizationError:
            channel = self._keys.notify
            return f"{DENIED} {channel} (grant &{channel})"
        except Exception:  # noqa: S110 - the probe's own failure says nothing more
            pass
        return reason

    def _heard(self, data: object, sink: ChangeSink, refused: _Budget) -> None:
        try:
            reasons = hints.deliver(data, self._origin, sink)
        except hints.BadHint as exc:
            reasons = [str(exc)]
        for reason in reasons:
            if refused.spend():
                log.warning("store: ignored on the replicas' channel: %s", reason)

    async def claim_session(self, agent_id: str) -> int:
        async with self._guard():
            seq: Any = await self._scripts.claim_session(
                keys=[self._keys.session(agent_id), self._keys.notify],
                args=[self._origin, agent_id],
            )
        return int(seq)

    async def live_session(self, agent_id: str) -> int:
        async with self._guard():
            seq = await self._client.get(self._keys.session(agent_id))
        return _session(seq)

    async def live_sessions(self, agent_ids: Sequence[str]) -> list[int]:
        """``MGET`` of the session keys, :data:`~transporter.store.base.MAX_LIMIT` a command,
        in one pipeline."""
        keys = [self._keys.session(agent_id) for agent_id in agent_ids]
        if not keys:
            return []
        async with self._guard():
            async with self._client.pipeline(transaction=False) as pipe:
                requests = [
                    pipe.mget(keys[start : start + MAX_LIMIT])
                    for start in range(0, len(keys), MAX_LIMIT)
                ]
            found = [value for request in requests for value in await request]
        return [_session(seq) for seq in found]


class _Budget:
    """At most ``count`` spends per ``window`` seconds (a flood of garbage is not a flood of
    log lines)."""

    def __init__(self, count: int, window: float) -> None:
        self._count = count
        self._window = window
        self._spent = 0
        self._since = -math.inf

    def spend(self) -> bool:
        now = trio.current_time()
        if now - self._since >= self._window:
            self._since, self._spent = now, 0
        self._spent += 1
        return self._spent <= self._count


def _session(value: object) -> int:
    """A session key's value (``INCR``'s), 0 when there is none."""
    if value is None:
        return 0
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        return int(value)
    raise StoreError(f"an agent's session number in Redis is {str(value)[:40]!r}, not a number")


def _reason(exc: BaseException) -> str:
    """The first error of ``exc`` (a group, from coredis's task group), in one line."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
