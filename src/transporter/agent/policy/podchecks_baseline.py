"""The baseline checks of the Pod Security Standards, as pod-security-admission v0.37.2 runs them
at policy version "latest" (its ``policy/check_*.go``, one function each).

Each check takes the pod's metadata and spec as JSON and returns None when allowed, else Go's
``(ForbiddenReason, ForbiddenDetail)``, byte for byte. Wrong-typed fields read as
:mod:`.podjson` says. The restricted checks that build on these are in
:mod:`.podchecks_restricted`.
"""

from __future__ import annotations

from typing import Final

from transporter.agent.policy.podjson import (
    Json,
    Result,
    containers,
    containers_phrase,
    entries,
    get,
    go_quote,
    items,
    join_quote,
    name,
    number,
    number_text,
    obj,
    pluralize,
    setters_detail,
    sub,
    text,
    true_ish,
    user_namespaced,
    uses_detail,
)

APPARMOR_ANNOTATION_PREFIX: Final = "container.apparmor.security.beta.kubernetes.io/"
APPARMOR_ALLOWED_TYPES: Final = frozenset({"RuntimeDefault", "Localhost"})
SECCOMP_ALLOWED_TYPES: Final = frozenset({"RuntimeDefault", "Localhost"})
DEFAULT_PROC_MOUNT: Final = "Default"

