"""``GET /metrics`` of a running control plane, scraped over HTTPS as Prometheus does and read
with the client library's parser: who may read it, and the figures moving as events flow."""

from __future__ import annotations

from pathlib import Path

import attrs
import trio
from prometheus_client import generate_latest

from tests.bed import pki as test_pki
from tests.bed import records as r
from tests.bed.kube import Cluster
from tests.bed.manifests import configmap, event_body, unique
from tests.bed.metrics import PROMETHEUS_TEXT, Samples, agent_with_metrics, scrape
from tests.bed.producer import ApiAccess, call
from tests.bed.roles import AGENT_LISTENING, RunningCp, create_bundle, running_cp
from transporter.cp.connections import Gate, Limits
from transporter.cp.live import Connection, LiveAgents
from transporter.cp.metrics import STAGES, CpMetrics, stage_times
from transporter.cp.timed_store import OPERATIONS
from transporter.protocol.model import AgentInfo, AgentStatus, EventRecord, EventState
from transporter.protocol.status import StatusUpdate, accepted, advance
from transporter.store.base import StoreUnavailable


def metrics(cp: RunningCp, token: str | None, **headers: str) -> tuple[int, str, str]:
    api = ApiAccess(cp.api_url, token or "", cp.ca_file)
    found = scrape(f"{cp.api_url}/metrics", api=api, token=token, headers=headers)
    return found.status, found.content_type, found.text


def read(cp: RunningCp, token: str) -> Samples:
    status, content_type, text = metrics(cp, token)
    assert status == 200, text
    assert content_type == PROMETHEUS_TEXT
    return Samples.parse(text)


def test_metrics_need_a_read_token_that_reaches_every_agent(tmp_path: Path) -> None:
    with running_cp(tmp_path / "cp", *test_pki.shared().cp_flags()) as cp:
        status, content_type, text = metrics(cp, None)
        assert (status, content_type) == (401, "application/json"), text
        assert metrics(cp, "tpt_nothing_here")[0] == 401
        team = cp.new_token("team-a", "read", "team-a-*")
        status, _, text = metrics(cp, team)
        assert status == 403, text
        assert "every agent" in text and "team-a-*" in text
        everyone = cp.new_token("prometheus", "read", "*")
        samples = read(cp, everyone)
        # The refusals above, by reason: two without a valid token, one by role and reach.
        assert samples.get("transporter_api_refused_requests_total", reason="unauthenticated") == 2
        assert samples.get("transporter_api_refused_requests_total", reason="forbidden") == 1
        assert samples.types["transporter_event_duration_seconds"] == "histogram"
        assert samples.types["transporter_agents_connected"] == "gauge"
        assert samples.get("transporter_agents_connected") == 0
        openmetrics = "application/openmetrics-text; version=1.0.0"
        status, content_type, text = metrics(cp, everyone, Accept=openmetrics)
        assert status == 200
        assert content_type.startswith("application/openmetrics-text"), content_type
        assert text.endswith("# EOF\n")


def test_accepted_and_waiting_events_are_counted(tmp_path: Path) -> None:
    """Events for an agent that is not connected: accepted by how they came, waiting in the
    outbox (queued), and a conflict counted as a refusal."""
    with running_cp(tmp_path / "cp", *test_pki.shared().cp_flags()) as cp:
        api = ApiAccess(cp.api_url, cp.new_token(), cp.ca_file)
        offline = unique("offline")
        one = event_body(offline, configmap("one"), id=unique("ev"))
        assert call(api, "POST", "/events", one)[0] == 202
        assert call(api, "POST", "/events", one)[0] == 200  # the same again: not counted twice
        changed = {**one, "payload": {"manifests": [configmap("other")]}}
        assert call(api, "POST", "/events", changed)[0] == 409
        batch = {"events": [event_body(offline, configmap(f"b{n}")) for n in range(2)]}
        assert call(api, "POST", "/events/batch", batch)[0] == 202
        samples = read(cp, api.token)
    assert samples.get("transporter_events_accepted_total", via="single") == 1
    assert samples.get("transporter_events_accepted_total", via="batch") == 2
    assert samples.get("transporter_events_unfinished", state="queued") == 3
    assert samples.get("transporter_events_unfinished", state="in_progress") == 0
    assert samples.get("transporter_api_refused_requests_total", reason="conflict") == 1
    assert samples.get("transporter_events_ended_total", state="completed") == 0
    # The store's calls, by operation: each a name of the Store protocol, nothing else.
    operations = {labels["operation"] for labels in samples.labels_of(_store_count)}
    assert {"submit_many", "count_unfinished"} <= operations <= OPERATIONS
    # single events go through submit_many too, with those accepted at the same time
    assert samples.get(_store_count, operation="submit_many") >= 3


