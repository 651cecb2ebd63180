"""Schemathesis over the OpenAPI document, against a real ``transporter cp`` process.

Checks on every answer: no 5xx ever; every 4xx has the JSON error body ``{error, message}``;
statuses, content types and bodies are the ones the document gives (so it cannot drift from
the handlers). Deterministic (derandomized, no example database) and bounded in examples.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import trio
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tests.bed import pki as test_pki
from tests.bed.clients import http, raw_agent
from tests.bed.manifests import configmap, event_body
from tests.bed.roles import AGENT_LISTENING, RunningCp, running_cp
from transporter import __version__
from transporter.cp.api import events, submit
from transporter.cp.openapi import openapi_document
from transporter.cp.openapi.rollouts import EXAMPLE_PLAN, EXAMPLE_ROLLOUT
from transporter.produce.client import Client

MAX_EXAMPLES = 40
"""Generated examples per operation (the coverage phase adds its boundary cases)."""
MAX_WAIT = 0.05
"""``GET /events/{id}?wait=`` is cut to this: a generated id may name an event a generated
POST created, and the answer would then be held for the generated wait (up to 60 s)."""


async def seed(cp: RunningCp, token: str) -> None:
    """Something for the read operations to show: an agent, events (one with results), audit."""
    found = AGENT_LISTENING.search(cp.output)
    assert found is not None, cp.output
    client = Client(cp.api_url, token=token, ca_file=cp.ca_file)
    bearer = {"Authorization": f"Bearer {token}"}
    async with raw_agent(found.group(1), identity="seed") as agent:
        await agent.send(
            {
                "type": "register",
                "agent": {"id": "seed", "cluster_name": "c1", "labels": {"env": "test"}},
            }
        )
        assert (await agent.receive())["type"] == "welcome"
        await client.submit(event_body("seed", configmap("seeded"), labels={"team": "t"}))
        event = await agent.next_delivery()
        resource = {
            "api_version": "v1",
            "kind": "ConfigMap",
            "name": "seeded",
            "namespace": "default",
            "status": "created",
        }
        await agent.report(event["id"], 1, "in_progress", phase="applying")
        await agent.report(event["id"], 2, "completed", phase="completed", resources=[resource])
        for _ in range(2):
            assert (await agent.receive())["type"] == "status_ack"
    await client.submit(event_body("offline", configmap("waiting")))
    # A rollout that waits for an approval, and a plan: the ids the document's examples use.
    wave = {"selector": "env=test", "approval": True}
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("/events", {"id": EXAMPLE_ROLLOUT, "selector": "env", "strategy": {"waves": [wave]}}),
        ("/plans", {"id": EXAMPLE_PLAN, "target_agents": ["seed", "offline"]}),
    ]
    for path, body in bodies:
        body["payload"] = {"manifests": [configmap("rolled")]}
        answer = await http(f"{cp.api_url}{path}", "POST", body, headers=bearer)
        assert answer.status == 202, answer.body


@pytest.fixture(scope="module")
def cp_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCp]:
    with running_cp(Path(tmp_path_factory.mktemp("cp")), *test_pki.shared().cp_flags()) as cp:
        yield cp


@pytest.fixture(scope="module")
def token(cp_process: RunningCp) -> str:
    """An admin token, made by ``transporter token create`` while the process runs; with it
    the process is seeded."""
    made = cp_process.new_token("schemathesis", "admin")
    trio.run(seed, cp_process, made)
    return made


def document() -> dict[str, Any]:
    """What ``GET /openapi.json`` serves (checked below against the running process)."""
    return openapi_document(
        version=__version__,
        max_wait=events.MAX_WAIT,
        max_limit=events.MAX_LIMIT,
        max_batch=submit.MAX_BATCH,
    )


CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20240601,
        "generation": {"mode": "all", "deterministic": True, "max-examples": MAX_EXAMPLES},
        "phases": {"stateful": {"enabled": False}},
        # Invalid data is refused with one of these (413: over a limit the schema states; 401:
        # a request without its bearer token, which the schema says every operation but the
        # open ones needs).
        "checks": {
            "negative_data_rejection": {"expected-statuses": [400, 401, 404, 405, 409, 413, 422]}
        },
    }
)
# Loaded at import, for pytest to collect one test per operation (schemathesis' lazy loading
# from a fixture does not run on pytest 9); the base URL is the process's, given at each call.
schema = schemathesis.openapi.from_dict(document(), config=CONFIG)


def test_the_process_serves_this_document(cp_process: RunningCp) -> None:
    url = f"{cp_process.api_url}/openapi.json"
    with urllib.request.urlopen(url, timeout=30, context=cp_process.api_context) as answer:
        assert json.load(answer) == document()


def error_body(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool:
    """A 4xx answer has the JSON error body, ``error`` and ``message`` strings at least."""
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("application/json"), f"4xx answer is {content_type!r}"
        body = response.json()
        assert isinstance(body, dict), f"4xx body is not an object: {body!r}"
        assert isinstance(body.get("error"), str) and body["error"], body
        assert isinstance(body.get("message"), str) and body["message"], body
    return True


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api(case: schemathesis.Case[Any], cp_process: RunningCp, token: str) -> None:
    query: dict[str, Any] | None = case.query
    wait = query.get("wait") if query else None
    if query and isinstance(wait, int | float) and not isinstance(wait, bool) and wait > MAX_WAIT:
        query["wait"] = MAX_WAIT
    checks = [
        not_a_server_error,
        error_body,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        unsupported_method,
        ignored_auth,  # what needs a token is refused without one, or with a wrong one
    ]
    if case.operation.path != "/events/batch":
        # A batch refuses invalid events one by one inside a 207, by design.
        checks.append(negative_data_rejection)
    try:
        case.call_and_validate(
            base_url=cp_process.api_url,
            headers={"Authorization": f"Bearer {token}"},
            checks=checks,
            timeout=30,
            verify=str(cp_process.ca_file),
        )
    except Exception:
        tail = "".join(cp_process.lines[-40:])
        print(f"--- the control plane's log, last lines ---\n{tail}")
        raise
