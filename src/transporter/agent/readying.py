"""``wait_ready``: the verifying phase of an apply waits until every applied object is ready.

Each object applied without failure is read (GET, a few at once) and judged by kstatus's rules
(:func:`transporter.kube.waiting.assess`), again and again with a growing pause (0.5 s, then
half as long again each time, at most 5 s), until every one is current, or one has failed, or
``ready_timeout`` has passed. An object once current is not read again. Progress is reported
(in_progress, verifying, each result's ``ready`` and kstatus's words) when something changed,
not at every read. The event fails naming the first object that failed (or, at the timeout,
the first that was not ready yet) in its own words: kstatus's, and its condition that says why.

Objects kstatus holds ready once applied (a ConfigMap) are current at the first read. A delete
waits for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

import attrs
import trio

from transporter.kube import Applied, KubeTarget, PlannedObject
from transporter.kube.waiting import Verdict, assess
from transporter.protocol.model import Readiness, ResourceResult, ResourceStatus

DEFAULT_TIMEOUT: Final = 300
"""Seconds waited when the event gives no ``ready_timeout``."""
FIRST_DELAY: Final = 0.5
MAX_DELAY: Final = 5.0
GROWTH: Final = 1.5
AT_ONCE: Final = 4
"""Objects read at once (the transport has as many worker threads)."""

Progress = Callable[[str, list[ResourceResult]], None]
"""Reports a message and the results with their readiness so far."""


@attrs.frozen
class Waited:
    results: list[ResourceResult]
    """``done`` with each waited-for object's ``ready`` and message."""
    failure: str | None = None
    """Why the event fails: the first object not ready, in its words; ``None``: all ready."""


async def _read(
    target: KubeTarget,
    objects: Mapping[int, PlannedObject],
    headers: Mapping[str, str] | None,
) -> dict[int, Verdict]:
    limiter = trio.CapacityLimiter(AT_ONCE)
    found: dict[int, Verdict] = {}
    failures: list[Exception] = []

    async def one(index: int) -> None:
        try:
            async with limiter:
                seen = await target.current(objects[index], headers=headers)
        except Exception as exc:  # KubeUnavailable ends the wait, as itself (no group)
            failures.append(exc)
            nursery.cancel_scope.cancel()
            return
        if seen.refused is not None:
            found[index] = Verdict(Readiness.UNKNOWN, f"cannot read it: {seen.refused}")
        else:
            found[index] = assess(seen.body)

    async with trio.open_nursery() as nursery:
        for index in objects:
            nursery.start_soon(one, index)
    if failures:
        raise failures[0]
    return found


def _with(
    done: Sequence[ResourceResult], verdicts: Mapping[int, Verdict], *, final: bool
) -> list[ResourceResult]:
    results = list(done)
    for index, verdict in verdicts.items():
        words = (
            verdict.message if verdict.ready is Readiness.CURRENT or not final else verdict.words
        )
        results[index] = attrs.evolve(results[index], ready=verdict.ready, message=words)
    return results


def _named(result: ResourceResult) -> str:
    return f"{result.kind}/{result.name}"


def _watched(
    applied: Sequence[Applied], done: Sequence[ResourceResult]
) -> dict[int, PlannedObject]:
    """The objects to wait for, by their place: applied, read back, and where they live known
    (a kind of this event's CRD is found only at apply time)."""
    return {
        index: attrs.evolve(one.object, resource=one.resource)
        for index, (one, result) in enumerate(zip(applied, done, strict=True))
        if one.ok and one.resource is not None and result.status is not ResourceStatus.FAILED
    }


async def wait_ready(
    target: KubeTarget,
    applied: Sequence[Applied],
    done: Sequence[ResourceResult],
    *,
    timeout: float,  # noqa: ASYNC109 - the event's ready_timeout, reported in its message
    progress: Progress,
    headers: Mapping[str, str] | None = None,
) -> Waited:
    """``done``: the verifying phase's results, one per :class:`Applied`, in order."""
    watched = _watched(applied, done)
    verdicts: dict[int, Verdict] = {}
    pending = sorted(watched)
    deadline = trio.current_time() + timeout
    delay = FIRST_DELAY
    while pending:
        fresh = await _read(target, {i: watched[i] for i in pending}, headers)
        changed = any(
            (i not in verdicts or (verdicts[i].ready, verdicts[i].message) != (v.ready, v.message))
            for i, v in fresh.items()
        )
        verdicts.update(fresh)
        pending = [i for i in pending if verdicts[i].ready is not Readiness.CURRENT]
        broken = [i for i in pending if verdicts[i].ready is Readiness.FAILED]
        if broken:
            first = broken[0]
            why = f"not ready: {_named(done[first])}: {verdicts[first].words}"
            return Waited(_with(done, verdicts, final=True), why)
        if pending and trio.current_time() >= deadline:
            first = pending[0]
            why = f"not ready after {timeout:g} s: {_named(done[first])}: {verdicts[first].words}"
            return Waited(_with(done, verdicts, final=True), why)
        if pending and changed:
            first = pending[0]
            message = (
                f"waiting for {len(pending)} of {len(watched)} objects to be ready: "
                f"{_named(done[first])}: {verdicts[first].message}"
            )
            progress(message, _with(done, verdicts, final=False))
        if pending:
            await trio.sleep(min(delay, max(0.0, deadline - trio.current_time())))
            delay = min(delay * GROWTH, MAX_DELAY)
    return Waited(_with(done, verdicts, final=True))
