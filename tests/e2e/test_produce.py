"""``transporter produce``, run as users run it: exit codes, live phases, queries."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.bed.harness import Agent, ControlPlane, run_produce
from tests.bed.kube import Cluster
from tests.bed.manifests import configmap_yaml, unique
from tests.bed.pki import TestPki
from transporter.security.tokens import Role


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


async def test_exit_codes_and_output(
    cp: ControlPlane, make_agent: Callable[..., Agent], cluster: Cluster, tmp_path: Path
) -> None:
    agent = make_agent(cluster)
    await agent.start(cp.agent_url)
    good = write(tmp_path, "good.yaml", configmap_yaml(unique("cm"), None, a="1"))
    args = ("k8s", "--agent", agent.agent_id, "--manifest", str(good), "--wait")
    done = await run_produce(cp, *args)
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    for word in (
        "accepted",
        "received",
        "validating",
        "applying",
        "verifying",
        "completed",
        "created",
    ):
        assert word in out

    bad = write(
        tmp_path, "bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: BAD_NAME\n"
    )
    failed = await run_produce(
        cp, "k8s", "--agent", agent.agent_id, "--manifest", str(bad), "--wait", "-o", "json"
    )
    assert failed.returncode == 1
    result = json.loads(failed.stdout)
    assert result["state"] == "failed"
    assert "BAD_NAME" in result["resources"][0]["message"]  # the API server's own words

    missing = await run_produce(
        cp, "k8s", "--agent", agent.agent_id, "--manifest", str(tmp_path / "nope.yaml")
    )
    assert missing.returncode == 2
    assert b"no such file" in missing.stderr

    invalid = write(tmp_path, "invalid.yaml", "kind: [")
    refused = await run_produce(cp, "k8s", "--agent", agent.agent_id, "--manifest", str(invalid))
    assert refused.returncode == 2
    assert b"not valid YAML" in refused.stderr

    offline = await run_produce(
        cp, "k8s", "--agent", "nobody-home", "--manifest", str(good), "--wait", "--timeout", "1"
    )
    assert offline.returncode == 1
    assert b"never registered" in offline.stdout
    assert b"not finished after 1 s" in offline.stdout

    events = await run_produce(cp, "get", "events", "-o", "json")
    assert events.returncode == 0
    assert len(json.loads(events.stdout)) == 3
    agents = await run_produce(cp, "get", "agents")
    assert agents.returncode == 0
    assert agent.agent_id in agents.stdout.decode()
    assert "connected" in agents.stdout.decode()
    first_id = json.loads(events.stdout)[-1]["event"]["id"]
    one = await run_produce(cp, "get", "event", first_id)
    assert one.returncode == 0
    assert "timeline" in one.stdout.decode()


async def test_the_producer_sends_its_token_and_says_what_is_missing(
    cp: ControlPlane, tmp_path: Path
) -> None:
    """No cluster needed: the events wait for an agent that never connects."""
    manifest = str(write(tmp_path, "cm.yaml", configmap_yaml(unique("cm"), None, a="1")))
    submit = ("k8s", "--agent", "team-a-1", "--manifest", manifest)

    none = await run_produce(cp, *submit, token="")
    assert none.returncode == 2
    assert b"refused: 401 unauthorized: this endpoint needs a token" in none.stderr
    assert b"(the token comes from --token or TRANSPORTER_TOKEN)" in none.stderr

    reader = await cp.new_token("viewer", Role.READ, ("team-a-*",))
    read_only = await run_produce(cp, *submit, token=reader)
    assert read_only.returncode == 2
    assert b"403 forbidden: this endpoint needs a token with role submit or admin" in (
        read_only.stderr
    )
    submitter = await cp.new_token("ci", Role.SUBMIT, ("team-a-*",))
    elsewhere = await run_produce(
        cp, "k8s", "--agent", "prod-1", "--manifest", manifest, token=submitter
    )
    assert elsewhere.returncode == 2
    assert b"not agent 'prod-1'" in elsewhere.stderr

    # The flag works as the variable does, and wins over it.
    flagged = await run_produce(cp, *submit, "--token", submitter, "-o", "json", token="")
    assert flagged.returncode == 0, flagged.stderr
    event_id = json.loads(flagged.stdout)["event_id"]
    shown = await run_produce(cp, "get", "event", event_id, "-o", "json", token=reader)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["event"]["created_by"] == "token:ci"
    listed = await run_produce(cp, "get", "events", "-o", "json", "--token", reader, token="junk")
    assert [e["event"]["id"] for e in json.loads(listed.stdout)] == [event_id]


async def test_a_control_plane_whose_certificate_is_not_trusted_is_not_sent_a_token(
    cp: ControlPlane, tmp_path: Path
) -> None:
    """The producer verifies the API's certificate against the CA it is given: another CA's
    control plane (or a man in the middle) gets nothing, and the user is told what to give."""
    other = TestPki.create(tmp_path / "other-ca")
    done = await run_produce(cp, "get", "agents", ca=other.ca_cert)
    assert done.returncode == 1
    error = done.stderr.decode()
    assert "certificate is not trusted" in error and "--ca-cert" in error, error
    assert "Traceback" not in error
    assert (await run_produce(cp, "get", "agents")).returncode == 0
