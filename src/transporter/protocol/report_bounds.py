"""Bounds on what an agent's report may make the control plane store and show.

A report is the agent's word, and an agent (or whoever holds its certificate) may say anything:
a time of 1e18, a message of 3 MB, 20,000 results for an event of one object. The control plane
stores reports after :func:`bounded` and the agent applies the same bounds before it reports,
so an honest report is never changed and nothing of a hostile one is refused outright (which
would make an honest-but-odd agent send it again forever): times are brought into
[:data:`OLDEST`, now], texts cut at their bound (saying how much was cut), and results past
:data:`MAX_RESOURCES` dropped, with a note in the message.
"""

from __future__ import annotations

from typing import Final

import attrs

from transporter.protocol.model import FieldChange, ResourceResult
from transporter.protocol.status import StatusUpdate

MAX_MESSAGE: Final = 4096
"""Characters of a report's message."""
MAX_RESOURCE_MESSAGE: Final = 2048
"""Characters of one result's message (the API server's own messages are far shorter)."""
MAX_RESOURCES: Final = 2000
"""Results in one report: an event holds at most this many objects (the agent's plan)."""
MAX_NAME: Final = 253
"""Characters of a result's name, namespace, kind or apiVersion (Kubernetes' own bound)."""
MAX_CHANGES: Final = 100
"""Field changes listed in one result's ``diff`` (a plan); the rest are counted in its message."""
MAX_REPORT_CHANGES: Final = 2000
"""Field changes in one report, all results together: later results' diffs are cut to fit."""
MAX_PATH: Final = 512
"""Characters of a field change's path."""
MAX_VALUE: Final = 256
"""Characters of a field change's old or new value (compact JSON)."""
MAX_FINGERPRINT: Final = 64
"""Characters of a result's fingerprint (ours are 32 hex digits)."""
OLDEST: Final = 31 * 24 * 3600.0
"""Seconds before now the earliest a report may say it happened (an event lives 30 days)."""


def cut(text: str, limit: int) -> str:
    """``text``, or its first part and how much was cut."""
    if len(text) <= limit:
        return text
    tail = f"… ({len(text) - limit} characters cut)"
    return text[: max(0, limit - len(tail))] + tail


def bounded_time(at: float, now: float) -> float:
    """``at`` brought into [now - :data:`OLDEST`, now]: a report cannot come from the future,
    nor from before its event could have been."""
    return min(max(at, now - OLDEST), now)


def bounded_results(
    resources: tuple[ResourceResult, ...] | None,
) -> tuple[tuple[ResourceResult, ...] | None, str]:
    """The results within their bounds, and a note for the message when some were dropped."""
    if resources is None:
        return None, ""
    note = ""
    if len(resources) > MAX_RESOURCES:
        note = f" ({len(resources) - MAX_RESOURCES} more results not kept)"
        resources = resources[:MAX_RESOURCES]
    budget = MAX_REPORT_CHANGES
    kept = []
    for result in resources:
        kept.append(_result(result, budget))
        budget -= len(kept[-1].diff)
    return tuple(kept), note


def _change(change: FieldChange) -> FieldChange:
    if max(len(change.old), len(change.new)) <= MAX_VALUE and len(change.path) <= MAX_PATH:
        return change
    return FieldChange(
        cut(change.path, MAX_PATH),
        change.op,
        cut(change.old, MAX_VALUE),
        cut(change.new, MAX_VALUE),
    )


def _result(result: ResourceResult, budget: int = MAX_CHANGES) -> ResourceResult:
    fields = (result.api_version, result.kind, result.name, result.namespace or "")
    limit = max(0, min(MAX_CHANGES, budget))
    if (
        all(len(f) <= MAX_NAME for f in fields)
        and len(result.message) <= MAX_RESOURCE_MESSAGE
        and len(result.diff) <= limit
        and len(result.fingerprint) <= MAX_FINGERPRINT
        and all(_change(c) is c for c in result.diff)
    ):
        return result
    dropped = len(result.diff) - limit
    note = f" ({dropped} more changes not listed)" if dropped > 0 else ""
    return attrs.evolve(
        result,
        api_version=cut(result.api_version, MAX_NAME),
        kind=cut(result.kind, MAX_NAME),
        name=cut(result.name, MAX_NAME),
        namespace=None if result.namespace is None else cut(result.namespace, MAX_NAME),
        message=(cut(result.message, MAX_RESOURCE_MESSAGE - len(note)) + note).lstrip(),
        diff=tuple(_change(c) for c in result.diff[:limit]),
        fingerprint=result.fingerprint[:MAX_FINGERPRINT],
    )


def bounded_report(
    message: str, resources: tuple[ResourceResult, ...] | None
) -> tuple[str, tuple[ResourceResult, ...] | None]:
    """A report's message and results within their bounds."""
    resources, note = bounded_results(resources)
    return cut(message, MAX_MESSAGE - len(note)) + note, resources


def bounded_update(update: StatusUpdate, now: float) -> StatusUpdate:
    """An agent's report as the control plane stores it (see the module's docstring)."""
    message, resources = bounded_report(update.message, update.resources)
    at = bounded_time(update.at, now)
    if (at, message, resources) == (update.at, update.message, update.resources):
        return update
    return attrs.evolve(update, at=at, message=message, resources=resources)
