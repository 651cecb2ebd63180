"""The Pod Security checks in the Go registry's order, at each level (what
:func:`.podsecurity.check_pod` runs; imported with the first pod to check). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from transporter.agent.policy import podchecks_baseline as baseline
from transporter.agent.policy import podchecks_restricted as restricted
from transporter.agent.policy import podjson
from transporter.agent.policy.podsecurity import Level


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


def failed(
    metadata: Mapping[str, Any], spec: Mapping[str, Any], *, strict: bool
) -> list[tuple[str, str]]:
    """``(reason, detail)`` of each check the pod fails, baseline's or (``strict``)
    restricted's, in the API server's order."""
    run = _RESTRICTED if strict else _BASELINE
    pod_metadata = podjson.obj(metadata) or podjson.EMPTY
    pod_spec = podjson.obj(spec) or podjson.EMPTY
    found = (check(pod_metadata, pod_spec) for check in run)
    return [(r[0], r[1]) for r in found if r is not None]
