"""Connections as an attacker opens them: HTTP/2 in any of its forms, smuggling-shaped
requests and duplicate JSON keys on the API; floods of connections that never finish their TLS
handshake on both ports. Each is refused or closed, and the API keeps answering."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tests.bed.clients import http, raw_agent, raw_stream
from tests.bed.harness import FAST_CHANNEL, ControlPlane
from tests.bed.logwatch import LogWatch
from tests.bed.manifests import configmap, event_body
from tests.bed.producer import ApiAccess, call
from transporter.cp import http as cp_http
from transporter.cp.api.fast_submit import FastSubmit
from transporter.cp.connections import Limits

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


async def read_all(stream: trio.abc.Stream, limit: float = 10.0) -> bytes:
    """Everything the server sends until it closes (which it must, within ``limit``)."""
    received = b""
    with trio.fail_after(limit):
        while True:
            try:
                data = await stream.receive_some()
            except trio.BrokenResourceError:
                return received
            if not data:
                return received
            received += data


def host(cp: ControlPlane) -> str:
    return cp.client.base_url.split("://", 1)[1]


@pytest.mark.parametrize("after_a_request", [False, True])
async def test_the_http2_preface_is_refused_and_closed(
    cp: ControlPlane, after_a_request: bool
) -> None:
    stream = await raw_stream(cp.client.base_url)
    async with stream:
        if after_a_request:
            await stream.send_all(f"GET /healthz HTTP/1.1\r\nHost: {host(cp)}\r\n\r\n".encode())
            with trio.fail_after(10):
                first = await stream.receive_some()
            assert first.startswith(b"HTTP/1.1 200")
        await stream.send_all(H2_PREFACE + SETTINGS)
        answered = await read_all(stream)
    assert b"\x00\x00" not in answered[:9]  # no HTTP/2 frame came back


async def test_an_h2c_upgrade_is_never_switched_to(cp: ControlPlane) -> None:
    stream = await raw_stream(cp.client.base_url)
    async with stream:
        request = (
            f"GET /healthz HTTP/1.1\r\nHost: {host(cp)}\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        )
        await stream.send_all(request.encode())
        answered = await read_all(stream)
    assert not answered.startswith(b"HTTP/1.1 101")


async def test_a_request_with_two_lengths_is_refused_and_its_connection_closed(
    cp: ControlPlane,
) -> None:
    stream = await raw_stream(cp.client.base_url)
    async with stream:
        body = b'{"target_agent": "a"}'
        request = (
            (
                f"POST /events HTTP/1.1\r\nHost: {host(cp)}\r\nAuthorization: Bearer {cp.token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
            + f"{len(body):x}\r\n".encode()
            + body
            + b"\r\n0\r\n\r\n"
        )
        await stream.send_all(request)
        answered = await read_all(stream)
    head, _, rest = answered.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"connection: close" in head.lower()
    assert b"Content-Length and Transfer-Encoding" in rest
    assert await cp.client.events() == []


async def test_json_with_a_key_twice_is_refused_and_its_connection_closed(
    cp: ControlPlane,
) -> None:
    body = (
        '{"target_agent": "a", "target_agent": "b", "payload": {"manifests": ['
        '"apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: x}\\n"]}}'
    )
    answer = await http(f"{cp.client.base_url}/events", "POST", body, headers=cp.headers)
    assert answer.status == 400
    assert answer.json["message"] == "the body is not JSON: duplicate key 'target_agent'"
    assert answer.headers.get("connection") == "close"
    assert await cp.client.events() == []


async def healthz_answers(cp: ControlPlane) -> None:
    with trio.fail_after(5):
        answer = await http(f"{cp.client.base_url}/healthz")
    assert answer.status == 200


async def test_api_connections_past_the_cap_are_closed_at_once(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: LogWatch
) -> None:
    monkeypatch.setattr(cp_http, "LIMITS", Limits(total=50, per_address=10, handshake_timeout=1.0))
    cp = ControlPlane(nursery, tmp_path / "cp")
    await cp.start()
    host_name, port = host(cp).rsplit(":", 1)
    held = [await trio.open_tcp_stream(host_name, int(port)) for _ in range(10)]
    extra = await trio.open_tcp_stream(host_name, int(port))
    assert await read_all(extra, 5) == b""  # closed at once, nothing said
    await logs.wait_for("connection from 127.0.0.1 closed at once")
    for stream in held:  # silent: closed when their handshake time is up
        assert await read_all(stream, 5) == b""
    await healthz_answers(cp)
    for stream in [*held, extra]:
        await stream.aclose()


async def test_a_flood_of_unfinished_handshakes_on_the_agent_port_is_bounded(
    nursery: trio.Nursery, tmp_path: Path, logs: LogWatch
) -> None:
    limits = Limits(total=20, per_address=5, handshake_timeout=1.0)
    channel = attrs.evolve(FAST_CHANNEL, handshakes=limits)
    cp = ControlPlane(nursery, tmp_path / "cp", channel=channel)
    await cp.start()
    hostname, port = cp.agent_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
    flood = [await trio.open_tcp_stream(hostname, int(port)) for _ in range(30)]
    await healthz_answers(cp)
    closed_at_once = 0
    for stream in flood[5:]:
        with trio.move_on_after(0.5):
            if await read_all(stream, 0.5) == b"":
                closed_at_once += 1
    assert closed_at_once == 25
    for stream in flood[:5]:  # the ones let in: closed when their handshake time is up
        assert await read_all(stream, 5) == b""
    refused = logs.matching("agent channel: connection from 127.0.0.1 closed at once")
    assert 1 <= len(refused) <= 21  # the log is throttled, the rest counted
    for stream in flood:
        await stream.aclose()


async def test_past_the_handshakes_bound_an_agent_waits_to_be_let_in_rather_than_refused(
    nursery: trio.Nursery, tmp_path: Path, logs: LogWatch
) -> None:
    """A reconnect storm: connections past the bound wait in the kernel's backlog (accepting
    waits for room) instead of being closed into the agents' backoff."""
    limits = Limits(total=5, per_address=100, handshake_timeout=1.0)
    cp = ControlPlane(
        nursery, tmp_path / "cp", channel=attrs.evolve(FAST_CHANNEL, handshakes=limits)
    )
    await cp.start()
    hostname, port = cp.agent_url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)
    silent = [await trio.open_tcp_stream(hostname, int(port)) for _ in range(5)]  # the bound
    began = trio.current_time()
    with trio.fail_after(10):
        async with raw_agent(cp.agent_url) as agent:
            welcome = await agent.register("patient")  # let in once a silent one timed out
    assert welcome["agent_id"] == "patient"
    assert trio.current_time() - began >= 0.5  # it waited for room: it was not let in at once
    assert not logs.matching("closed at once")
    for stream in silent:
        await stream.aclose()


