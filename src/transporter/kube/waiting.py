"""How an applied object stands, in the words ``wait_ready`` reports: kstatus's verdict
(:func:`~transporter.kube.readiness.compute`) and, when it is not ready, the object's own
condition that says why (a Deployment's ``Available`` or ``Progressing``, a Pod's
``ContainersReady``). Pure and bounded like ``compute``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from transporter.kube.readiness import MAX_ITEMS, ReadinessInputError, compute, one_line
from transporter.protocol.model import Readiness

UPSIDE_DOWN: Final = frozenset(
    {"ReplicaFailure", "Stalled", "Reconciling", "Failed", "Degraded", "DiskPressure"}
)
"""Conditions that say something is wrong when ``True`` (the rest: when ``False``)."""


@attrs.frozen
class Verdict:
    ready: Readiness
    message: str
    """kstatus's words, e.g. ``Available: 0/2`` (what progress reports show)."""
    detail: str = ""
    """The object's own condition that says why it is not ready, e.g. ``Available: Deployment
    does not have minimum availability.``; empty when it is ready or says nothing more."""

    @property
    def words(self) -> str:
        """The message and the detail, for a failure: ``Available: 0/2 (Available: …)``."""
        if not self.detail or self.detail.partition(": ")[2] in self.message:
            return self.message
        return one_line(f"{self.message} ({self.detail})")


def _wrong(condition: Mapping[str, Any]) -> str:
    """``Type: message`` of a condition in its bad state, else ``""``."""
    kind, status = condition.get("type"), condition.get("status")
    words = condition.get("message") or condition.get("reason")
    if not isinstance(kind, str) or not isinstance(words, str) or not words:
        return ""
    bad = status == "True" if kind in UPSIDE_DOWN else status == "False"
    return f"{kind}: {words}" if bad else ""


def detail(obj: Mapping[str, Any]) -> str:
    """The first condition in its bad state, in the object's order (``""`` if none)."""
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    for condition in conditions[:MAX_ITEMS] if isinstance(conditions, list) else ():
        found = _wrong(condition) if isinstance(condition, Mapping) else ""
        if found:
            return one_line(found)
    return ""


def assess(obj: Mapping[str, Any] | None) -> Verdict:
    """``obj`` as read while waiting; ``None``: it is gone (deleted since it was applied)."""
    if obj is None:
        return Verdict(Readiness.FAILED, "deleted while waiting for it to be ready")
    try:
        found = compute(obj)
    except ReadinessInputError as exc:
        return Verdict(Readiness.UNKNOWN, one_line(f"its status cannot be read: {exc}"))
    ready = Readiness(found.status.value)
    if ready is Readiness.CURRENT:
        return Verdict(ready, found.message)
    return Verdict(ready, found.message, detail(obj))
