"""Pod Security Standards, as the API server's PodSecurity admission checks them.

A port of k8s.io/pod-security-admission v0.37.2 at policy version "latest": the checks are in
:mod:`.podchecks_baseline` and :mod:`.podchecks_restricted` (reading hostile JSON the way Go
decodes it: :mod:`.podjson`); this module runs them in the Go registry's order, so that
``", ".join(map(str, check_pod(...)))`` is the text the API server prints after
``violates PodSecurity "restricted:latest": ``. :func:`pod_template` finds the pod an object
runs, for the same kinds as the Go admission's DefaultPodSpecExtractor. Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import attrs

from transporter.agent.policy import podchecks_baseline as baseline
from transporter.agent.policy import podchecks_restricted as restricted
from transporter.agent.policy import podjson

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


@attrs.frozen
class _Check:
    id: str
    level: Level
    run: podjson.CheckFn
    overrides: tuple[str, ...] = ()


_CHECKS: Final = (
    _Check("appArmorProfile", Level.BASELINE, baseline.app_armor_profile),
    _Check("capabilities_baseline", Level.BASELINE, baseline.capabilities_baseline),
    _Check("hostNamespaces", Level.BASELINE, baseline.host_namespaces),
    _Check("hostPathVolumes", Level.BASELINE, baseline.host_path_volumes),
    _Check("hostPorts", Level.BASELINE, baseline.host_ports),
    _Check("hostProbesAndHostLifecycle", Level.BASELINE, baseline.host_probes_and_host_lifecycle),
    _Check("privileged", Level.BASELINE, baseline.privileged),
    _Check("procMount", Level.BASELINE, baseline.proc_mount_baseline),
    _Check("seLinuxOptions", Level.BASELINE, baseline.se_linux_options),
    _Check("seccompProfile_baseline", Level.BASELINE, baseline.seccomp_profile_baseline),
    _Check("sysctls", Level.BASELINE, baseline.sysctls),
    _Check("windowsHostProcess", Level.BASELINE, baseline.windows_host_process),
    _Check("allowPrivilegeEscalation", Level.RESTRICTED, restricted.allow_privilege_escalation),
    _Check(
        "capabilities_restricted",
        Level.RESTRICTED,
        restricted.capabilities_restricted,
        ("capabilities_baseline",),
    ),
    _Check("procMount_restricted", Level.RESTRICTED, restricted.proc_mount, ("procMount",)),
    _Check(
        "restrictedVolumes", Level.RESTRICTED, restricted.restricted_volumes, ("hostPathVolumes",)
    ),
    _Check("runAsNonRoot", Level.RESTRICTED, restricted.run_as_non_root),
    _Check("runAsUser", Level.RESTRICTED, restricted.run_as_user),
    _Check(
        "seccompProfile_restricted",
        Level.RESTRICTED,
        restricted.seccomp_profile_restricted,
        ("seccompProfile_baseline",),
    ),
)


def _registry(level: Level) -> tuple[podjson.CheckFn, ...]:
    """Go's populate(): checks sorted by ID, baseline first; restricted drops what it overrides."""
    base = sorted((c for c in _CHECKS if c.level is Level.BASELINE), key=lambda c: c.id)
    if level is Level.BASELINE:
        return tuple(c.run for c in base)
    strict = sorted((c for c in _CHECKS if c.level is Level.RESTRICTED), key=lambda c: c.id)
    overridden = {o for c in strict for o in c.overrides}
    kept = [c for c in base if c.id not in overridden]
    return tuple(c.run for c in [*kept, *strict])


_BASELINE: Final = _registry(Level.BASELINE)
_RESTRICTED: Final = _registry(Level.RESTRICTED)


def check_pod(
    metadata: Mapping[str, Any], spec: Mapping[str, Any], level: Level
) -> list[Violation]:
    """The checks the pod fails at ``level`` (policy version "latest"), in the API server's order.

    Like Go's EvaluatePod, a level other than privileged or baseline runs the restricted checks.
    """
    if level == Level.PRIVILEGED:
        return []
    run = _BASELINE if level == Level.BASELINE else _RESTRICTED
    pod_metadata = podjson.obj(metadata) or podjson.EMPTY
    pod_spec = podjson.obj(spec) or podjson.EMPTY
    found = (check(pod_metadata, pod_spec) for check in run)
    return [Violation(r[0] or UNKNOWN_REASON, r[1]) for r in found if r is not None]


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
