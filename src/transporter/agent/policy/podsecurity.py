"""Pod Security Standards, as the API server's PodSecurity admission checks them.

A port of k8s.io/pod-security-admission v0.37.2 at policy version "latest": the checks are in
:mod:`.podchecks_baseline` and :mod:`.podchecks_restricted` (reading hostile JSON the way Go
decodes it: :mod:`.podjson`); this module runs them (:mod:`.podchecks`, the registry) in the
Go registry's order, so that
``", ".join(map(str, check_pod(...)))`` is the text the API server prints after
``violates PodSecurity "restricted:latest": ``. :func:`pod_template` finds the pod an object
runs, for the same kinds as the Go admission's DefaultPodSpecExtractor. Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import attrs

UNKNOWN_REASON: Final = "unknown forbidden reason"
"""Go's placeholder for a check that refuses without a reason (none of ours does)."""


class Level(enum.StrEnum):
    PRIVILEGED = "privileged"
    BASELINE = "baseline"
    RESTRICTED = "restricted"


@attrs.frozen
class Violation:
    """One refusing check: Go's CheckResult.ForbiddenReason and ForbiddenDetail."""

    reason: str
    detail: str

    def __str__(self) -> str:
        # Go's AggregateCheckResult.ForbiddenDetail, for one check.
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


def check_pod(
    metadata: Mapping[str, Any], spec: Mapping[str, Any], level: Level
) -> list[Violation]:
    """The checks the pod fails at ``level`` (policy version "latest"), in the API server's order.

    Like Go's EvaluatePod, a level other than privileged or baseline runs the restricted checks.
    """
    if level == Level.PRIVILEGED:
        return []
    # The checks are imported with the first pod to check: an idle agent does without them.
    from transporter.agent.policy.podchecks import failed

    return [
        Violation(reason or UNKNOWN_REASON, detail)
        for reason, detail in failed(metadata, spec, strict=level != Level.BASELINE)
    ]


TEMPLATE_PATHS: Final[Mapping[tuple[str, str], tuple[str, ...]]] = {
    ("", "Pod"): (),
    ("", "PodTemplate"): ("template",),
    ("", "ReplicationController"): ("spec", "template"),
    ("apps", "Deployment"): ("spec", "template"),
    ("apps", "ReplicaSet"): ("spec", "template"),
    ("apps", "StatefulSet"): ("spec", "template"),
    ("apps", "DaemonSet"): ("spec", "template"),
    ("batch", "Job"): ("spec", "template"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
}
"""``(group, kind)`` of the objects that run pods, and where their pod template is."""


def pod_template(
    group: str, kind: str, body: Mapping[str, Any]
) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    """``(metadata, spec)`` of the pod ``body`` runs, or None if its kind runs none.

    None too when the template (for a Pod: the body) or its spec is missing or not an object:
    there is no pod to check. A missing or mistyped metadata is empty, as Go's zero value.
    """
    path = TEMPLATE_PATHS.get((group, kind))
    if path is None:
        return None
    node: object = body
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping):
        return None
    spec = node.get("spec")
    if not isinstance(spec, Mapping):
        return None
    metadata = node.get("metadata")
    return (metadata if isinstance(metadata, Mapping) else {}), spec
