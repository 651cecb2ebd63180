"""What this agent has run, kept in its own cluster, so that no event runs here twice.

An event's signature proves the control plane accepted it, not that it is new: whoever can
write the control plane's store could set a finished event back to ``queued``, and an agent
restarted since would run it again (a ConfigMap rolled back to last week's image). So before
an event's final report goes out, the agent writes its outcome here; an event found here is
never run again, and its delivery is answered with the recorded outcome, marked as a replay
(the control plane audits it).

The journal is ConfigMaps in the agent's state namespace, labelled with the agent's id and
named by the hour the events in them expire (an expired event is refused anyway, by its signed
TTL): ``transporter-ran-AGENT-YYYYMMDDHH``, then ``…-2``, ``…-3`` as each fills. Entries are
added with merge patches (no read-modify-write, so concurrent finishes cannot lose one another)
and whole ConfigMaps are deleted once all their events have expired.

Each ConfigMap is kept small (:data:`SHARD_BYTES`, about 80 events), not filled to the API
server's 1 MiB: the server rewrites the whole object at every patch and answers with all of it,
so a patch's cost grows with it (on the test bed 2.9 ms at 8 KiB, 13 ms at 128 KiB, 40 ms near
1 MiB), and the journal's write is on the way of every final report.

One gap is left, and said: an event whose final outcome was not written (the agent was killed
while applying it) is run again when delivered again, as at-least-once delivery needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import attrs

from transporter.kube import KubeError, KubeRejected
from transporter.protocol.messages import Status
from transporter.protocol.model import Event

log = logging.getLogger(__name__)

LABEL: Final = "transporter.dev/ran-by"
"""The label naming whose journal a ConfigMap is (the agent's id)."""
PREFIX: Final = "transporter-ran-"
CLOCK_SKEW: Final = 300.0
"""Seconds an event may arrive past its TTL and still run (as the session allows)."""
SHARD_BYTES: Final = 8 * 1024
"""The entries one ConfigMap takes (keys and values); the next entry goes to the next one."""
MAX_SPILL: Final = 8000
"""ConfigMaps one hour may spill into (about 640,000 events an hour, as many as 50 ConfigMaps
of 1 MiB held before they were kept small)."""
PRUNE_EVERY: Final = 600.0


@attrs.frozen
class Ran:
    """An event this agent ran to the end."""

    state: str
    finished_at: float
    expires_at: float
    message: str = ""

    def encode(self) -> str:
        return f"{self.state} {self.finished_at:.3f} {self.expires_at:.0f} {self.message}"

    @classmethod
    def decode(cls, text: str) -> Ran | None:
        parts = text.split(" ", 3)
        try:
            return cls(
                parts[0], float(parts[1]), float(parts[2]), parts[3] if len(parts) > 3 else ""
            )
        except (IndexError, ValueError):
            return None


class Store(Protocol):
    """Where the journal lives: the cluster (:class:`~transporter.kube.KubeTarget`)."""

    async def ensure_namespace(self, namespace: str) -> None: ...
    async def list_config_maps(self, namespace: str, selector: str) -> list[Mapping[str, Any]]: ...
    async def add_to_config_map(
        self, namespace: str, name: str, data: Mapping[str, str], labels: Mapping[str, str]
    ) -> None: ...
    async def delete_config_map(self, namespace: str, name: str) -> None: ...


def expires_at(event: Event) -> float:
    """When an event stops being runnable here (its signed creation time, TTL and skew)."""
    return event.created_at + event.ttl + CLOCK_SKEW


class Journal:
    """This agent's record of what it ran. :meth:`load` it before events are taken."""

    def __init__(
        self,
        store: Store,
        namespace: str,
        agent_id: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.agent_id = agent_id
        self.clock = clock
        self.entries: dict[str, Ran] = {}
        self._maps: dict[str, float] = {}
        """Our ConfigMaps, with the latest expiry they may hold."""
        self._sizes: dict[str, int] = {}
        """The bytes of entries in each of our ConfigMaps, as written or read."""
        self._spill: dict[str, int] = {}
        """The ConfigMap each hour writes to now (its spill number)."""
        self._full: set[str] = set()
        self._pruned_at = 0.0

    @property
    def labels(self) -> dict[str, str]:
        return {LABEL: self.agent_id}

    async def load(self) -> None:
        """Read the journal from the cluster (making its namespace if need be)."""
        await self.store.ensure_namespace(self.namespace)
        selector = f"{LABEL}={self.agent_id}"
        now = self.clock()
        for config_map in await self.store.list_config_maps(self.namespace, selector):
            metadata = config_map.get("metadata")
            name = metadata.get("name") if isinstance(metadata, dict) else None
            data = config_map.get("data")
            if not isinstance(name, str):
                continue
            latest, size = 0.0, 0
            for event_id, text in (data if isinstance(data, dict) else {}).items():
                ran = Ran.decode(text) if isinstance(text, str) else None
                if ran is not None:
                    latest = max(latest, ran.expires_at)
                    size += len(event_id) + len(text)
                    if ran.expires_at > now:
                        self.entries[event_id] = ran
            self._maps[name] = latest
            self._sizes[name] = size
        log.info(
            "journal: %d events this agent ran and that may still be delivered (namespace %s)",
            len(self.entries),
            self.namespace,
        )

    def get(self, event_id: str) -> Ran | None:
        return self.entries.get(event_id)

    async def record(self, event: Event, final: Status) -> None:
        """Write that ``event`` ran, ending as ``final``. Raises :class:`KubeError` when the
        cluster cannot take it (the caller reports the event all the same)."""
        ran = Ran(final.state.value, final.at, expires_at(event), final.message[:200])
        hour = time.strftime("%Y%m%d%H", time.gmtime(ran.expires_at))
        text = ran.encode()
        size = len(event.id) + len(text)
        for spill in range(self._spill.get(hour, 1), MAX_SPILL + 1):
            name = f"{PREFIX}{self.agent_id}-{hour}" + (f"-{spill}" if spill > 1 else "")
            used = self._sizes.get(name, 0)
            if name in self._full or (used and used + size > SHARD_BYTES):
                continue
            self._spill[hour] = spill
            self._sizes[name] = used + size  # taken before the write: events finish at once
            try:
                await self.store.add_to_config_map(
                    self.namespace, name, {event.id: text}, self.labels
                )
            except BaseException as exc:
                self._sizes[name] -= size
                if not isinstance(exc, KubeRejected) or exc.code not in (413, 422):
                    raise
                self._full.add(name)  # a ConfigMap holds 1 MiB: go on to the next
                continue
            self.entries[event.id] = ran
            self._maps[name] = max(self._maps.get(name, 0.0), ran.expires_at)
            await self._prune()
            return
        raise KubeRejected(f"the journal's hour {hour} is full", code=422)

    async def _prune(self) -> None:
        """Drop what has expired: entries here, whole ConfigMaps there."""
        now = self.clock()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        self.entries = {k: v for k, v in self.entries.items() if v.expires_at > now}
        for name, latest in list(self._maps.items()):
            if latest <= now:
                try:
                    await self.store.delete_config_map(self.namespace, name)
                except KubeError as exc:
                    log.warning("journal: could not delete %s: %s", name, exc)
                    continue
                del self._maps[name]
                self._sizes.pop(name, None)
                self._full.discard(name)
        base = f"{PREFIX}{self.agent_id}-"
        hours = {name.removeprefix(base).split("-", 1)[0] for name in self._maps}
        self._spill = {h: n for h, n in self._spill.items() if h in hours}
