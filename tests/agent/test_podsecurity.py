"""Pod Security Standards: the Go check tables of pod-security-admission v0.37.2 (policy
version "latest"), the registry's order, pod_template for each kind, and hostile input."""

from __future__ import annotations

import random
from typing import Any

import pytest

from transporter.agent.policy import podchecks_baseline as baseline
from transporter.agent.policy import podchecks_restricted as restricted
from transporter.agent.policy import podjson
from transporter.agent.policy.podsecurity import Level, Violation, check_pod, pod_template

type Json = dict[str, Any]

APPARMOR = "container.apparmor.security.beta.kubernetes.io/"
DROP_ALL = 'must set securityContext.capabilities.drop=["ALL"]'


def ctr(name: str, sc: Json | None = None, **fields: Any) -> Json:
    """A container; ``sc=None`` leaves securityContext unset (Go's nil), ``{}`` sets it empty."""
    return {"name": name, **fields} | ({} if sc is None else {"securityContext": sc})


def pod(*containers: Json, **fields: Any) -> Json:
    return {"containers": list(containers), **fields}


def run(check: podjson.CheckFn, spec: Json, metadata: Json | None = None) -> podjson.Result:
    return check(metadata or {}, spec)


# --- allowPrivilegeEscalation (1.25) ---

APE = "allowPrivilegeEscalation != false"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            pod(
                ctr("a"),
                ctr("b", {"allowPrivilegeEscalation": None}),
                ctr("c", {"allowPrivilegeEscalation": True}),
                ctr("d", {"allowPrivilegeEscalation": False}),
            ),
            (
                APE,
                'containers "a", "b", "c" must set securityContext.allowPrivilegeEscalation=false',
            ),
            id="multiple containers",
        ),
        pytest.param(pod(ctr("a"), os={"name": "windows"}), None, id="windows pod"),
        pytest.param(
            pod(ctr("a"), os={"name": "linux"}),
            (APE, 'container "a" must set securityContext.allowPrivilegeEscalation=false'),
            id="linux pod without security context",
        ),
    ],
)
def test_allow_privilege_escalation(spec: Json, expected: podjson.Result) -> None:
    assert run(restricted.allow_privilege_escalation, spec) == expected


# --- appArmorProfile (1.0) ---


@pytest.mark.parametrize(
    ("metadata", "spec"),
    [
        pytest.param({"annotations": {APPARMOR + "test": "runtime/default", "env": "prod"}}, {}),
        pytest.param({"annotations": {APPARMOR + "test": "localhost/sec-profile01"}}, {}),
        pytest.param({"annotations": {"env": "dev"}}, {}),
        pytest.param({}, {}),
        pytest.param({}, {"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}),
        pytest.param({}, pod(ctr("foo", {"appArmorProfile": {"type": "RuntimeDefault"}}))),
    ],
)
def test_app_armor_allowed(metadata: Json, spec: Json) -> None:
    assert run(baseline.app_armor_profile, spec, metadata) is None


UNCONFINED = {"appArmorProfile": {"type": "Unconfined"}}
RUNTIME_DEFAULT = {"appArmorProfile": {"type": "RuntimeDefault"}}
ANNOTATIONS = {
    APPARMOR: "bogus",
    APPARMOR + "a": "",
    APPARMOR + "b": "runtime/default",
    APPARMOR + "c": "localhost/",
    APPARMOR + "d": "localhost/foo",
    APPARMOR + "e": "unconfined",
    APPARMOR + "f": "unknown",
}


@pytest.mark.parametrize(
    ("metadata", "spec", "expected"),
    [
        pytest.param(
            {},
            {"securityContext": UNCONFINED},
            (
                "forbidden AppArmor profile",
                'pod must not set AppArmor profile type to "Unconfined"',
            ),
            id="unconfined pod",
        ),
        pytest.param(
            {},
            pod(ctr("foo", UNCONFINED), securityContext=RUNTIME_DEFAULT),
            (
                "forbidden AppArmor profile",
                'container "foo" must not set AppArmor profile type to "Unconfined"',
            ),
            id="unconfined container",
        ),
        pytest.param(
            {},
            pod(
                ctr("foo"), initContainers=[ctr("bar", UNCONFINED)], securityContext=RUNTIME_DEFAULT
            ),
            (
                "forbidden AppArmor profile",
                'container "bar" must not set AppArmor profile type to "Unconfined"',
            ),
            id="unconfined init container",
        ),
        pytest.param(
            {"annotations": ANNOTATIONS},
            {},
            (
                "forbidden AppArmor profiles",
                "annotations must not set AppArmor profile type to "
                f'"{APPARMOR}="bogus"", "{APPARMOR}e="unconfined"", "{APPARMOR}f="unknown""',
            ),
            id="multiple containers",
        ),
    ],
)
def test_app_armor_forbidden(metadata: Json, spec: Json, expected: podjson.Result) -> None:
    assert run(baseline.app_armor_profile, spec, metadata) == expected


def test_app_armor_annotation_values_are_quoted_like_go() -> None:
    # Expected text taken from the Go code's own output (strconv.Quote).
    value = 'q"\\\t\x00\x7f\u00a0\u2028\U000e0001\u00e9 \U0001f600\udc00'
    result = run(baseline.app_armor_profile, {}, {"annotations": {APPARMOR + "a": value}})
    quoted = '"q\\"\\\\\\t\\x00\\x7f\\u00a0\\u2028\\U000e0001\u00e9 \U0001f600\ufffd"'
    assert result == (
        "forbidden AppArmor profile",
        f'annotation must not set AppArmor profile type to "{APPARMOR}a={quoted}"',
    )


# --- capabilities ---


def caps(add: list[str] | None = None, drop: list[str] | None = None) -> Json:
    found = {"add": add, "drop": drop}
    return {"capabilities": {k: v for k, v in found.items() if v is not None}}


def test_capabilities_baseline() -> None:
    spec = pod(ctr("a", caps(add=["FOO", "BAR"])), ctr("b", caps(add=["BAR", "BAZ"])))
    assert run(baseline.capabilities_baseline, spec) == (
        "non-default capabilities",
        'containers "a", "b" must not include "BAR", "BAZ", "FOO" in '
        "securityContext.capabilities.add",
    )
    assert run(baseline.capabilities_baseline, pod(ctr("a", caps(add=["CHOWN", "KILL"])))) is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            pod(
                ctr("a", caps(add=["FOO", "BAR"])),
                ctr("b", caps(add=["BAR", "BAZ"])),
                ctr("c", caps(add=["NET_BIND_SERVICE", "CHOWN"], drop=["ALL", "FOO"])),
            ),
            (
                "unrestricted capabilities",
                f'containers "a", "b" {DROP_ALL}; containers "a", "b", "c" must not include '
                '"BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add',
            ),
            id="multiple containers",
        ),
        pytest.param(pod(ctr("a"), os={"name": "windows"}), None, id="windows pod"),
        pytest.param(
            pod(ctr("a"), os={"name": "linux"}),
            ("unrestricted capabilities", f'container "a" {DROP_ALL}'),
            id="linux pod without security context",
        ),
        pytest.param(
            pod(ctr("a", caps(add=["NET_BIND_SERVICE"], drop=["ALL"]))), None, id="allowed"
        ),
    ],
)
def test_capabilities_restricted(spec: Json, expected: podjson.Result) -> None:
    assert run(restricted.capabilities_restricted, spec) == expected


