"""Bad input on the HTTP API, sent raw to a real control plane: every refusal is a 4xx with the
JSON error body, nothing refused is stored, and the server carries on."""

from __future__ import annotations

import json
import time

import pytest
import trio

from tests.bed.clients import ANSWER_TIMEOUT, Answer, assert_error, http, raw_agent, raw_stream
from tests.bed.harness import ControlPlane
from tests.bed.manifests import configmap, event_body
from transporter.protocol import codec
from transporter.protocol.submission import (
    MAX_EVENT_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_MANIFESTS,
)
from transporter.protocol.yaml_reader import MAX_ALIAS_NODES as MAX_YAML_ALIAS_NODES
from transporter.protocol.yaml_reader import MAX_DEPTH as MAX_YAML_DEPTH


async def post_event(cp: ControlPlane, body: bytes | str | object) -> Answer:
    return await http(f"{cp.client.base_url}/events", "POST", body, headers=cp.headers)


async def nothing_stored_and_still_serving(cp: ControlPlane) -> None:
    assert await cp.client.events() == []
    health = await http(f"{cp.client.base_url}/healthz")
    assert health.status == 200 and health.json["status"] == "ok"


async def head_only(cp: ControlPlane, method: str, path: str, *, content_length: int) -> Answer:
    """Send a request's head announcing a body, never the body, and read the answer."""
    host = cp.client.base_url.removeprefix("https://").rsplit(":", 1)[0]
    stream = await raw_stream(cp.client.base_url)
    async with stream:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {content_length}\r\nAuthorization: Bearer {cp.token}\r\n\r\n"
        )
        await stream.send_all(head.encode())
        received = b""
        with trio.fail_after(ANSWER_TIMEOUT):
            while b"\r\n\r\n" not in received:
                received += await stream.receive_some()
            head_text, _, body = received.partition(b"\r\n\r\n")
            lines = head_text.decode().split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:])
            while len(body) < int(headers["content-length"]):
                body += await stream.receive_some()
    return Answer(int(lines[0].split()[1]), body, headers.get("content-type", ""))


def bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"", id="empty"),
        pytest.param(b"{nope", id="not-json"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="json-nested-100000-deep"),
        pytest.param(
            b'{"target_agent": "a", "ttl": NaN, "payload": {"manifests": ["a: 1"]}}', id="nan"
        ),
        pytest.param(
            '{"target_agent": "a", "payload": {"manifests": ["a: \\ud800"]}}',
            id="lone-surrogate-in-manifest",
        ),
        pytest.param(
            '{"target_agent": "a", "labels": {"\\ud800": "x"}, "payload": {"manifests": ["a: 1"]}}',
            id="lone-surrogate-in-label",
        ),
    ],
)
async def test_a_body_that_is_not_strict_json_is_400(cp: ControlPlane, body: bytes | str) -> None:
    answer = await post_event(cp, body)
    assert_error(answer, 400, "invalid_event", field="body")
    await nothing_stored_and_still_serving(cp)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"target_agent": "agent-1\n", "payload": {"manifests": ["a: 1"]}}, "target_agent"),
        ({"id": "e\n", "target_agent": "a", "payload": {"manifests": ["a: 1"]}}, "id"),
        (event_body("a", "a: [unclosed"), "payload.manifests[0]"),
    ],
)
async def test_an_invalid_event_is_400_naming_the_field(
    cp: ControlPlane, body: object, field: str
) -> None:
    assert_error(await post_event(cp, body), 400, "invalid_event", field=field)
    await nothing_stored_and_still_serving(cp)


async def test_more_manifests_than_the_limit_is_413(cp: ControlPlane) -> None:
    body = event_body("a", *["a: 1"] * (MAX_MANIFESTS + 1))
    error = assert_error(await post_event(cp, body), 413, "event_too_large", "payload.manifests")
    assert str(MAX_MANIFESTS) in error["message"]
    await nothing_stored_and_still_serving(cp)


