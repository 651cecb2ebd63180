"""The restricted checks of the Pod Security Standards, as pod-security-admission v0.37.2 runs
them at policy version "latest" (its ``policy/check_*.go``, one function each).

Like :mod:`.podchecks_baseline`, whose helpers some of these share: each check returns None
when allowed, else Go's ``(ForbiddenReason, ForbiddenDetail)``, byte for byte; wrong-typed
fields read as :mod:`.podjson` says.
"""

from __future__ import annotations

from typing import Final

from transporter.agent.policy.podchecks_baseline import (
    default_proc_mount,
    explicit_seccomp,
    seccomp_detail,
    security_context,
)
from transporter.agent.policy.podjson import (
    Json,
    Result,
    containers,
    containers_phrase,
    entries,
    get,
    items,
    join_quote,
    name,
    number,
    obj,
    pluralize,
    setters_detail,
    sub,
    text,
    user_namespaced,
    uses_detail,
    windows,
)

CAPABILITY_ALL: Final = "ALL"
CAPABILITY_NET_BIND_SERVICE: Final = "NET_BIND_SERVICE"

ALLOWED_VOLUME_SOURCES: Final = (
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
    "persistentVolumeClaim", "projected", "secret",
)  # fmt: skip
RESTRICTED_VOLUME_SOURCES: Final = (
    "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
    "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
    "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
    "scaleIO", "storageos",
)  # fmt: skip
"""In the order of Go's switch: a volume with several sources is named by the first."""


def allow_privilege_escalation(metadata: Json, spec: Json) -> Result:
    """allowPrivilegeEscalation (1.25): every container sets it false (Windows pods exempt)."""
    if windows(spec):
        return None
    bad = [
        name(c)
        for c in containers(spec)
        if get(security_context(c) or {}, "allowPrivilegeEscalation") is not False
    ]
    if not bad:
        return None
    return (
        "allowPrivilegeEscalation != false",
        f"{containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false",
    )


def _drops_all(capabilities: Json) -> bool:
    # A lone "ALL" is no list: it does not count (see podjson).
    drop = get(capabilities, "drop")
    return isinstance(drop, (list, tuple)) and any(text(c) == CAPABILITY_ALL for c in drop)


def capabilities_restricted(metadata: Json, spec: Json) -> Result:
    """capabilities_restricted (1.25): drop ALL, add only NET_BIND_SERVICE (Windows exempt)."""
    if windows(spec):
        return None
    missing_drop_all: list[str] = []
    adding: list[str] = []
    forbidden: set[str] = set()
    for container in containers(spec):
        capabilities = sub(security_context(container), "capabilities")
        if capabilities is None:
            missing_drop_all.append(name(container))
            continue
        if not _drops_all(capabilities):
            missing_drop_all.append(name(container))
        added = {text(c) for c in items(get(capabilities, "add"))}
        added.discard(CAPABILITY_NET_BIND_SERVICE)
        if added:
            adding.append(name(container))
            forbidden |= added
    details = []
    if missing_drop_all:
        details.append(
            f"{containers_phrase(missing_drop_all)} "
            'must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{containers_phrase(adding)} must not include {join_quote(sorted(forbidden))} "
            "in securityContext.capabilities.add"
        )
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def proc_mount(metadata: Json, spec: Json) -> Result:
    """procMount_restricted (1.35): the baseline check without its user-namespace relaxation."""
    return default_proc_mount(metadata, spec)


def _volume_type(volume: Json) -> str | None:
    """None if the volume's source is allowed, else the restricted type it uses."""
    if any(obj(get(volume, key)) is not None for key in ALLOWED_VOLUME_SOURCES):
        return None
    for key in RESTRICTED_VOLUME_SOURCES:
        if obj(get(volume, key)) is not None:
            return key
    return "unknown"


def restricted_volumes(metadata: Json, spec: Json) -> Result:
    """restrictedVolumes (1.0): only the allowed volume sources."""
    bad: list[str] = []
    kinds: set[str] = set()
    for volume in entries(get(spec, "volumes")):
        kind = _volume_type(volume)
        if kind is not None:
            bad.append(name(volume))
            kinds.add(kind)
    if not bad:
        return None
    return (
        "restricted volume types",
        uses_detail(
            f"{pluralize('volume', 'volumes', len(bad))} {join_quote(bad)}",
            len(bad),
            "restricted volume type",
            "restricted volume types",
            sorted(kinds),
        ),
    )


def run_as_non_root(metadata: Json, spec: Json) -> Result:
    """runAsNonRoot (1.35): true at pod or container level, unless in a user namespace."""
    if user_namespaced(spec):
        return None
    pod_value = get(security_context(spec) or {}, "runAsNonRoot")
    pod_bad = pod_value is not None and pod_value is not True
    explicitly_bad: list[str] = []
    implicitly_bad: list[str] = []
    for container in containers(spec):
        value = get(security_context(container) or {}, "runAsNonRoot")
        if value is None:
            if pod_value is not True:
                implicitly_bad.append(name(container))
        elif value is not True:
            explicitly_bad.append(name(container))
    predicate = "must not set securityContext.runAsNonRoot=false"
    detail = setters_detail(pod_bad, explicitly_bad, predicate)
    if detail is not None:
        return "runAsNonRoot != true", detail
    if implicitly_bad:
        return (
            "runAsNonRoot != true",
            f"pod or {containers_phrase(implicitly_bad)} "
            "must set securityContext.runAsNonRoot=true",
        )
    return None


def _root_user(holder: Json) -> bool:
    """Whether a securityContext's runAsUser is 0, or might be (not an integer)."""
    value = get(security_context(holder) or {}, "runAsUser")
    return value is not None and number(value) in (None, 0)


def run_as_user(metadata: Json, spec: Json) -> Result:
    """runAsUser (1.35): never 0, unless in a user namespace."""
    if user_namespaced(spec):
        return None
    bad = [name(c) for c in containers(spec) if _root_user(c)]
    detail = setters_detail(_root_user(spec), bad, "must not set runAsUser=0")
    return None if detail is None else ("runAsUser=0", detail)


def seccomp_profile_restricted(metadata: Json, spec: Json) -> Result:
    """seccompProfile_restricted (1.25): RuntimeDefault or Localhost, at pod or container level
    (Windows pods exempt)."""
    if windows(spec):
        return None
    pod_ok, explicitly_bad, unset, values = explicit_seccomp(spec)
    found = seccomp_detail(pod_ok, explicitly_bad, values)
    if found is not None or pod_ok or not unset:
        return found
    return (
        "seccompProfile",
        f"pod or {containers_phrase(unset)} must set securityContext.seccompProfile.type to "
        '"RuntimeDefault" or "Localhost"',
    )