# --- host namespaces, hostPath volumes, host ports ---


def test_host_namespaces() -> None:
    spec = {"hostNetwork": True, "hostIPC": True, "hostPID": True}
    assert run(baseline.host_namespaces, spec) == (
        "host namespaces",
        "hostNetwork=true, hostPID=true, hostIPC=true",
    )
    assert run(baseline.host_namespaces, {"hostNetwork": False}) is None


def test_host_path_volumes() -> None:
    volumes = [
        {"name": "a", "hostPath": {}},
        {"name": "b", "hostPath": {}},
        {"name": "c", "emptyDir": {}},
    ]
    assert run(baseline.host_path_volumes, {"volumes": volumes}) == (
        "hostPath volumes",
        'volumes "a", "b"',
    )


def ports(*host_ports: int) -> list[Json]:
    return [{"hostPort": port} for port in host_ports]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            pod(ctr("a", ports=ports(0)), ctr("b", ports=ports(0, 20))),
            ("hostPort", 'container "b" uses hostPort 20'),
            id="one container, one host port",
        ),
        pytest.param(
            pod(
                ctr("a", ports=ports(0)),
                ctr("b", ports=ports(0, 10, 20)),
                ctr("c", ports=ports(0, 10, 30)),
            ),
            ("hostPort", 'containers "b", "c" use hostPorts 10, 20, 30'),
            id="multiple containers, multiple host port",
        ),
        pytest.param(
            pod(ctr("a", ports=ports(9, 10))),
            ("hostPort", 'container "a" uses hostPorts 10, 9'),
            id="sorted as strings, as Go sorts them",
        ),
    ],
)
def test_host_ports(spec: Json, expected: podjson.Result) -> None:
    assert run(baseline.host_ports, spec) == expected


# --- probe and lifecycle hosts (1.34) ---

PLH = "probe or lifecycle host"


def http(host: str | None = None) -> Json:
    return {"httpGet": {"port": 80} | ({} if host is None else {"host": host})}


