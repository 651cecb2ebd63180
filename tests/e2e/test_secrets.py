"""Secrets' values are applied, and shown nowhere: not in the API's answers, the audit log, the
producer's output, nor the logs of the control plane and the agent (every logger, at DEBUG).

One event applies Secrets (``data`` and ``stringData``, one inside a ``List``); another holds
Secrets the API server refuses with errors that quote the submitted values. Then every answer
and every line of output of the run is searched for the values.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml
from kubernetes import client as k8s

from tests.bed.harness import Agent, ControlPlane, read, run_produce
from tests.bed.kube import Cluster
from tests.bed.manifests import configmap_yaml, namespace_yaml, unique
from transporter.security.scrub import REDACTED

MARK = "s3cr3t-VALUE-42"
DATA = f"{MARK}-data"
STRING = f"{MARK}-string"
LISTED = f"{MARK}-listed"
NUMBER = 98765432123
MAPPED = f"{MARK}-mapped"
SEQUENCE = f"{MARK}-sequence"
NOT_BASE64 = f"{MARK}-not-base64!"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


FORBIDDEN = [
    MARK,
    str(NUMBER),
    *(b64(value) for value in (DATA, STRING, LISTED, MAPPED, SEQUENCE)),
]
"""Every value as submitted (all hold MARK) and as the API server stores or echoes them."""


def good_manifests(ns: str) -> list[str]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": ns},
        "data": {"token": b64(DATA)},
        "stringData": {"password": STRING},
    }
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "listed", "namespace": ns},
                "stringData": {"key": LISTED},
            }
        ],
    }
    return [
        namespace_yaml(ns) + "---\n" + yaml.safe_dump(secret),  # multi-document
        yaml.safe_dump(listed),
        configmap_yaml("plain", ns, colour="blue"),
    ]


def bad_manifests(ns: str) -> list[str]:
    """Secrets the API server refuses; it quotes the values of the first three in its errors."""

    def secret(name: str, **fields: Any) -> str:
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, **fields}
        body["metadata"]["namespace"] = ns
        return yaml.safe_dump(body)

    return [
        secret("number", stringData={"pin": NUMBER}),
        secret("mapped", stringData={"nested": {"x": MAPPED}}),
        secret("sequence", data=[SEQUENCE]),
        secret("not-base64", data={"token": NOT_BASE64}),
    ]


def leaks(text: str) -> list[str]:
    """Forbidden values in ``text``, also where a table folded a value over two lines."""
    squashed = re.sub(r"\s+", "", text)
    return [value for value in FORBIDDEN if value in text or value in squashed]


async def produce(cp: ControlPlane, *args: str) -> subprocess.CompletedProcess[bytes]:
    # tables wide enough not to fold messages
    return await run_produce(cp, *args, env={"COLUMNS": "400"})


async def get(cp: ControlPlane, path: str) -> str:
    """The API's answer as it is sent, not decoded by our client."""
    assert cp.bound is not None
    url = cp.bound.api_url + path

    request = urllib.request.Request(url, headers=cp.headers)

    def call() -> str:
        with urllib.request.urlopen(request, timeout=30, context=cp.api_context) as answer:
            return str(answer.read().decode())

    return await trio.to_thread.run_sync(call)


def write(folder: Path, manifests: list[str], prefix: str) -> list[str]:
    args: list[str] = []
    for number, text in enumerate(manifests, start=1):
        path = folder / f"{prefix}-{number}.yaml"
        path.write_text(text)
        args += ["--manifest", str(path)]
    return args


async def test_secret_values_appear_nowhere(
    cp: ControlPlane,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger of the control plane and the agent
    agent = make_agent(cluster)
    await agent.start(cp.agent_url)
    await agent.connected()
    ns = unique("secrets")
    outputs: dict[str, str] = {}

    def keep(name: str, done: subprocess.CompletedProcess[bytes]) -> str:
        outputs[name] = done.stdout.decode() + done.stderr.decode()
        return done.stdout.decode()

    # Applied: followed live, as text.
    good = write(tmp_path, good_manifests(ns), "good")
    done = await produce(cp, "k8s", "--agent", agent.agent_id, *good, "--wait")
    text = keep("produce k8s --wait", done)
    assert done.returncode == 0, text + done.stderr.decode()
    good_id = re.search(r"event (\S+) accepted", text).group(1)  # type: ignore[union-attr]
    assert "created" in text

    # Refused by the API server, which quotes the values: followed live, as JSON.
    bad = write(tmp_path, bad_manifests(ns), "bad")
    done = await produce(cp, "k8s", "--agent", agent.agent_id, *bad, "--wait", "-o", "json")
    failed = json.loads(keep("produce k8s --wait -o json", done))
    assert done.returncode == 1
    assert failed["state"] == "failed"
    messages = {r["name"]: r["message"] for r in failed["resources"]}
    assert set(messages) == {"number", "mapped", "sequence", "not-base64"}
    for name in ("number", "mapped", "sequence"):  # the echo was there, and was scrubbed
        assert messages[name].endswith(f"got {REDACTED}"), messages[name]
    assert "illegal base64" in messages["not-base64"]
    bad_id = failed["event"]["id"]

    # The Secrets are in the cluster, with their real values.
    def secret(name: str) -> Callable[[k8s.ApiClient], Any]:
        return lambda api: k8s.CoreV1Api(api).read_namespaced_secret(name, ns)

    creds = await read(cluster, secret("creds"))
    decoded = {k: base64.b64decode(v).decode() for k, v in creds.data.items()}
    assert decoded == {"token": DATA, "password": STRING}
    listed = await read(cluster, secret("listed"))
    assert base64.b64decode(listed.data["key"]).decode() == LISTED

    # The API's answers: the events with their manifests, the list, the audit log.
    answers = {
        f"GET /events/{good_id}": await get(cp, f"/events/{good_id}"),
        f"GET /events/{bad_id}": await get(cp, f"/events/{bad_id}"),
        "GET /events": await get(cp, "/events"),
        "GET /audit": await get(cp, "/audit"),
    }
    shown = json.loads(answers[f"GET /events/{good_id}"])["event"]["payload"]["manifests"]
    namespace, secret_doc = yaml.safe_load_all(shown[0])
    assert namespace["metadata"]["name"] == ns
    assert secret_doc["data"] == {"token": REDACTED}
    assert secret_doc["stringData"] == {"password": REDACTED}
    assert yaml.safe_load(shown[1])["items"][0]["stringData"] == {"key": REDACTED}
    assert shown[2] == good_manifests(ns)[2]  # anything else exactly as submitted
    assert REDACTED in answers["GET /audit"]  # the failure's message, scrubbed

    # The producer's queries, as text and JSON.
    for args in (
        ("get", "event", good_id),
        ("get", "event", bad_id),
        ("get", "event", bad_id, "-o", "json"),
        ("get", "events"),
        ("get", "events", "-o", "json"),
    ):
        done = await produce(cp, *args)
        keep("produce " + " ".join(args), done)
        assert done.returncode == 0, done.stderr.decode()

    outputs.update(answers)
    outputs["logs of the control plane and the agent"] = caplog.text
    assert "registered with" in caplog.text  # the logs were captured
    found = {name: leaks(text) for name, text in outputs.items() if leaks(text)}
    assert found == {}