async def test_a_client_that_closes_each_connection_after_its_answer_never_runs_out(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request on a connection of its own, closed once answered (as most clients do): the
    control plane lets each go at once, not when its keep-alive time is up, so a client never
    runs into its address's allowance of connections (3 here). Both the app's route (the first
    POST reads the token) and the direct one (the next ones: the token kept) are covered."""
    monkeypatch.setattr(cp_http, "LIMITS", Limits(total=50, per_address=3, handshake_timeout=5.0))
    direct = 0
    store = FastSubmit._store

    async def counted(self: FastSubmit, *args: Any) -> Any:
        nonlocal direct
        direct += 1
        return await store(self, *args)

    monkeypatch.setattr(FastSubmit, "_store", counted)
    cp = ControlPlane(nursery, tmp_path / "cp")
    await cp.start()
    assert cp.token is not None
    access = ApiAccess(cp.client.base_url, cp.token, cp.ca_file)
    answers = []
    for n in range(8):
        body = event_body("a", configmap(f"c{n}"), id=f"e{n}")
        status, _ = await trio.to_thread.run_sync(call, access, "POST", "/events", body)
        answers.append(status)
        status, _ = await trio.to_thread.run_sync(call, access, "GET", "/healthz")
        answers.append(status)
    assert answers == [202, 200] * 8
    assert direct == 7  # the control plane as wired serves them directly once the token is kept