def tcp(host: str | None = None) -> Json:
    return {"tcpSocket": {"port": 80} | ({} if host is None else {"host": host})}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            pod(
                ctr(
                    "a", livenessProbe=http(), readinessProbe=tcp(), lifecycle={"postStart": http()}
                )
            ),
            None,
            id="valid pod with unset hosts",
        ),
        pytest.param(
            pod(
                ctr(
                    "a",
                    livenessProbe=http("127.0.0.1"),
                    readinessProbe=tcp("::1"),
                    startupProbe=http("localhost"),
                )
            ),
            (PLH, 'container "a" uses probe or lifecycle hosts "127.0.0.1", "::1", "localhost"'),
            id="local host IP as probe host",
        ),
        pytest.param(
            pod(ctr("a", livenessProbe=http("invalid.host"))),
            (PLH, 'container "a" uses probe or lifecycle host "invalid.host"'),
            id="httpget host in liveness probe",
        ),
        pytest.param(
            pod(ctr("b", readinessProbe=tcp("invalid.host"))),
            (PLH, 'container "b" uses probe or lifecycle host "invalid.host"'),
            id="tcpsocket host in readiness probe",
        ),
        pytest.param(
            pod(ctr("c", startupProbe=http("invalid.host"))),
            (PLH, 'container "c" uses probe or lifecycle host "invalid.host"'),
            id="httpget host in startup probe",
        ),
        pytest.param(
            pod(ctr("d", lifecycle={"postStart": tcp("invalid.host")})),
            (PLH, 'container "d" uses probe or lifecycle host "invalid.host"'),
            id="poststart tcpsocket host",
        ),
        pytest.param(
            pod(ctr("e", lifecycle={"preStop": http("another.invalid.host")})),
            (PLH, 'container "e" uses probe or lifecycle host "another.invalid.host"'),
            id="prestop httpget host",
        ),
        pytest.param(
            pod(
                ctr("valid"),
                ctr("invalid1", livenessProbe=http("a.com")),
                ctr("invalid2", lifecycle={"preStop": tcp("b.com")}, startupProbe=http("a.com")),
            ),
            (
                PLH,
                'containers "invalid1", "invalid2" use probe or lifecycle hosts "a.com", "b.com"',
            ),
            id="multiple containers with multiple invalid hosts",
        ),
        pytest.param(
            pod(ctr("a", livenessProbe=http("8.8.8.8"))),
            (PLH, 'container "a" uses probe or lifecycle host "8.8.8.8"'),
            id="ipv4 host",
        ),
        pytest.param(
            pod(ctr("a", livenessProbe=tcp("2001:4860:4860::8888"))),
            (PLH, 'container "a" uses probe or lifecycle host "2001:4860:4860::8888"'),
            id="ipv6 host",
        ),
        pytest.param(
            {"initContainers": [ctr("init", livenessProbe=http("invalid.init.host"))]},
            (PLH, 'container "init" uses probe or lifecycle host "invalid.init.host"'),
            id="host in init container",
        ),
    ],
)
def test_host_probes_and_host_lifecycle(spec: Json, expected: podjson.Result) -> None:
    assert run(baseline.host_probes_and_host_lifecycle, spec) == expected


def test_host_probes_check_runs_at_latest() -> None:
    spec = {"containers": [{"startupProbe": http("localhost")}]}
    assert [v.reason for v in check_pod({}, spec, Level.BASELINE)] == [PLH]


# --- privileged, procMount ---


def test_privileged() -> None:
    spec = pod(
        ctr("a"),
        ctr("b", {}),
        ctr("c", {"privileged": False}),
        ctr("d", {"privileged": True}),
        ctr("e", {"privileged": True}),
    )
    assert run(baseline.privileged, spec) == (
        "privileged",
        'containers "d", "e" must not set securityContext.privileged=true',
    )


PROC_MOUNTS = pod(
    ctr("a"),
    ctr("b", {}),
    ctr("c", {"procMount": "Default"}),
    ctr("d", {"procMount": "Unmasked"}),
    ctr("e", {"procMount": "other"}),
)
PROC_MOUNT = (
    "procMount",
    'containers "d", "e" must not set securityContext.procMount to "Unmasked", "other"',
)


def test_proc_mount_baseline() -> None:
    assert run(baseline.proc_mount_baseline, PROC_MOUNTS | {"hostUsers": True}) == PROC_MOUNT
    assert run(baseline.proc_mount_baseline, PROC_MOUNTS | {"hostUsers": False}) is None


@pytest.mark.parametrize("host_users", [True, False])
def test_proc_mount_restricted(host_users: bool) -> None:
    assert run(restricted.proc_mount, PROC_MOUNTS | {"hostUsers": host_users}) == PROC_MOUNT


# --- restricted volumes ---

ALLOWED_VOLUMES = [
    "emptyDir", "secret", "persistentVolumeClaim", "downwardAPI", "configMap", "projected",
    "csi", "ephemeral", "image",
]  # fmt: skip
RESTRICTED_VOLUMES = [
    "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi",
    "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile",
    "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
    "scaleIO", "storageos",
]  # fmt: skip


def test_restricted_volumes() -> None:
    volumes = [{"name": f"a{i}", key: {}} for i, key in enumerate(ALLOWED_VOLUMES, 1)]
    volumes += [{"name": f"b{i}", key: {}} for i, key in enumerate(RESTRICTED_VOLUMES, 1)]
    volumes.append({"name": "c1"})
    names = ", ".join(f'"b{i}"' for i in range(1, 22))
    kinds = ", ".join(f'"{k}"' for k in sorted([*RESTRICTED_VOLUMES, "unknown"]))
    assert run(restricted.restricted_volumes, {"volumes": volumes}) == (
        "restricted volume types",
        f'volumes {names}, "c1" use restricted volume types {kinds}',
    )


def test_restricted_volumes_single() -> None:
    spec = {"volumes": [{"name": "v", "nfs": {}}, {"name": "ok", "secret": {}, "nfs": {}}]}
    assert run(restricted.restricted_volumes, spec) == (
        "restricted volume types",
        'volume "v" uses restricted volume type "nfs"',
    )


# --- runAsNonRoot, runAsUser (1.35) ---