async def test_more_manifest_bytes_than_the_limit_is_413(cp: ControlPlane) -> None:
    third = "a: " + "x" * (MAX_MANIFEST_BYTES // 3) + "\n"
    answer = await post_event(cp, event_body("a", third, third, third, third))
    error = assert_error(answer, 413, "event_too_large", "payload.manifests")
    assert str(MAX_MANIFEST_BYTES) in error["message"]
    await nothing_stored_and_still_serving(cp)


async def test_an_event_too_large_to_deliver_is_413(cp: ControlPlane) -> None:
    """Under the manifest bytes, but over one agent-channel message once JSON-escaped."""
    # Half newlines (two bytes each in JSON): 3 MiB of manifest, 4.5 MiB as JSON.
    manifest = "a: 1\n" + "\n" * (MAX_MANIFEST_BYTES // 2) + "#" * (MAX_MANIFEST_BYTES // 2 - 10)
    answer = await post_event(cp, event_body("a", manifest))
    error = assert_error(answer, 413, "event_too_large", "payload.manifests")
    assert str(MAX_EVENT_BYTES) in error["message"]
    await nothing_stored_and_still_serving(cp)


async def test_a_body_over_the_request_size_limit_is_413_json(cp: ControlPlane) -> None:
    """Answered from the headers, before the body is read (a client that only writes, like
    urllib, sees the connection closed under it instead; one that reads the answer gets it)."""
    answer = await head_only(cp, "POST", "/events", content_length=2 * MAX_MANIFEST_BYTES + 1)
    assert_error(answer, 413, "request_entity_too_large")
    await nothing_stored_and_still_serving(cp)


async def test_the_largest_event_accepted_reaches_its_agent_in_one_message(
    cp: ControlPlane,
) -> None:
    """What the API accepts, the agent's channel can carry (its limit is codec's)."""
    line = "x" * 1000
    manifest = "".join(f"k{i:05}: {line}\n" for i in range(MAX_MANIFEST_BYTES // 1009))
    async with raw_agent(cp.agent_url, max_message_size=codec.MAX_MESSAGE_BYTES) as agent:
        await agent.register("big-events")
        submitted = await cp.client.submit(event_body("big-events", manifest))
        event = await agent.next_delivery()
        assert event["id"] == submitted.event_id
        assert event["payload"]["manifests"] == [manifest]


@pytest.mark.parametrize(
    ("manifest", "words"),
    [
        pytest.param("[" * 1000 + "]" * 1000, "nested deeper", id="flow-1000-deep"),
        # libyaml's scanner reads ahead and meets its own bound (1000 levels) first.
        pytest.param("[" * 100_000 + "]" * 100_000, "nesting depth", id="flow-100000-deep"),
        pytest.param(
            "".join("  " * i + "a:\n" for i in range(500)) + "  " * 500 + "a: x\n",
            "nested deeper",
            id="block-500-deep",
        ),
        pytest.param(bomb(), f"more than {MAX_YAML_ALIAS_NODES} nodes", id="billion-laughs"),
        pytest.param("a: &a [1, *a]\n", "contains it", id="recursive-alias"),
    ],
)
async def test_yaml_beyond_its_bounds_is_400_at_once(
    cp: ControlPlane, manifest: str, words: str
) -> None:
    started = time.monotonic()
    answer = await post_event(cp, event_body("a", configmap("fine"), manifest))
    elapsed = time.monotonic() - started
    error = assert_error(answer, 400, "invalid_event", "payload.manifests[1]")
    assert words in error["message"]
    assert "line" in error["message"]
    assert elapsed < 2.0  # refused while reading, never expanded nor built
    await nothing_stored_and_still_serving(cp)


async def test_nesting_at_the_bound_is_accepted(cp: ControlPlane) -> None:
    depth = MAX_YAML_DEPTH - 1
    answer = await post_event(cp, event_body("a", "[" * depth + "x" + "]" * depth))
    assert answer.status == 202, answer.body


async def test_the_openapi_document_is_served(cp: ControlPlane) -> None:
    answer = await http(f"{cp.client.base_url}/openapi.json")
    assert answer.status == 200
    document = answer.json
    assert document["openapi"].startswith("3.1")
    assert "/events" in document["paths"]
    assert json.loads(json.dumps(document)) == document


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("PUT", "/events", {"GET", "POST"}), ("DELETE", "/agents/x", {"GET"})],
)
async def test_a_method_not_served_is_405_json_with_allow(
    cp: ControlPlane, method: str, path: str, allowed: set[str]
) -> None:
    answer = await http(f"{cp.client.base_url}{path}", method, headers=cp.headers)
    assert_error(answer, 405, "method_not_allowed")
    assert {m.strip() for m in answer.headers["allow"].split(",")} - {"HEAD", "OPTIONS"} == allowed


async def test_an_unknown_path_is_404_json(cp: ControlPlane) -> None:
    assert_error(await http(f"{cp.client.base_url}/nowhere", headers=cp.headers), 404, "not_found")
