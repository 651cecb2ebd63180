"""Tokens on the HTTP API of a real control plane (in-process, real store, real HTTP): who may do
what, 401 and 403 and what they say, revocation at once (also across control planes on one
Redis), created_by from the token, refusals in the audit log. No cluster: events wait for
agents that never connect."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.bed import records as r
from tests.bed.clients import Answer, assert_error, http
from tests.bed.harness import ControlPlane
from tests.bed.logwatch import LogWatch
from tests.bed.manifests import configmap, event_body
from tests.bed.redis import RedisServer
from tests.bed.roles import PYTHON_TRANSPORTER
from transporter.config.store_spec import StoreSpec
from transporter.cp.api import access as auth
from transporter.cp.api import events as event_routes
from transporter.protocol.model import AuditEntry
from transporter.security.tokens import Role, new_token, token_id_of
from transporter.store import open_store


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec | None:
    """Each store: ``None`` is the embedded SQLite file in the data dir."""
    if request.param == "sqlite":
        return None
    server: RedisServer = request.getfixturevalue("redis_server")
    return StoreSpec.parse(server.url)


@pytest.fixture
async def plane(
    nursery: trio.Nursery, tmp_path: Path, store_spec: StoreSpec | None
) -> ControlPlane:
    cp = ControlPlane(nursery, tmp_path / "cp", store=store_spec)
    await cp.start()
    return cp


@pytest.fixture
async def cp(nursery: trio.Nursery, tmp_path: Path) -> ControlPlane:
    """On the embedded store only, for what does not depend on the store."""
    plane = ControlPlane(nursery, tmp_path / "cp")
    await plane.start()
    return plane


def bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


async def call(
    cp: ControlPlane, method: str, path: str, token: str | None, body: Any = None
) -> Answer:
    assert cp.bound is not None
    return await http(f"{cp.bound.api_url}{path}", method, body, headers=bearer(token))


async def stored_event_ids(cp: ControlPlane) -> set[str]:
    return {record.event.id for record in await cp.client.events(limit=500)}


async def refusals(cp: ControlPlane) -> list[AuditEntry]:
    return [entry for entry in await cp.client.audit(limit=500) if entry.action == "api.refused"]


# --- who needs a token ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
async def test_health_readiness_and_the_document_are_open(cp: ControlPlane, path: str) -> None:
    answer = await call(cp, "GET", path, None)
    assert answer.status == 200, answer.body


WELL_FORMED_UNKNOWN = "tpt_0123456789ab_" + "A" * 43


@pytest.mark.parametrize(
    ("authorization", "words", "invalid"),
    [
        (None, "this endpoint needs a token: send 'Authorization: Bearer tpt_", False),
        ("Basic dXNlcjpwdw==", "must be 'Bearer <token>', not 'Basic'", True),
        ("Bearer", "must be 'Bearer <token>'", True),
        # A token sent without "Bearer ": refused without quoting any of it.
        (WELL_FORMED_UNKNOWN, "must be 'Bearer <token>', not a bare credential", True),
        ("Bearer not-a-token", "not a transporter token (tpt_<id>_<secret>)", True),
        (f"Bearer {WELL_FORMED_UNKNOWN}", "not valid (unknown, or not its secret)", True),
        (f"bearer {WELL_FORMED_UNKNOWN}", "not valid (unknown, or not its secret)", True),
    ],
)
@pytest.mark.parametrize(("method", "path"), [("GET", "/events"), ("POST", "/events")])
async def test_without_a_valid_token_every_endpoint_is_401_saying_why(
    cp: ControlPlane,
    authorization: str | None,
    words: str,
    invalid: bool,
    method: str,
    path: str,
) -> None:
    assert cp.bound is not None
    headers = {} if authorization is None else {"Authorization": authorization}
    body = event_body("a", configmap("x")) if method == "POST" else None
    answer = await http(f"{cp.bound.api_url}{path}", method, body, headers=headers)
    error = assert_error(answer, 401, "unauthorized")
    assert words in error["message"]
    assert "tpt_0123" not in error["message"]
    challenge = answer.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="transporter"')
    assert ('error="invalid_token"' in challenge) is invalid
    assert await stored_event_ids(cp) == set()


async def test_a_token_with_another_secret_is_401_and_says_nothing_of_the_token(
    cp: ControlPlane,
) -> None:
    token = await cp.new_token("ci", Role.ADMIN)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    answer = await call(cp, "GET", "/events", forged)
    error = assert_error(answer, 401, "unauthorized")
    assert "not valid" in error["message"]
    assert "ci" not in error["message"]  # the name is told only to who holds the secret


async def test_unknown_paths_and_methods_need_a_token_too(cp: ControlPlane) -> None:
    assert_error(await call(cp, "GET", "/nowhere", None), 401, "unauthorized")
    assert_error(await call(cp, "PUT", "/events", None), 401, "unauthorized")
    assert_error(await call(cp, "GET", "/nowhere", cp.token), 404, "not_found")


# --- roles ------------------------------------------------------------------------------------


async def test_what_each_role_may_call(plane: ControlPlane) -> None:
    reader = await plane.new_token("dashboard", Role.READ)
    submitter = await plane.new_token("ci", Role.SUBMIT)
    admin = await plane.new_token("ops", Role.ADMIN)
    one = event_body("agent-1", configmap("a"))
    many = {"events": [event_body("agent-2", configmap("b"))]}

    for token in (reader, submitter, admin):
        for path in ("/events", "/agents"):
            answer = await call(plane, "GET", path, token)
            assert answer.status == 200, answer.body

    denied = assert_error(await call(plane, "POST", "/events", reader, one), 403, "forbidden")
    assert denied["message"] == (
        "this endpoint needs a token with role submit or admin; yours ('dashboard') has read"
    )
    assert_error(await call(plane, "POST", "/events/batch", reader, many), 403, "forbidden")
    for token, name, role in ((reader, "dashboard", "read"), (submitter, "ci", "submit")):
        denied = assert_error(await call(plane, "GET", "/audit", token), 403, "forbidden")
        assert denied["message"] == (
            f"this endpoint needs a token with role admin; yours ({name!r}) has {role}"
        )

    assert (await call(plane, "POST", "/events", submitter, one)).status == 202
    assert (await call(plane, "POST", "/events/batch", submitter, many)).status == 202
    event_id = (await call(plane, "GET", "/events", submitter)).json["items"][0]["event"]["id"]
    assert (await call(plane, "GET", f"/events/{event_id}", reader)).status == 200
    assert (await call(plane, "GET", "/audit", admin)).status == 200
    assert (
        await call(plane, "POST", "/events", admin, event_body("x", configmap("c")))
    ).status == 202


# --- the agents a token reaches ---------------------------------------------------------------


async def test_a_submit_token_submits_only_for_its_agents(plane: ControlPlane) -> None:
    token = await plane.new_token("team-a-ci", Role.SUBMIT, ("team-a-*", "staging"))
    ok = await call(plane, "POST", "/events", token, event_body("team-a-1", configmap("a")))
    assert ok.status == 202, ok.body
    assert (
        await call(plane, "POST", "/events", token, event_body("staging", configmap("s")))
    ).status == 202

    refused = await call(plane, "POST", "/events", token, event_body("prod-1", configmap("p")))
    error = assert_error(refused, 403, "forbidden")
    assert error["message"] == (
        "your token 'team-a-ci' may submit events for agents matching 'team-a-*', 'staging';"
        " not agent 'prod-1'"
    )
    batch = {
        "events": [
            event_body("team-a-2", configmap("b"), id="b-1"),
            event_body("prod-1", configmap("p"), id="b-2"),
            event_body("prod-2", configmap("p"), id="b-3"),
            event_body("team-a-3", configmap("c"), id="b-4"),
        ]
    }
    refused = await call(plane, "POST", "/events/batch", token, batch)
    error = assert_error(refused, 403, "forbidden")
    assert "not 'prod-1', 'prod-2': nothing of the batch was stored" in error["message"]
    stored = await stored_event_ids(plane)
    assert len(stored) == 2 and not stored & {"b-1", "b-2", "b-3", "b-4"}

    del batch["events"][1:3]
    accepted = await call(plane, "POST", "/events/batch", token, batch)
    assert accepted.status == 202, accepted.body
    assert {"b-1", "b-4"} <= await stored_event_ids(plane)


async def test_a_read_token_sees_only_its_agents(
    plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    agents = ["team-a-1", "team-b-1", "team-a-2", "team-b-2", "team-b-3"]
    # 25 events, newest last; team a's are every other one or so
    events = [event_body(agents[n % 5], configmap(f"c{n}"), id=f"ev-{n:02d}") for n in range(25)]
    assert (await plane.client.submit_batch(events))["accepted"] == 25
    async with open_store(plane.spec) as store:
        for agent in agents:
            await store.put_agent(r.agent(agent))
    reader = await plane.new_token("team-a-view", Role.READ, ("team-a-*",))
    team_a = [e["id"] for e in reversed(events) if e["target_agent"].startswith("team-a-")]

    # Small pages of the store, and few of them per answer: answers shorter than their limit
    # that still give a cursor, and every event of team a exactly once.
    monkeypatch.setattr(event_routes, "SCAN_PAGE", 3)
    monkeypatch.setattr(event_routes, "SCAN_PAGES", 2)
    for limit in (1, 4, 50):
        seen: list[str] = []
        cursor = ""
        pages = 0
        while True:
            answer = await call(
                plane,
                "GET",
                f"/events?limit={limit}" + (f"&cursor={cursor}" if cursor else ""),
                reader,
            )
            assert answer.status == 200, answer.body
            page = answer.json
            assert len(page["items"]) <= limit
            seen += [item["event"]["id"] for item in page["items"]]
            pages += 1
            if page["cursor"] is None:
                break
            cursor = page["cursor"]
        assert seen == team_a, limit
        assert pages < 30

    one = await call(plane, "GET", "/events?agent=team-a-2&limit=500", reader)
    assert [i["event"]["id"] for i in one.json["items"]] == [
        e for e in team_a if int(e[3:]) % 5 == 2
    ]
    refused = await call(plane, "GET", "/events?agent=team-b-1", reader)
    error = assert_error(refused, 403, "forbidden")
    assert error["message"] == (
        "your token 'team-a-view' may read agents matching 'team-a-*'; not agent 'team-b-1'"
    )
    assert (await call(plane, "GET", "/events/ev-00", reader)).status == 200
    hidden = assert_error(await call(plane, "GET", "/events/ev-01", reader), 403, "forbidden")
    assert hidden["message"].startswith("event 'ev-01' is for an agent outside your token's reach")
    assert "team-b" not in hidden["message"]
    assert_error(await call(plane, "GET", "/events/nope", reader), 404, "not_found")

    listed = await call(plane, "GET", "/agents", reader)
    assert [a["info"]["id"] for a in listed.json["items"]] == ["team-a-1", "team-a-2"]
    assert (await call(plane, "GET", "/agents/team-a-1", reader)).status == 200
    assert_error(await call(plane, "GET", "/agents/team-b-1", reader), 403, "forbidden")
    assert_error(await call(plane, "GET", "/agents/team-b-9", reader), 403, "forbidden")

    everything = await call(plane, "GET", "/events?limit=500", plane.token)
    assert len(everything.json["items"]) == 25


# --- created_by -------------------------------------------------------------------------------


async def test_created_by_is_the_token_s_name_and_a_body_may_not_say_it(
    plane: ControlPlane,
) -> None:
    token = await plane.new_token("ci-deploy", Role.SUBMIT, ("*",))
    answer = await call(plane, "POST", "/events", token, event_body("a", configmap("x"), id="e1"))
    assert answer.status == 202, answer.body
    record = await plane.client.event("e1")
    assert record.event.created_by == "token:ci-deploy"
    accepted = [e for e in await plane.client.audit() if e.action == "event.accepted"]
    assert [(e.actor, e.event_id) for e in accepted] == [("token:ci-deploy", "e1")]

    claimed = event_body("a", configmap("x"), id="e2", created_by="alice")
    error = assert_error(await call(plane, "POST", "/events", token, claimed), 400, "invalid_event")
    assert error["field"] == "created_by"
    assert "token:ci-deploy" in error["message"]
    batch = await call(plane, "POST", "/events/batch", token, {"events": [claimed]})
    assert batch.status == 207
    assert batch.json["results"][0]["field"] == "created_by"
    assert await stored_event_ids(plane) == {"e1"}


# --- revocation -------------------------------------------------------------------------------


async def revoke_with_the_command(cp: ControlPlane, token: str) -> str:
    """``transporter token revoke`` in its own process, on the control plane's store."""
    token_id = token_id_of(token)
    assert token_id is not None
    where = ["--store", cp.spec.url]
    done = await trio.run_process(
        [*PYTHON_TRANSPORTER, "token", "revoke", token_id, *where],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return token_id


async def test_a_revoked_token_is_refused_at_once(plane: ControlPlane) -> None:
    token = await plane.new_token("ci", Role.SUBMIT, ("*",))
    assert (await call(plane, "GET", "/events", token)).status == 200
    token_id = await revoke_with_the_command(plane, token)
    answer = await call(plane, "GET", "/events", token)
    error = assert_error(answer, 401, "unauthorized")
    assert error["message"].startswith(f"the bearer token {token_id} ('ci') was revoked at ")
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    posted = await call(plane, "POST", "/events", token, event_body("a", configmap("x")))
    assert_error(posted, 401, "unauthorized")
    assert await stored_event_ids(plane) == set()


async def two_planes(
    nursery: trio.Nursery, tmp_path: Path, redis_server: RedisServer
) -> tuple[ControlPlane, ControlPlane]:
    """Two control planes on one Redis, started (the second with the first's admin token)."""
    spec = StoreSpec.parse(redis_server.url)
    one = ControlPlane(nursery, tmp_path / "one", store=spec)
    await one.start()
    two = ControlPlane(nursery, tmp_path / "two", store=spec, token=one.token)
    await two.start()
    return one, two


async def test_two_control_planes_on_one_redis_refuse_a_revoked_token_at_once(
    nursery: trio.Nursery, tmp_path: Path, redis_server: RedisServer
) -> None:
    one, two = await two_planes(nursery, tmp_path, redis_server)
    token = await one.new_token("ci", Role.SUBMIT, ("*",))  # made through one's store
    for plane in (one, two):
        assert (await call(plane, "GET", "/events", token)).status == 200
    await revoke_with_the_command(one, token)
    for plane in (one, two):
        assert_error(await call(plane, "GET", "/events", token), 401, "unauthorized")
        assert (await call(plane, "GET", "/events", plane.token)).status == 200


# --- the audit log ----------------------------------------------------------------------------


async def test_refusals_are_in_the_audit_log_with_who_asked(plane: ControlPlane) -> None:
    reader = await plane.new_token("dashboard", Role.READ, ("team-a-*",))
    await call(plane, "GET", "/events", None)
    await call(plane, "GET", "/events", "Bearer-less")
    await call(plane, "POST", "/events", reader, event_body("team-a-1", configmap("x")))
    await call(plane, "GET", "/agents/prod-1", reader)
    entries = list(reversed(await refusals(plane)))
    assert [(e.actor, e.agent_id) for e in entries] == [
        ("", ""),
        ("", ""),
        ("token:dashboard", ""),
        ("token:dashboard", "prod-1"),
    ]
    assert entries[0].detail.startswith("401 GET /events from 127.0.0.1: this endpoint needs")
    assert entries[2].detail.startswith("403 POST /events from 127.0.0.1: this endpoint needs")
    assert entries[3].detail.startswith("403 GET /agents/prod-1 from 127.0.0.1: your token")
    created = [e for e in await plane.client.audit() if e.action == "token.created"]
    assert {e.detail.split("'")[1] for e in created} == {"harness", "dashboard"}
    for entry in await plane.client.audit(limit=500):
        assert reader not in entry.detail and reader.split("_", 2)[2] not in entry.detail


async def test_a_flood_of_refusals_is_recorded_within_each_callers_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers without a known token: at most AUDIT_BURST at once per address, then AUDIT_RATE
    a second; the next one written for that address counts those left out. Another address
    has a budget of its own. (The gate alone, on a real store: the budget is not timed here.)"""
    monkeypatch.setattr(auth, "AUDIT_BURST", 3)
    monkeypatch.setattr(auth, "AUDIT_RATE", 0.0)
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        gate = auth.Gate(store)
        refused = auth.Refused(401, "no token")
        for _ in range(10):
            await gate.record_refusal(refused, method="GET", path="/events", remote="10.0.0.1")
        assert len((await store.list_audit()).items) == 3
        await gate.record_refusal(refused, method="GET", path="/events", remote="10.0.0.2")
        assert len((await store.list_audit()).items) == 4
        monkeypatch.setattr(auth, "AUDIT_RATE", 1e9)  # refilled at once
        gate._by_address["10.0.0.1"].rate = 1e9
        await gate.record_refusal(refused, method="GET", path="/x" * 500, remote="10.0.0.1")
        last = (await store.list_audit()).items[0]
        assert last.detail.startswith("401 GET /x/x")
        assert "…" in last.detail and len(last.detail) < 400
        assert last.detail.endswith(
            "from 10.0.0.1: no token (7 refusals from this address before it were not recorded)"
        )


async def test_a_known_tokens_refusals_are_never_hidden_by_a_flood(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logs: LogWatch
) -> None:
    """150 unauthenticated requests first (from one address, and from many), then a scoped
    token's probes of another tenant's agents: every probe is in the audit log and the log."""
    monkeypatch.setattr(auth, "AUDIT_RATE", 0.0)
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        gate = auth.Gate(store)
        anonymous = auth.Refused(401, "no token")
        for n in range(150):
            for remote in ("10.0.0.1", f"10.0.1.{n}"):
                await gate.record_refusal(anonymous, method="GET", path="/events", remote=remote)
        _, record = new_token(
            name="team-a", role=Role.READ, agents=("team-a-*",), now=0.0, created_by="test"
        )
        caller = auth.Caller(record)
        for n in range(20):
            probe = auth.Refused(403, f"not agent team-b-{n}", caller=caller, agent=f"team-b-{n}")
            await gate.record_refusal(
                probe, method="GET", path=f"/agents/team-b-{n}", remote="10.0.0.1"
            )
        entries = (await store.list_audit(limit=500)).items
        probes = [e for e in entries if e.actor == "token:team-a"]
        assert sorted(e.agent_id for e in probes) == sorted(f"team-b-{n}" for n in range(20))
        assert len(logs.matching("refused: token:team-a 403")) == 20
        # ...and the flood itself stayed within the anonymous budget.
        assert len(entries) - len(probes) <= auth.ANONYMOUS_BURST


# --- authentication off ---------------------------------------------------------------------


async def test_insecure_no_auth_serves_everyone_and_says_so_loudly(
    nursery: trio.Nursery, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="transporter")
    plane = ControlPlane(nursery, tmp_path / "cp", auth=False)
    await plane.start()
    assert plane.token is None
    body = event_body("a", configmap("x"), id="e1", created_by="alice")
    assert (await call(plane, "POST", "/events", None, body)).status == 202
    assert (await call(plane, "GET", "/audit", None)).status == 200
    assert (await plane.client.event("e1")).event.created_by == "alice"
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert any("API AUTHENTICATION IS OFF (--insecure-no-auth)" in w for w in warnings), warnings