NON_ROOT = "runAsNonRoot != true"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            pod(ctr("a")),
            (NON_ROOT, 'pod or container "a" must set securityContext.runAsNonRoot=true'),
            id="no explicit runAsNonRoot",
        ),
        pytest.param(
            pod(ctr("a"), securityContext={"runAsNonRoot": False}),
            (NON_ROOT, "pod must not set securityContext.runAsNonRoot=false"),
            id="pod runAsNonRoot=false",
        ),
        pytest.param(
            pod(
                ctr("a"),
                ctr("b", {}),
                ctr("c", {"runAsNonRoot": False}),
                ctr("d", {"runAsNonRoot": False}),
                ctr("e", {"runAsNonRoot": True}),
                ctr("f", {"runAsNonRoot": True}),
                securityContext={"runAsNonRoot": True},
            ),
            (NON_ROOT, 'containers "c", "d" must not set securityContext.runAsNonRoot=false'),
            id="containers runAsNonRoot=false",
        ),
        pytest.param(
            pod(
                ctr("a"),
                ctr("b", {}),
                ctr("d", {"runAsNonRoot": True}),
                ctr("e", {"runAsNonRoot": True}),
            ),
            (NON_ROOT, 'pod or containers "a", "b" must set securityContext.runAsNonRoot=true'),
            id="pod nil, container fallthrough",
        ),
        pytest.param({"hostUsers": False}, None, id="host users false allowed"),
    ],
)
def test_run_as_non_root(spec: Json, expected: podjson.Result) -> None:
    assert run(restricted.run_as_non_root, spec) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            pod(ctr("a"), securityContext={"runAsUser": 0}),
            ("runAsUser=0", "pod must not set runAsUser=0"),
            id="pod runAsUser=0",
        ),
        pytest.param(pod(ctr("a"), securityContext={"runAsUser": 1000}), None, id="pod non-zero"),
        pytest.param(pod(ctr("a"), securityContext={"runAsUser": None}), None, id="pod nil"),
        pytest.param(
            pod(
                ctr("a"),
                ctr("b", {}),
                ctr("c", {"runAsUser": 0}),
                ctr("d", {"runAsUser": 0}),
                ctr("e", {"runAsUser": 1}),
                ctr("f", {"runAsUser": 1}),
                securityContext={"runAsUser": 1000},
            ),
            ("runAsUser=0", 'containers "c", "d" must not set runAsUser=0'),
            id="containers runAsUser=0",
        ),
        pytest.param(
            pod(*(ctr(n, {"runAsUser": i}) for i, n in enumerate("cdef", 1))),
            None,
            id="containers non-zero",
        ),
        pytest.param({"hostUsers": False}, None, id="host users false allowed"),
        pytest.param(
            pod(ctr("a", {"runAsUser": 0}), hostUsers=True),
            ("runAsUser=0", 'container "a" must not set runAsUser=0'),
            id="host users true",
        ),
    ],
)
def test_run_as_user(spec: Json, expected: podjson.Result) -> None:
    assert run(restricted.run_as_user, spec) == expected


# --- seLinuxOptions (1.31) ---


def selinux(**options: str) -> Json:
    return {"seLinuxOptions": options}


GOOD_SELINUX = [
    ctr("a", selinux(type="container_t")),
    ctr("b", selinux(type="container_init_t")),
    ctr("c", selinux(type="container_kvm_t")),
    ctr("d", selinux(type="container_engine_t")),
]
BAD_SELINUX = [
    ctr("e", selinux(type="bar")),
    ctr("f", selinux(user="bar")),
    ctr("g", selinux(role="baz")),
]
SELINUX_TAIL = "set forbidden securityContext.seLinuxOptions:"


@pytest.mark.parametrize(
    ("spec", "detail"),
    [
        pytest.param(
            pod(
                *GOOD_SELINUX,
                *BAD_SELINUX,
                securityContext=selinux(type="foo", user="bar", role="baz"),
            ),
            f'pod and containers "e", "f", "g" {SELINUX_TAIL} types "bar", "foo"; '
            "user may not be set; role may not be set",
            id="invalid pod and containers",
        ),
        pytest.param(
            pod(*GOOD_SELINUX, securityContext=selinux(type="foo", user="bar", role="baz")),
            f'pod {SELINUX_TAIL} type "foo"; user may not be set; role may not be set',
            id="invalid pod",
        ),
        pytest.param(
            pod(*GOOD_SELINUX, *BAD_SELINUX, securityContext=selinux()),
            f'containers "e", "f", "g" {SELINUX_TAIL} type "bar"; '
            "user may not be set; role may not be set",
            id="invalid containers",
        ),
        pytest.param(
            {"securityContext": selinux(type="bad")},
            f'pod {SELINUX_TAIL} type "bad"',
            id="bad type",
        ),
        pytest.param(
            {"securityContext": selinux(user="bad")},
            f"pod {SELINUX_TAIL} user may not be set",
            id="bad user",
        ),
        pytest.param(
            {"securityContext": selinux(role="bad")},
            f"pod {SELINUX_TAIL} role may not be set",
            id="bad role",
        ),
    ],
)
def test_se_linux_options(spec: Json, detail: str) -> None:
    assert run(baseline.se_linux_options, spec) == ("seLinuxOptions", detail)