_store_count = "transporter_store_operation_seconds_count"


def test_an_event_that_completes_moves_the_counters(cluster: Cluster, tmp_path: Path) -> None:
    data = tmp_path / "cp"
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(configmap(unique("metrics")))
    with running_cp(data) as cp:
        found = AGENT_LISTENING.search(cp.output)
        assert found is not None, cp.output
        token = cp.new_token("prometheus", "read", "*")
        bundle = create_bundle(data, "metrics-site", tmp_path / "bundle")
        with agent_with_metrics("metrics-site", found.group(1), bundle, cluster.kubeconfig):
            connected = read(cp, token)
            done = cp.produce_and_wait("metrics-site", manifest)
            assert done.returncode == 0, done.stderr
            after = read(cp, token)
    assert connected.get("transporter_agents_connected") == 1
    assert connected.get("transporter_agents_unhealthy") == 0
    assert after.get("transporter_events_accepted_total", via="single") == 1
    assert after.get("transporter_events_ended_total", state="completed") == 1
    assert after.get("transporter_event_duration_seconds_count", state="completed") == 1
    # The whole way took less than a minute: it is in the bucket of 60 s and not in the first.
    assert after.get("transporter_event_duration_seconds_bucket", state="completed", le="60.0") == 1
    for stage in STAGES:  # each stage the event went through, once
        assert after.get("transporter_event_stage_seconds_count", stage=stage) == 1, stage
    assert after.get("transporter_events_unfinished", state="queued") == 0
    assert after.get("transporter_redeliveries_total", reason="ack_timeout") == 0
    ids = [labels for name in after.names() for labels in after.labels_of(name)]
    assert not any("metrics-site" in value for labels in ids for value in labels.values())


def journey(*updates: StatusUpdate) -> EventRecord:
    record: EventRecord | None = accepted(EventRecord(event=r.event(), seq=1))
    for update in updates:
        assert record is not None
        record = advance(record, update)
    assert record is not None
    return record


def test_stage_times_come_from_the_timeline() -> None:
    # One second in each stage, from queued to verifying.
    assert stage_times(journey(*r.JOURNEY)) == dict.fromkeys(STAGES, 1.0)
    # The agent's clock two seconds behind ours: the step back counts as nothing.
    behind = [
        r.update(EventState.ASSIGNED, r.T0 + 1),
        *(attrs.evolve(u, at=u.at - 2) for u in r.JOURNEY[1:]),
    ]
    times = stage_times(journey(*behind))
    assert times["assigned"] == 0.0
    assert times["received"] == times["verifying"] == 1.0


async def test_agents_and_refused_connections_are_read_when_scraped() -> None:
    metrics, live = CpMetrics(), LiveAgents()
    api, channel = (
        Gate("api", Limits(total=1, per_address=1)),
        Gate("ch", Limits(total=0, per_address=0)),
    )

    async def nowhere(text: str) -> None:
        raise AssertionError("nothing is sent")

    for agent, status in (("a", AgentStatus.CONNECTED), ("b", AgentStatus.UNHEALTHY)):
        live.attach(
            Connection(AgentInfo(agent), 0.0, nowhere, trio.CancelScope(), 0.0, status=status)
        )
    assert api.enter("10.0.0.1") and not api.enter("10.0.0.1")
    assert not channel.enter("10.0.0.2") and not channel.enter("10.0.0.3")
    metrics.watch(live, api=api, agent_channel=channel)
    samples = Samples.parse(generate_latest(metrics.registry).decode())
    assert samples.get("transporter_agents_connected") == 2
    assert samples.get("transporter_agents_unhealthy") == 1
    assert samples.get("transporter_connections_refused_total", listener="api") == 1
    assert samples.get("transporter_connections_refused_total", listener="agent_channel") == 2


async def test_an_accept_the_client_library_cannot_read_gets_the_plain_format() -> None:
    """prometheus_client compares an OpenMetrics version's parts as numbers (``1.a`` raised
    TypeError: a 500) and copies the version into the content type (a line feed there is no
    header value)."""

    class Store:
        async def count_unfinished(self) -> dict[str, int]:
            raise StoreUnavailable("not here")

    metrics = CpMetrics()
    for version in ("1.a", "1" + "0" * 5000, "1.0.0.0\nX-Injected: yes"):
        accept = f"application/openmetrics-text; version={version}"
        text, content_type = await metrics.render(Store(), accept)  # type: ignore[arg-type]
        assert content_type == PROMETHEUS_TEXT
        assert b"transporter_agents_connected" in text
