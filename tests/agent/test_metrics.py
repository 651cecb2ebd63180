"""The agent's metrics (``--metrics-listen``): its small HTTP responder within its bounds, and a
real agent scraped as Prometheus does while it runs an event and loses and finds its control
plane again."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import trio

from tests.bed.kube import Cluster
from tests.bed.manifests import configmap, event_body, unique
from tests.bed.metrics import PROMETHEUS_TEXT, agent_with_metrics, scrape
from tests.bed.producer import call
from tests.bed.roles import DIAL_FAILED, ControlPlaneProcess
from transporter.agent.exporter import MAX_CONNECTIONS, MAX_HEAD, PrometheusMetrics, serve_metrics
from transporter.config.values import Address
from transporter.protocol.model import Action, EventState, ResourceResult, ResourceStatus

RECONNECTED = re.compile(r"(reconnected) to")


async def exchange(address: Address, request: bytes) -> bytes:
    """Send ``request`` on a connection of its own; everything answered until it closed."""
    stream = await trio.open_tcp_stream(address.host, address.port)
    async with stream:
        await stream.send_all(request)
        answer = b""
        with trio.fail_after(10):
            while chunk := await stream.receive_some():
                answer += chunk
    return answer


async def test_the_responder_answers_get_metrics_only(nursery: trio.Nursery) -> None:
    metrics = PrometheusMetrics()
    metrics.event_ended(
        EventState.COMPLETED,
        Action.APPLY,
        [ResourceResult("v1", "ConfigMap", "x", None, ResourceStatus.CREATED)],
    )
    (address,) = await nursery.start(serve_metrics, Address("127.0.0.1", 0), metrics)
    answer = await exchange(address, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert f"Content-Type: {PROMETHEUS_TEXT}".encode() in head
    assert b'transporter_agent_resources_total{action="apply",result="created"} 1.0' in body
    assert (await exchange(address, b"HEAD /metrics HTTP/1.1\r\n\r\n")).endswith(b"\r\n\r\n")
    assert (await exchange(address, b"GET / HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
    refused = await exchange(address, b"POST /metrics HTTP/1.1\r\n\r\n")
    assert refused.startswith(b"HTTP/1.1 405") and b"Allow: GET, HEAD" in refused
    assert (await exchange(address, b"nonsense\r\n\r\n")).startswith(b"HTTP/1.1 400")
    huge = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * MAX_HEAD + b"\r\n\r\n"
    assert (await exchange(address, huge)).startswith(b"HTTP/1.1 431")


async def test_the_responder_bounds_connections_and_time(nursery: trio.Nursery) -> None:
    (address,) = await nursery.start(
        lambda task_status: serve_metrics(
            Address("127.0.0.1", 0),
            PrometheusMetrics(),
            per_connection=0.5,
            task_status=task_status,
        )
    )
    silent = [
        await trio.open_tcp_stream(address.host, address.port) for _ in range(MAX_CONNECTIONS)
    ]
    # One more while they are all open is closed at once, unanswered.
    assert await exchange(address, b"GET /metrics HTTP/1.1\r\n\r\n") == b""
    with trio.fail_after(10):  # each silent one is closed once its time is up
        for stream in silent:
            assert await stream.receive_some() == b""
            await stream.aclose()
    answer = await exchange(address, b"GET /metrics HTTP/1.1\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")


def test_an_agent_without_metrics_does_not_load_the_client_library() -> None:
    code = (
        "import sys, transporter.cli, transporter.agent.main, transporter.agent.session;"
        " sys.exit('prometheus_client' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=60).returncode == 0


def test_a_running_agent_counts_its_work_and_its_connection(
    cluster: Cluster, tmp_path: Path
) -> None:
    cp = ControlPlaneProcess(tmp_path / "cp", tmp_path / "cp.log")
    try:
        cp.start()
        api = cp.create_admin_token()
        bundle = cp.create_bundle("metrics-agent", tmp_path / "bundle")
        with agent_with_metrics("metrics-agent", cp.agent_url, bundle, cluster.kubeconfig) as (
            agent,
            url,
        ):
            before = scrape(url).samples
            body = event_body("metrics-agent", configmap(unique("agent-metrics")))
            status, answer = call(api, "POST", "/events", body)
            assert status == 202, answer
            record = call(api, "GET", f"/events/{answer['event_id']}?wait=60")[1]
            while record["state"] not in ("completed", "failed"):
                since = len(record["timeline"])
                path = f"/events/{answer['event_id']}?wait=60&since={since}"
                record = call(api, "GET", path)[1]
            assert record["state"] == "completed", record
            after = scrape(url).samples
            cp.kill()
            agent.wait_for(DIAL_FAILED, timeout=60)
            away = scrape(url).samples
            cp.start()
            agent.wait_for(RECONNECTED, timeout=60)
            back = scrape(url).samples
    finally:
        cp.stop()
    assert before.get("transporter_agent_connected") == 1
    assert before.get("transporter_agent_events_received_total") == 0
    assert after.get("transporter_agent_events_received_total") == 1
    assert after.get("transporter_agent_events_ended_total", state="completed") == 1
    assert after.get("transporter_agent_resources_total", action="apply", result="created") == 1
    assert after.get("transporter_agent_kube_requests_total", verb="patch", outcome="2xx") >= 1
    assert after.get("transporter_agent_kube_request_seconds_count", verb="get") >= 1
    verbs = {labels["verb"] for labels in after.labels_of("transporter_agent_kube_requests_total")}
    assert verbs <= {"get", "post", "put", "patch", "delete"}
    assert away.get("transporter_agent_connected") == 0
    assert back.get("transporter_agent_connected") == 1
    assert back.get("transporter_agent_reconnects_total") == 1


async def test_the_responder_survives_a_hostile_accept_header(nursery: trio.Nursery) -> None:
    """prometheus_client compares the parts of an Accept's version as numbers (a part that is
    not one raises TypeError) and copies the version into the Content-Type it gives: neither
    may end the agent nor put a line of the request into the answer's head."""
    (address,) = await nursery.start(serve_metrics, Address("127.0.0.1", 0), PrometheusMetrics())
    openmetrics = b"Accept: application/openmetrics-text; version="
    for version in (b"1.a", b"1" + b"0" * 5000, b"1.0.0.0\nX-Injected: yes"):
        answer = await exchange(
            address, b"GET /metrics HTTP/1.1\r\n" + openmetrics + version + b"\r\n\r\n"
        )
        head = answer.partition(b"\r\n\r\n")[0]
        assert head.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:200]
        assert b"X-Injected" not in head
    assert (await exchange(address, b"GET /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 200")