def test_se_linux_options_allowed() -> None:
    assert run(baseline.se_linux_options, pod(*GOOD_SELINUX, securityContext=selinux())) is None


# --- seccompProfile ---


def seccomp(kind: str) -> Json:
    return {"seccompProfile": {"type": kind}}


SECCOMP_CONTAINERS = [
    ctr("a"),
    ctr("b", {}),
    ctr("c", seccomp("Unconfined")),
    ctr("d", seccomp("Unconfined")),
    ctr("e", seccomp("RuntimeDefault")),
    ctr("f", seccomp("RuntimeDefault")),
]
SECCOMP_MUST_NOT = 'must not set securityContext.seccompProfile.type to "Unconfined"'
SECCOMP_MUST = 'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"'
SECCOMP_EXPLICIT = [
    pytest.param(
        pod(ctr("a"), securityContext=seccomp("Unconfined")),
        ("seccompProfile", f"pod {SECCOMP_MUST_NOT}"),
        id="pod seccomp invalid",
    ),
    pytest.param(
        pod(*SECCOMP_CONTAINERS, securityContext=seccomp("RuntimeDefault")),
        ("seccompProfile", f'containers "c", "d" {SECCOMP_MUST_NOT}'),
        id="containers seccomp invalid",
    ),
]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        *SECCOMP_EXPLICIT,
        pytest.param(
            pod(*SECCOMP_CONTAINERS, securityContext=seccomp("Unconfined")),
            ("seccompProfile", f'pod and containers "c", "d" {SECCOMP_MUST_NOT}'),
            id="pod and containers seccomp invalid",
        ),
        pytest.param(pod(ctr("a")), None, id="unset is allowed"),
    ],
)
def test_seccomp_profile_baseline(spec: Json, expected: podjson.Result) -> None:
    assert run(baseline.seccomp_profile_baseline, spec) == expected


def test_seccomp_annotations_are_not_checked_at_latest() -> None:
    metadata = {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}
    assert run(baseline.seccomp_profile_baseline, pod(ctr("a")), metadata) is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        *SECCOMP_EXPLICIT,
        pytest.param(
            pod(ctr("a")),
            ("seccompProfile", f'pod or container "a" {SECCOMP_MUST}'),
            id="no explicit seccomp",
        ),
        pytest.param(pod(ctr("a"), os={"name": "windows"}), None, id="windows pod"),
        pytest.param(
            pod(ctr("a"), os={"name": "linux"}),
            ("seccompProfile", f'pod or container "a" {SECCOMP_MUST}'),
            id="linux pod",
        ),
        pytest.param(
            pod(*SECCOMP_CONTAINERS[:2], *SECCOMP_CONTAINERS[4:]),
            ("seccompProfile", f'pod or containers "a", "b" {SECCOMP_MUST}'),
            id="pod nil, container fallthrough",
        ),
        pytest.param(pod(ctr("a"), securityContext=seccomp("Localhost")), None, id="pod-level"),
    ],
)
def test_seccomp_profile_restricted(spec: Json, expected: podjson.Result) -> None:
    assert run(restricted.seccomp_profile_restricted, spec) == expected


# --- sysctls (1.37), windowsHostProcess ---

SAFE_SYSCTLS = [
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
]  # fmt: skip


def sysctl_spec(*names: str) -> Json:
    return {"securityContext": {"sysctls": [{"name": n, "value": "1"} for n in names]}}


def test_sysctls() -> None:
    assert run(baseline.sysctls, sysctl_spec("a", "b")) == ("forbidden sysctls", "a, b")
    assert run(baseline.sysctls, sysctl_spec(*SAFE_SYSCTLS)) is None


def test_windows_host_process() -> None:
    def host_process(value: bool | None) -> Json:
        return {"windowsOptions": {} if value is None else {"hostProcess": value}}

    spec = pod(
        ctr("a"),
        ctr("b", {}),
        ctr("c", host_process(None)),
        ctr("d", host_process(False)),
        ctr("e", host_process(True)),
        ctr("f", host_process(True)),
        securityContext=host_process(True),
    )
    assert run(baseline.windows_host_process, spec) == (
        "hostProcess",
        'pod and containers "e", "f" must not set securityContext.windowsOptions.hostProcess=true',
    )


# --- the registry: order, overrides, levels ---

