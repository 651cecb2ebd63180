"""The Helm charts (``helm/``), checked with helm at its pinned version: ``lint --strict`` and
``template`` of every example values file, the values schema refusing what it should, what
every rendered pod runs with, and a server-side dry run of every rendered object against a
real API server."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.bed.helm import (
    AGENT_CHART,
    CP_CHART,
    HelmFailed,
    admin_client,
    ensure_namespace,
    examples,
    helm,
    install_order,
    named,
    pod_specs,
    render,
    server_side_apply,
)
from tests.bed.kube import Cluster
from transporter import __version__
from transporter.agent.policy.file import parse_policy
from transporter.agent.policy.model import ALLOWANCES
from transporter.cli import agent as agent_cli
from transporter.cli import cp as cp_cli

CHARTS = (CP_CHART, AGENT_CHART)
EXAMPLES = [
    pytest.param(chart, values, id=f"{chart.name}-{values.stem}")
    for chart in CHARTS
    for values in examples(chart)
]
NOT_IN_THE_BED = {("monitoring.coreos.com/v1", "ServiceMonitor")}
"""Kinds whose CRD (Prometheus Operator's) the test bed does not serve: rendered and checked
here, but not dry-run."""
AGENT_URL = "wss://cp.example.com:8443/ws"


def test_each_chart_has_examples_and_the_versions_of_the_code() -> None:
    for chart in CHARTS:
        assert len(examples(chart)) >= 2, chart
        meta = helm("show", "chart", str(chart))
        assert f'appVersion: "{__version__}"' in meta or f"appVersion: {__version__}" in meta
        assert "licenses: MIT" in meta


@pytest.mark.parametrize(("chart", "values"), EXAMPLES)
def test_each_example_lints_strict_and_renders(chart: Path, values: Path) -> None:
    out = helm("lint", "--strict", str(chart), "-f", str(values), "--namespace", "transporter")
    assert "0 chart(s) failed" in out
    objects = render(chart, values)
    assert named(objects, "Deployment"), "every example runs its role"


def _security(container: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = container["securityContext"]
    return context


@pytest.mark.parametrize(("chart", "values"), EXAMPLES)
def test_every_rendered_pod_is_locked_down(chart: Path, values: Path) -> None:
    """Non-root 65532, read-only root, no privilege escalation, no capabilities, the runtime's
    seccomp profile; the one file unpacks into an emptyDir /tmp named to it explicitly."""
    for spec in pod_specs(render(chart, values)):
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in spec["containers"]:
            context = _security(container)
            assert context["runAsUser"] == 65532
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            assert container["resources"]["requests"] and container["resources"]["limits"]
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]
            env = {item["name"]: item.get("value") for item in container["env"]}
            assert env["TRANSPORTER_UNPACK_DIR"].startswith("/tmp/")


LAUNCHER_VARIABLES = {"TRANSPORTER_UNPACK_DIR"}
"""Read by the single file's launcher (packaging/launcher), not by a command's flags."""
COMMAND_VARIABLES = {
    "cp": {flag.env for flag in cp_cli.FLAGS},
    "agent": {flag.env for flag in agent_cli.FLAGS},
}


@pytest.mark.parametrize(("chart", "values"), EXAMPLES)
def test_every_variable_the_charts_set_is_one_the_command_reads(chart: Path, values: Path) -> None:
    """A misspelt TRANSPORTER_* variable would be ignored, its setting silently lost."""
    for spec in pod_specs(render(chart, values)):
        for container in spec["containers"]:
            known = COMMAND_VARIABLES[container["args"][0]] | LAUNCHER_VARIABLES
            names = {item["name"] for item in container["env"]}
            assert {name for name in names if name.startswith("TRANSPORTER_")} <= known


def test_the_control_plane_probes_its_health_over_https() -> None:
    (spec,) = pod_specs(render(CP_CHART))
    (container,) = spec["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
        assert container[probe]["httpGet"]["port"] == "api"
    assert spec["automountServiceAccountToken"] is False  # it never talks to Kubernetes
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["TRANSPORTER_LISTEN"] == f"0.0.0.0:{ports['api']}"
    assert env["TRANSPORTER_AGENT_LISTEN"] == f"0.0.0.0:{ports['agent-channel']}"
    assert "transporter-cp-agent.transporter.svc" in env["TRANSPORTER_TLS_SAN"].split(",")


def test_the_redis_url_comes_from_a_secret_never_the_pod_spec() -> None:
    objects = render(CP_CHART, CP_CHART / "examples" / "redis.yaml")
    (spec,) = pod_specs(objects)
    (container,) = spec["containers"]
    (store,) = [item for item in container["env"] if item["name"] == "TRANSPORTER_STORE"]
    assert store == {
        "name": "TRANSPORTER_STORE",
        "valueFrom": {"secretKeyRef": {"name": "transporter-redis", "key": "url"}},
    }
    assert not named(objects, "PersistentVolumeClaim")
    assert "redis://" not in json.dumps(objects)


def test_the_agent_channel_can_face_the_agents_clusters() -> None:
    lb = render(CP_CHART, CP_CHART / "examples" / "loadbalancer.yaml")
    services = {obj["metadata"]["name"]: obj["spec"] for obj in named(lb, "Service")}
    assert services["transporter-cp-agent"]["type"] == "LoadBalancer"
    assert services["transporter-cp-api"]["type"] == "ClusterIP"
    (spec,) = pod_specs(lb)
    env = {item["name"]: item.get("value") for item in spec["containers"][0]["env"]}
    assert "transporter.example.com" in env["TRANSPORTER_TLS_SAN"].split(",")
    nodeport = render(CP_CHART, CP_CHART / "examples" / "nodeport.yaml")
    (agent,) = [s for s in named(nodeport, "Service") if s["metadata"]["name"].endswith("-agent")]
    assert agent["spec"]["ports"][0]["nodePort"] == 30443


def test_the_service_monitors_are_rendered_only_when_enabled() -> None:
    assert not named(render(CP_CHART), "ServiceMonitor")
    assert not named(render(AGENT_CHART, sets={"cpUrl": AGENT_URL}), "ServiceMonitor")
    (cp,) = named(render(CP_CHART, CP_CHART / "examples" / "loadbalancer.yaml"), "ServiceMonitor")
    (endpoint,) = cp["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["scheme"]) == ("api", "/metrics", "https")
    assert endpoint["authorization"]["credentials"]["name"] == "transporter-metrics-token"
    agent_objects = render(AGENT_CHART, AGENT_CHART / "examples" / "team-namespaces.yaml")
    (agent,) = named(agent_objects, "ServiceMonitor")
    assert agent["spec"]["endpoints"][0]["port"] == "metrics"
    (spec,) = pod_specs(agent_objects)
    env = {item["name"]: item.get("value") for item in spec["containers"][0]["env"]}
    assert env["TRANSPORTER_METRICS_LISTEN"] == "0.0.0.0:9090"


@pytest.mark.parametrize("values", examples(AGENT_CHART), ids=lambda p: p.stem)
def test_the_agents_policy_is_one_the_agent_accepts(values: Path) -> None:
    objects = render(AGENT_CHART, values)
    (config_map,) = named(objects, "ConfigMap")
    parse_policy(config_map["data"]["policy.yaml"], "the chart's policy")
    (spec,) = pod_specs(objects)
    env = {item["name"]: item.get("value") for item in spec["containers"][0]["env"]}
    assert env["TRANSPORTER_POLICY"] == "/etc/transporter/policy/policy.yaml"
    assert env["TRANSPORTER_BUNDLE"] == "/etc/transporter/bundle"
    assert "KUBECONFIG" not in env and "TRANSPORTER_KUBECONFIG" not in env


def test_the_schema_knows_every_allowance_of_the_policy() -> None:
    schema = json.loads((AGENT_CHART / "values.schema.json").read_text())
    allow = schema["properties"]["policy"]["properties"]["allow"]["items"]["enum"]
    assert tuple(allow) == tuple(ALLOWANCES)


REFUSED = [
    pytest.param(CP_CHART, ["--set", "replicas=3"], "'replicas' not allowed", id="cp-unknown-key"),
    pytest.param(CP_CHART, ["--set", "store.type=etcd"], "at '/store/type'", id="cp-store"),
    pytest.param(
        CP_CHART, ["--set", "api.port=80"], "at '/api/port': minimum", id="cp-privileged-port"
    ),
    pytest.param(
        CP_CHART, ["--set", "store.type=redis"], "store.redis.existingSecret", id="cp-redis"
    ),
    pytest.param(
        CP_CHART,
        ["--set", "api.port=9000", "--set", "agentChannel.port=9000"],
        "api.port and agentChannel.port are the same",
        id="cp-one-port-for-both",
    ),
    pytest.param(
        AGENT_CHART, ["--set", "cpUrl=ws://cp:8443/ws"], "at '/cpUrl'", id="agent-plain-ws"
    ),
    pytest.param(AGENT_CHART, [], "cpUrl is required", id="agent-no-cp-url"),
    pytest.param(
        AGENT_CHART,
        ["--set", f"cpUrl={AGENT_URL}", "--set", "policy.allow[0]=everything"],
        "at '/policy/allow/0'",
        id="agent-unknown-allowance",
    ),
    pytest.param(
        AGENT_CHART,
        ["--set", f"cpUrl={AGENT_URL}", "--set", "policy.namespaces[0]=team-*"],
        "RBAC grants namespaces by name",
        id="agent-pattern-without-all-namespaces",
    ),
    pytest.param(
        AGENT_CHART,
        ["--set", f"cpUrl={AGENT_URL}", "--set", "policy.namespaces[0]=transporter"],
        "the release's namespace",
        id="agent-own-namespace",
    ),
]


@pytest.mark.parametrize(("chart", "args", "said"), REFUSED)
def test_bad_values_are_refused_saying_which(chart: Path, args: list[str], said: str) -> None:
    with pytest.raises(HelmFailed) as refused:
        helm("template", "t", str(chart), "--namespace", "transporter", *args)
    assert said in str(refused.value)


@pytest.mark.parametrize(("chart", "values"), EXAMPLES)
def test_every_rendered_object_passes_a_server_side_dry_run(
    chart: Path, values: Path, cluster: Cluster
) -> None:
    """What ``helm install`` would send, checked by a real API server (its schemas, defaulting
    and validation, RBAC's own rules included) without storing it. The release's namespace
    and the Namespaces the chart makes are made for real first: nothing namespaced can be
    dry-run in a namespace that does not exist."""
    namespace = f"helm-{chart.name.removeprefix('transporter-')}-{values.stem}"[:63]
    objects = install_order(render(chart, values, namespace=namespace))
    checked = []
    with admin_client(cluster) as dynamic:
        ensure_namespace(dynamic, namespace)
        for obj in named(objects, "Namespace"):
            server_side_apply(dynamic, obj, dry_run=False)
        for obj in objects:
            if (obj["apiVersion"], obj["kind"]) in NOT_IN_THE_BED:
                continue
            answer = server_side_apply(dynamic, obj, dry_run=True)
            assert answer["metadata"]["name"] == obj["metadata"]["name"]
            checked.append(obj["kind"])
    assert "Deployment" in checked and "ServiceAccount" in checked


def test_make_charts_lints_renders_and_packages_both(tmp_path: Path) -> None:
    """``helm/check`` (``make charts``, and ``make dist`` through it): every example, then a
    package of each chart for dist/ (what packaging/checksums lists)."""
    done = subprocess.run(
        [str(CP_CHART.parent / "check"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for chart, values in ((c, v) for c in CHARTS for v in examples(c)):
        assert f"{chart.name} with examples/{values.name}: lint --strict and template ok" in (
            done.stdout
        )
    packaged = sorted(path.name for path in tmp_path.glob("*.tgz"))
    assert packaged == [f"transporter-agent-{__version__}.tgz", f"transporter-cp-{__version__}.tgz"]
    shown = helm("show", "values", str(tmp_path / packaged[0]))
    assert "cpUrl" in shown
    listed = subprocess.run(
        ["tar", "-tzf", str(tmp_path / packaged[0])], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "transporter-agent/values.schema.json" in listed
    assert not [name for name in listed if "/examples/" in name]


@pytest.mark.parametrize("chart", CHARTS, ids=lambda p: p.name)
def test_the_longest_release_name_gives_services_names_that_are_dns_labels(chart: Path) -> None:
    release = "r" * 53  # the longest name helm gives a release
    # an example of each chart that renders every Service it has
    values = (
        chart / "examples" / ("team-namespaces.yaml" if chart == AGENT_CHART else "default.yaml")
    )
    services = named(render(chart, values, release=release), "Service")
    assert services
    for service in services:
        name = service["metadata"]["name"]
        assert re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name), name
    if chart == CP_CHART:
        (spec,) = pod_specs(render(chart, values, release=release))
        env = {item["name"]: item.get("value") for item in spec["containers"][0]["env"]}
        names = {service["metadata"]["name"] for service in services}
        assert names <= set(env["TRANSPORTER_TLS_SAN"].split(","))


INJECTED = "x\n      hostNetwork: true\n      hostPID: true\n          command: [sh]"
"""A value that, written into the chart's YAML unquoted, adds keys to the pod spec."""


@pytest.mark.parametrize(
    ("chart", "key"),
    [
        (CP_CHART, "priorityClassName"),
        (CP_CHART, "image.tag"),
        (CP_CHART, "image.repository"),
        (AGENT_CHART, "priorityClassName"),
        (AGENT_CHART, "image.tag"),
    ],
)
def test_a_value_cannot_add_keys_to_the_pod(chart: Path, key: str) -> None:
    values = chart / "examples" / "default.yaml"
    sets = {} if chart == CP_CHART else {"cpUrl": AGENT_URL}
    args = [
        "template",
        chart.name,
        str(chart),
        "-f",
        str(values),
        "--set-string",
        f"{key}={INJECTED}",
    ]
    for name, value in sets.items():
        args += ["--set", f"{name}={value}"]
    objects = [doc for doc in yaml.safe_load_all(helm(*args)) if doc]
    (spec,) = pod_specs(objects)
    assert "hostNetwork" not in spec and "hostPID" not in spec
    assert "command" not in spec["containers"][0]


def test_the_service_and_secret_keys_of_the_control_plane_stay_strings() -> None:
    sets = {
        "agentChannel.service.type": "LoadBalancer",
        "agentChannel.service.loadBalancerIP": "1.2.3.4\n  externalIPs: [6.6.6.6]",
        "store.type": "redis",
        "store.redis.existingSecret": "redis",
        "store.redis.key": "url\n                  optional: true",
    }
    args = ["template", "cp", str(CP_CHART), "-f", str(CP_CHART / "examples" / "default.yaml")]
    for name, value in sets.items():
        args += ["--set-string", f"{name}={value}"]
    objects = [doc for doc in yaml.safe_load_all(helm(*args)) if doc]
    (agent,) = [s for s in named(objects, "Service") if s["metadata"]["name"].endswith("-agent")]
    assert "externalIPs" not in agent["spec"]
    (spec,) = pod_specs(objects)
    (store,) = [e for e in spec["containers"][0]["env"] if e["name"] == "TRANSPORTER_STORE"]
    assert store["valueFrom"]["secretKeyRef"] == {
        "name": "redis",
        "key": "url\n                  optional: true",
    }