CAPABILITIES_ALLOWED: Final = frozenset(
    {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
        "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }
)  # fmt: skip
SELINUX_ALLOWED_TYPES: Final = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
SYSCTLS_ALLOWED: Final = frozenset(
    {
        "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
        "net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat",
    }
)  # fmt: skip
"""Go's sysctlsAllowedV1Dot37."""


def security_context(holder: Json) -> Json | None:
    """A pod's or container's securityContext (nil if unset)."""
    return sub(holder, "securityContext")


def _allowed_annotation(value: str) -> bool:
    return not value or value == "runtime/default" or value.startswith("localhost/")


def _forbidden_annotations(metadata: Json) -> list[str]:
    annotations = obj(get(metadata, "annotations")) or {}
    # Go's map keeps the last of keys that decode the same.
    decoded = {text(key): text(value) for key, value in annotations.items()}
    return sorted(
        f"{key}={go_quote(value)}"
        for key, value in decoded.items()
        if key.startswith(APPARMOR_ANNOTATION_PREFIX) and not _allowed_annotation(value)
    )


def app_armor_profile(metadata: Json, spec: Json) -> Result:
    """appArmorProfile (1.0): profile types and the beta annotations."""
    bad_values: set[str] = set()
    setters: list[str] = []
    pod_profile = sub(security_context(spec), "appArmorProfile")
    if pod_profile is not None and text(get(pod_profile, "type")) not in APPARMOR_ALLOWED_TYPES:
        setters.append("pod")
        bad_values.add(text(get(pod_profile, "type")))
    bad_containers: list[str] = []
    for container in containers(spec):
        profile = sub(security_context(container), "appArmorProfile")
        if profile is None:
            continue
        kind = text(get(profile, "type"))
        if kind not in APPARMOR_ALLOWED_TYPES:
            bad_containers.append(name(container))
            bad_values.add(kind)
    if bad_containers:
        setters.append(containers_phrase(bad_containers))
    bad_list = sorted(bad_values)
    annotations = _forbidden_annotations(metadata)
    if annotations:
        bad_list.extend(annotations)
        setters.append(pluralize("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return (
        pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad_list)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {join_quote(bad_list)}",
    )


def capabilities_baseline(metadata: Json, spec: Json) -> Result:
    """capabilities_baseline (1.0): only the default set may be added."""
    bad_containers: list[str] = []
    forbidden: set[str] = set()
    for container in containers(spec):
        capabilities = sub(security_context(container), "capabilities")
        if capabilities is None:
            continue
        added = {text(c) for c in items(get(capabilities, "add"))} - CAPABILITIES_ALLOWED
        if added:
            bad_containers.append(name(container))
            forbidden |= added
    if not bad_containers:
        return None
    return (
        "non-default capabilities",
        f"{containers_phrase(bad_containers)} must not include {join_quote(sorted(forbidden))} "
        "in securityContext.capabilities.add",
    )


def host_namespaces(metadata: Json, spec: Json) -> Result:
    """hostNamespaces (1.0): hostNetwork, hostPID, hostIPC."""
    found = [
        f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if true_ish(get(spec, key))
    ]
    return ("host namespaces", ", ".join(found)) if found else None


def host_path_volumes(metadata: Json, spec: Json) -> Result:
    """hostPathVolumes (1.0)."""
    bad = [name(v) for v in entries(get(spec, "volumes")) if obj(get(v, "hostPath")) is not None]
    if not bad:
        return None
    return "hostPath volumes", f"{pluralize('volume', 'volumes', len(bad))} {join_quote(bad)}"


def host_ports(metadata: Json, spec: Json) -> Result:
    """hostPorts (1.0): a hostPort other than 0 (null or absent is 0)."""
    bad_containers: list[str] = []
    forbidden: set[str] = set()
    for container in containers(spec):
        ports = [get(port, "hostPort") for port in entries(get(container, "ports"))]
        used = {number_text(p) for p in ports if p is not None and number(p) != 0}
        if used:
            bad_containers.append(name(container))
            forbidden |= used
    if not bad_containers:
        return None
    count = len(bad_containers)
    return (
        "hostPort",
        f"{containers_phrase(bad_containers)} {pluralize('uses', 'use', count)} "
        f"{pluralize('hostPort', 'hostPorts', len(forbidden))} {', '.join(sorted(forbidden))}",
    )


def _handler_hosts(handler: Json | None) -> list[str]:
    """Go's getForbiddenHostProbes / getForbiddenHostLifecycle: the hosts a handler sets."""
    if handler is None:
        return []
    found = []
    for key in ("httpGet", "tcpSocket"):
        action = sub(handler, key)
        host = "" if action is None else text(get(action, "host"))
        if host:
            found.append(host)
    return found


def host_probes_and_host_lifecycle(metadata: Json, spec: Json) -> Result:
    """hostProbesAndHostLifecycle (1.34): probes and lifecycle handlers may not set a host."""
    bad_containers: set[str] = set()
    forbidden: set[str] = set()
    for container in containers(spec):
        handlers = [sub(container, p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        lifecycle = sub(container, "lifecycle")
        if lifecycle is not None:
            handlers += [sub(lifecycle, "postStart"), sub(lifecycle, "preStop")]
        hosts = [host for handler in handlers for host in _handler_hosts(handler)]
        if hosts:
            bad_containers.add(name(container))
            forbidden.update(hosts)
    if not bad_containers:
        return None
    return (
        "probe or lifecycle host",
        uses_detail(
            containers_phrase(sorted(bad_containers)),
            len(bad_containers),
            "probe or lifecycle host",
            "probe or lifecycle hosts",
            sorted(forbidden),
        ),
    )


def privileged(metadata: Json, spec: Json) -> Result:
    """privileged (1.0)."""
    bad = [
        name(c) for c in containers(spec) if true_ish(get(security_context(c) or {}, "privileged"))
    ]
    if not bad:
        return None
    return "privileged", f"{containers_phrase(bad)} must not set securityContext.privileged=true"


def default_proc_mount(metadata: Json, spec: Json) -> Result:
    """Go's procMount_1_0: procMount unset (null) or "Default" (the restricted check)."""
    bad_containers: list[str] = []
    forbidden: set[str] = set()
    for container in containers(spec):
        value = get(security_context(container) or {}, "procMount")
        if value is not None and text(value) != DEFAULT_PROC_MOUNT:
            bad_containers.append(name(container))
            forbidden.add(text(value))
    if not bad_containers:
        return None
    return (
        "procMount",
        f"{containers_phrase(bad_containers)} must not set securityContext.procMount to "
        f"{join_quote(sorted(forbidden))}",
    )


def proc_mount_baseline(metadata: Json, spec: Json) -> Result:
    """procMount (1.35): as :func:`default_proc_mount`, except in a user namespace."""
    return None if user_namespaced(spec) else default_proc_mount(metadata, spec)


class _SELinux:
    """What Go's validSELinuxOptions closure gathers."""

    def __init__(self) -> None:
        self.bad_types: set[str] = set()
        self.set_user = False
        self.set_role = False

    def valid(self, options: Json) -> bool:
        valid = True
        kind = text(get(options, "type"))
        if kind not in SELINUX_ALLOWED_TYPES:
            valid = False
            self.bad_types.add(kind)
        if text(get(options, "user")):
            self.set_user = True
            valid = False
        if text(get(options, "role")):
            self.set_role = True
            valid = False
        return valid

    def detail(self) -> str:
        found = []
        if self.bad_types:
            types = pluralize("type", "types", len(self.bad_types))
            found.append(f"{types} {join_quote(sorted(self.bad_types))}")
        if self.set_user:
            found.append("user may not be set")
        if self.set_role:
            found.append("role may not be set")
        return "; ".join(found)


def se_linux_options(metadata: Json, spec: Json) -> Result:
    """seLinuxOptions (1.31): allowed types only; no user, no role."""
    state = _SELinux()
    pod_options = sub(security_context(spec), "seLinuxOptions")
    pod_bad = pod_options is not None and not state.valid(pod_options)
    bad_containers = []
    for container in containers(spec):
        options = sub(security_context(container), "seLinuxOptions")
        if options is not None and not state.valid(options):
            bad_containers.append(name(container))
    detail = setters_detail(
        pod_bad, bad_containers, "set forbidden securityContext.seLinuxOptions:"
    )
    return None if detail is None else ("seLinuxOptions", f"{detail} {state.detail()}")


def explicit_seccomp(spec: Json) -> tuple[bool | None, list[str], list[str], set[str]]:
    """What both seccomp checks (1.19) gather.

    ``(pod, explicitly_bad, unset, bad_values)``: ``pod`` is None if the pod sets no profile,
    else whether its type is allowed; the containers that set a forbidden type and those that
    set none; and the forbidden types.
    """
    bad_values: set[str] = set()
    pod_profile = sub(security_context(spec), "seccompProfile")
    pod_ok: bool | None = None
    if pod_profile is not None:
        kind = text(get(pod_profile, "type"))
        pod_ok = kind in SECCOMP_ALLOWED_TYPES
        if not pod_ok:
            bad_values.add(kind)
    explicitly_bad: list[str] = []
    unset: list[str] = []
    for container in containers(spec):
        profile = sub(security_context(container), "seccompProfile")
        if profile is None:
            unset.append(name(container))
            continue
        kind = text(get(profile, "type"))
        if kind not in SECCOMP_ALLOWED_TYPES:
            explicitly_bad.append(name(container))
            bad_values.add(kind)
    return pod_ok, explicitly_bad, unset, bad_values


def seccomp_detail(pod_ok: bool | None, explicitly_bad: list[str], values: set[str]) -> Result:
    """The "must not set" verdict both seccomp checks give, if any."""
    predicate = f"must not set securityContext.seccompProfile.type to {join_quote(sorted(values))}"
    detail = setters_detail(pod_ok is False, explicitly_bad, predicate)
    return None if detail is None else ("seccompProfile", detail)


def seccomp_profile_baseline(metadata: Json, spec: Json) -> Result:
    """seccompProfile_baseline (1.19): a profile, if set, is RuntimeDefault or Localhost."""
    pod_ok, explicitly_bad, _, values = explicit_seccomp(spec)
    return seccomp_detail(pod_ok, explicitly_bad, values)


def sysctls(metadata: Json, spec: Json) -> Result:
    """sysctls (1.37): only the safe ones."""
    context = security_context(spec)
    found = entries(get(context, "sysctls")) if context is not None else []
    forbidden = [n for n in map(name, found) if n not in SYSCTLS_ALLOWED]
    return ("forbidden sysctls", ", ".join(forbidden)) if forbidden else None


def _host_process(holder: Json) -> bool:
    options = sub(security_context(holder), "windowsOptions")
    return options is not None and true_ish(get(options, "hostProcess"))


def windows_host_process(metadata: Json, spec: Json) -> Result:
    """windowsHostProcess (1.0)."""
    bad = [name(c) for c in containers(spec) if _host_process(c)]
    predicate = "must not set securityContext.windowsOptions.hostProcess=true"
    detail = setters_detail(_host_process(spec), bad, predicate)
    return None if detail is None else ("hostProcess", detail)