EVERYTHING_WRONG_METADATA = {"annotations": {APPARMOR + "a": "unconfined"}}
EVERYTHING_WRONG = {
    "hostNetwork": True,
    "hostPID": True,
    "securityContext": {
        "appArmorProfile": {"type": "Unconfined"},
        "seLinuxOptions": {"type": "spc_t"},
        "seccompProfile": {"type": "Unconfined"},
        "sysctls": [{"name": "kernel.msgmax", "value": "1"}],
        "windowsOptions": {"hostProcess": True},
        "runAsUser": 0,
        "runAsNonRoot": False,
    },
    "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
    "initContainers": [{"name": "init", "image": "i"}],
    "containers": [
        {
            "name": "a",
            "image": "i",
            "ports": [{"containerPort": 80, "hostPort": 80}],
            "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}},
            "securityContext": {
                "privileged": True,
                "procMount": "Unmasked",
                "capabilities": {"add": ["SYS_ADMIN"]},
            },
        }
    ],
}
APPARMOR_DETAIL = (
    'pod and annotation must not set AppArmor profile type to "Unconfined", '
    f'"{APPARMOR}a="unconfined""'
)
# The text of pod-security-admission v0.37.2 for this pod, as its Go code prints it.
RESTRICTED_MESSAGE = (
    f"forbidden AppArmor profiles ({APPARMOR_DETAIL}), "
    "host namespaces (hostNetwork=true, hostPID=true), "
    'hostPort (container "a" uses hostPort 80), '
    'probe or lifecycle host (container "a" uses probe or lifecycle host "10.0.0.1"), '
    'privileged (container "a" must not set securityContext.privileged=true), '
    'seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: type "spc_t"), '
    "forbidden sysctls (kernel.msgmax), "
    "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true), "
    'allowPrivilegeEscalation != false (containers "init", "a" must set '
    "securityContext.allowPrivilegeEscalation=false), "
    f'unrestricted capabilities (containers "init", "a" {DROP_ALL}; container "a" must not '
    'include "SYS_ADMIN" in securityContext.capabilities.add), '
    'procMount (container "a" must not set securityContext.procMount to "Unmasked"), '
    'restricted volume types (volume "root" uses restricted volume type "hostPath"), '
    "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false), "
    "runAsUser=0 (pod must not set runAsUser=0), "
    'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'
)


def test_restricted_message_is_the_api_servers() -> None:
    found = check_pod(EVERYTHING_WRONG_METADATA, EVERYTHING_WRONG, Level.RESTRICTED)
    assert ", ".join(map(str, found)) == RESTRICTED_MESSAGE


def test_baseline_order_and_overrides() -> None:
    found = check_pod(EVERYTHING_WRONG_METADATA, EVERYTHING_WRONG, Level.BASELINE)
    assert [v.reason for v in found] == [
        "forbidden AppArmor profiles",
        "non-default capabilities",
        "host namespaces",
        "hostPath volumes",
        "hostPort",
        "probe or lifecycle host",
        "privileged",
        "procMount",
        "seLinuxOptions",
        "seccompProfile",
        "forbidden sysctls",
        "hostProcess",
    ]
    assert found[7] == Violation(
        "procMount", 'container "a" must not set securityContext.procMount to "Unmasked"'
    )


def test_privileged_level_checks_nothing() -> None:
    assert check_pod(EVERYTHING_WRONG_METADATA, EVERYTHING_WRONG, Level.PRIVILEGED) == []


def test_user_namespace_relaxes_baseline_proc_mount_but_not_restricted() -> None:
    spec = pod(ctr("a", {"procMount": "Unmasked"}), hostUsers=False)
    assert check_pod({}, spec, Level.BASELINE) == []
    assert "procMount" in [v.reason for v in check_pod({}, spec, Level.RESTRICTED)]


RESTRICTED_OK = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "app",
            "image": "i",
            "ports": [{"containerPort": 8080}],
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            },
        }
    ],
    "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}],
}


@pytest.mark.parametrize("level", list(Level))
def test_compliant_pod_passes_every_level(level: Level) -> None:
    assert (
        check_pod({"annotations": {APPARMOR + "app": "runtime/default"}}, RESTRICTED_OK, level)
        == []
    )


def test_violation_text() -> None:
    assert (
        str(Violation("host namespaces", "hostNetwork=true"))
        == "host namespaces (hostNetwork=true)"
    )
    assert str(Violation("privileged", "")) == "privileged"


def test_containers_are_visited_like_go() -> None:
    spec = {
        "ephemeralContainers": [{"name": "debug", "securityContext": {"privileged": True}}],
        "containers": [{"name": "app", "securityContext": {"privileged": True}}],
        "initContainers": [{"name": "init", "securityContext": {"privileged": True}}],
    }
    assert check_pod({}, spec, Level.BASELINE) == [
        Violation(
            "privileged",
            'containers "init", "app", "debug" must not set securityContext.privileged=true',
        )
    ]


# --- pod_template ---

TEMPLATE = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "a"}]}}


@pytest.mark.parametrize(
    ("group", "kind", "body"),
    [
        ("", "Pod", TEMPLATE),
        ("", "PodTemplate", {"template": TEMPLATE}),
        ("", "ReplicationController", {"spec": {"template": TEMPLATE}}),
        ("apps", "Deployment", {"spec": {"template": TEMPLATE}}),
        ("apps", "ReplicaSet", {"spec": {"template": TEMPLATE}}),
        ("apps", "StatefulSet", {"spec": {"template": TEMPLATE}}),
        ("apps", "DaemonSet", {"spec": {"template": TEMPLATE}}),
        ("batch", "Job", {"spec": {"template": TEMPLATE}}),
        ("batch", "CronJob", {"spec": {"jobTemplate": {"spec": {"template": TEMPLATE}}}}),
    ],
)
def test_pod_template(group: str, kind: str, body: Json) -> None:
    assert pod_template(group, kind, {"metadata": {"name": "obj"}, **body}) == (
        TEMPLATE["metadata"],
        TEMPLATE["spec"],
    )


