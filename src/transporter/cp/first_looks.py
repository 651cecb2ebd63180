"""Which agents have anything to receive, asked of the store together: the first look of
each new connection (:mod:`.delivery`), and the safety looks of idle ones."""

from __future__ import annotations

import attrs
import trio

from transporter.store.base import MAX_LIMIT, Store, StoreError, StoreUnavailable


@attrs.define(eq=False)
class _Question:
    """The agents whose look waits for one read, and its answer."""

    agents: set[str] = attrs.field(factory=set)
    done: trio.Event = attrs.field(factory=trio.Event)
    found: set[str] | None = None
    """Those with something unfinished; ``None`` if not read (each then looks itself)."""
    error: str | None = None


class Looks:
    """Which agents have anything to receive, asked of the store together.

    Each connection used to read its outbox as soon as it was welcomed: 10,000 agents coming
    back after a restart queued 10,000 reads on the store at once (SQLite has one thread; each
    read waited seconds for it), almost all of them for empty outboxes. As in group commit,
    the agents that want their first look while a question is under way are asked about in the
    next, all in one read (:meth:`Store.agents_with_unfinished`, in chunks of
    :data:`MAX_LIMIT`); at most one question is under way and one forming, holding one id per
    connection waiting."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._forming: _Question | None = None
        self._turn = trio.Lock()

    async def anything_for(self, agent_id: str) -> bool:
        """Whether ``agent_id``'s outbox may hold something: ``False`` only when the store
        said it held nothing unfinished, after this call began."""
        question = self._forming
        if question is None:
            question = self._forming = _Question()
            question.agents.add(agent_id)
            await self._ask(question)
        else:
            question.agents.add(agent_id)
            await question.done.wait()
        if question.error is not None:
            raise StoreUnavailable(question.error)
        return question.found is None or agent_id in question.found

    async def _ask(self, question: _Question) -> None:
        """Ask once the question before this one is answered (the others join meanwhile)."""
        try:
            await trio.lowlevel.checkpoint()  # the others starting now join
            async with self._turn:
                self._close(question)
                question.found = await unfinished_among(self.store, question.agents)
        except StoreError as exc:
            question.error = str(exc)
        finally:  # also when the asker's connection ended meanwhile: the others look themselves
            self._close(question)
            question.done.set()

    def _close(self, question: _Question) -> None:
        if self._forming is question:
            self._forming = None


async def unfinished_among(store: Store, agents: set[str]) -> set[str]:
    """Those of ``agents`` with anything unfinished: one read per :data:`MAX_LIMIT`."""
    found: set[str] = set()
    ordered = sorted(agents)
    for start in range(0, len(ordered), MAX_LIMIT):
        found |= await store.agents_with_unfinished(ordered[start : start + MAX_LIMIT])
    return found