@pytest.mark.parametrize(
    ("group", "kind", "body"),
    [
        ("", "ConfigMap", {"spec": {"template": TEMPLATE}}),
        ("", "Deployment", {"spec": {"template": TEMPLATE}}),
        ("apps", "Pod", TEMPLATE),
        ("batch", "CronJob", {"spec": {"template": TEMPLATE}}),
        ("apps", "Deployment", {}),
        ("apps", "Deployment", {"spec": None}),
        ("apps", "Deployment", {"spec": "x"}),
        ("apps", "Deployment", {"spec": {"template": []}}),
        ("apps", "Deployment", {"spec": {"template": {"metadata": {}}}}),
        ("apps", "Deployment", {"spec": {"template": {"spec": ["x"]}}}),
        ("batch", "CronJob", {"spec": {"jobTemplate": "x"}}),
        ("", "Pod", {"metadata": {}}),
        ("", "Pod", {"spec": 5}),
    ],
)
def test_pod_template_none(group: str, kind: str, body: Json) -> None:
    assert pod_template(group, kind, body) is None


@pytest.mark.parametrize("metadata", [None, "x", [1], 5])
def test_pod_template_mistyped_metadata_is_empty(metadata: object) -> None:
    body = {"spec": {"template": {"metadata": metadata, "spec": {}}}}
    assert pod_template("apps", "Deployment", body) == ({}, {})


# --- hostile input ---


def messages(spec: object, level: Level = Level.RESTRICTED, metadata: object = None) -> list[str]:
    return [str(v) for v in check_pod(metadata, spec, level)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec",
    [
        None,
        "x",
        5,
        [],
        [1, {}],
        {"containers": "x"},
        {"containers": 5},
        {"containers": [None, 5, "s", [], {"securityContext": "x"}]},
        {"containers": [{"securityContext": {"capabilities": 5, "seccompProfile": []}}]},
        {"containers": [{"ports": {"hostPort": {}}, "lifecycle": [], "livenessProbe": "x"}]},
        {"containers": [{"livenessProbe": {"httpGet": "x", "tcpSocket": {"host": []}}}]},
        {"securityContext": [], "volumes": "x", "os": "windows", "hostUsers": "false"},
        {"securityContext": {"sysctls": {"name": 5}, "seLinuxOptions": 1, "windowsOptions": 1}},
        {"volumes": [None, 1, {"name": {"x": [1]}}]},
        {"initContainers": {"name": []}, "ephemeralContainers": [[[]]]},
        {"containers": [{"name": float("nan"), "securityContext": {"runAsUser": float("inf")}}]},
    ],
)
@pytest.mark.parametrize("level", list(Level))
def test_wrong_types_never_raise(spec: object, level: Level) -> None:
    found = check_pod({"annotations": [1]}, spec, level)  # type: ignore[arg-type]
    assert all(v.reason and isinstance(v.detail, str) for v in found)


def garbage(rng: random.Random, depth: int = 0) -> object:
    choices: list[object] = [None, True, False, 0, -1, 1.5, "", "ALL", "windows", "x\udc00"]
    if depth < 3:
        keys = ["name", "type", "host", "hostPort", "securityContext", "capabilities", "add"]
        choices.append(
            {rng.choice(keys): garbage(rng, depth + 1) for _ in range(rng.randint(0, 3))}
        )
        choices.append([garbage(rng, depth + 1) for _ in range(rng.randint(0, 3))])
    return rng.choice(choices)


SPEC_PATHS = [
    ("hostNetwork",), ("hostUsers",), ("os",), ("os", "name"), ("volumes",),
    ("securityContext",), ("securityContext", "sysctls"), ("securityContext", "runAsUser"),
    ("securityContext", "seccompProfile"), ("securityContext", "seLinuxOptions", "user"),
    ("containers",), ("initContainers",), ("ephemeralContainers",),
]  # fmt: skip
CONTAINER_PATHS = [
    ("name",), ("ports",), ("securityContext",), ("securityContext", "capabilities", "drop"),
    ("securityContext", "capabilities", "add"), ("securityContext", "runAsNonRoot"),
    ("securityContext", "procMount"), ("securityContext", "appArmorProfile", "type"),
    ("securityContext", "windowsOptions", "hostProcess"), ("livenessProbe", "httpGet", "host"),
    ("lifecycle", "preStop"), ("securityContext", "allowPrivilegeEscalation"),
]  # fmt: skip


def put(target: Json, path: tuple[str, ...], value: object) -> None:
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value


def test_random_garbage_never_raises() -> None:
    rng = random.Random(20240607)
    for _ in range(400):
        container: Json = {"name": "c"}
        for path in rng.sample(CONTAINER_PATHS, 4):
            put(container, path, garbage(rng))
        spec: Json = {"containers": [container]}
        for path in rng.sample(SPEC_PATHS, 4):
            put(spec, path, garbage(rng))
        metadata = {"annotations": {APPARMOR + "c": garbage(rng), "x": garbage(rng)}}
        for level in Level:
            for violation in check_pod(metadata, spec, level):
                str(violation).encode()  # valid UTF-8: no unpaired surrogate leaks through


# Each wrong type below would fail to decode in the API server; these pin how we treat it.
@pytest.mark.parametrize(
    ("spec", "level", "expected"),
    [
        pytest.param(
            {"hostNetwork": "false"},
            Level.BASELINE,
            ["host namespaces (hostNetwork=true)"],
            id="forbidden-when-true boolean of another type counts as true",
        ),
        pytest.param(
            pod(ctr("a", {"privileged": None}), ctr("b", {"privileged": "no"})),
            Level.BASELINE,
            ['privileged (container "b" must not set securityContext.privileged=true)'],
            id="privileged null is unset, a string is set",
        ),
        pytest.param(
            pod(ctr("a", {"capabilities": {"add": "SYS_ADMIN"}})),
            Level.BASELINE,
            [
                'non-default capabilities (container "a" must not include "SYS_ADMIN" in '
                "securityContext.capabilities.add)"
            ],
            id="a lone capability is still inspected",
        ),
        pytest.param(
            pod(ctr("a", {"ports": 5}), ctr("b", ports=[{"hostPort": "8080"}, {"hostPort": None}])),
            Level.BASELINE,
            ['hostPort (container "b" uses hostPort 8080)'],
            id="hostPort string counts as set, null as 0",
        ),
        pytest.param(
            {"containers": {"name": "a", "securityContext": {"privileged": True}}},
            Level.BASELINE,
            ['privileged (container "a" must not set securityContext.privileged=true)'],
            id="a lone container is still inspected",
        ),
        pytest.param(
            {"volumes": [{"name": "v", "hostPath": "/"}]},
            Level.BASELINE,
            ['hostPath volumes (volume "v")'],
            id="mistyped volume source counts as set",
        ),
        pytest.param(
            {
                "securityContext": {
                    "seccompProfile": "RuntimeDefault",
                    "seLinuxOptions": {"user": 5},
                }
            },
            Level.BASELINE,
            [
                f"seLinuxOptions (pod {SELINUX_TAIL} user may not be set)",
                'seccompProfile (pod must not set securityContext.seccompProfile.type to "")',
            ],
            id="mistyped object counts as present and empty; a number is not an empty string",
        ),
        pytest.param(
            pod(ctr("a", {"procMount": 1, "appArmorProfile": {"type": ["Localhost"]}})),
            Level.BASELINE,
            [
                'forbidden AppArmor profile (container "a" must not set AppArmor profile type to '
                '"["Localhost"]")',
                'procMount (container "a" must not set securityContext.procMount to "1")',
            ],
            id="mistyped strings are shown as JSON and never allowed",
        ),
        pytest.param(
            pod(ctr("a", {"procMount": "Unmasked"}), hostUsers="false"),
            Level.BASELINE,
            ['procMount (container "a" must not set securityContext.procMount to "Unmasked")'],
            id="only hostUsers=false relaxes",
        ),
    ],
)
def test_wrong_type_decisions(spec: Json, level: Level, expected: list[str]) -> None:
    assert messages(spec, level) == expected


RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"allowPrivilegeEscalation": "false"},
            'allowPrivilegeEscalation != false (container "a" must set '
            "securityContext.allowPrivilegeEscalation=false)",
            id="must-be-false boolean of another type",
        ),
        pytest.param(
            {"runAsNonRoot": "true"},
            'runAsNonRoot != true (container "a" must not set securityContext.runAsNonRoot=false)',
            id="must-be-true boolean of another type",
        ),
        pytest.param(
            {"capabilities": {"drop": "ALL"}},
            f'unrestricted capabilities (container "a" {DROP_ALL})',
            id="a lone ALL drops nothing",
        ),
        pytest.param(
            {"runAsUser": "1000"},
            'runAsUser=0 (container "a" must not set runAsUser=0)',
            id="runAsUser that is not an integer may be root",
        ),
        pytest.param(
            {"seccompProfile": {"type": None}},
            'seccompProfile (container "a" must not set securityContext.seccompProfile.type to "")',
            id="null string is the zero value",
        ),
    ],
)
def test_wrong_type_decisions_restricted(overrides: Json, expected: str) -> None:
    spec = pod(ctr("a", RESTRICTED_CONTAINER | overrides))
    assert messages(spec) == [expected]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            pod(ctr("a", RESTRICTED_CONTAINER | {"runAsUser": 1000.0})), [], id="integral float"
        ),
        pytest.param(
            {"containers": [None], "os": {"name": ["windows"]}},
            [
                'allowPrivilegeEscalation != false (container "" must set '
                "securityContext.allowPrivilegeEscalation=false)",
                f'unrestricted capabilities (container "" {DROP_ALL})',
                'runAsNonRoot != true (pod or container "" must set '
                "securityContext.runAsNonRoot=true)",
                f'seccompProfile (pod or container "" {SECCOMP_MUST})',
            ],
            id="null container is a zero-valued one; a mistyped os.name exempts nothing",
        ),
    ],
)
def test_wrong_type_restricted_misc(spec: Json, expected: list[str]) -> None:
    assert messages(spec) == expected


def test_mistyped_annotations() -> None:
    metadata = {"annotations": {APPARMOR + "a": 5, APPARMOR + "b": None}}
    assert messages({}, Level.BASELINE, metadata) == [
        "forbidden AppArmor profile (annotation must not set AppArmor profile type to "
        f'"{APPARMOR}a="5"")'
    ]
    assert messages({}, Level.BASELINE, {"annotations": ["x"]}) == []
    assert messages({}, Level.BASELINE, "metadata") == []
