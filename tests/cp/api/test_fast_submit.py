"""``POST /events`` served on ASGI directly (cp/api/fast_submit.py): only the plainest request
with a kept token, answered as the app answers it; every other request reaches the app as it
came, body included. The app and a real SQLite store, called as hypercorn calls them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import attrs
import pytest
import trio

from tests.bed import pki as test_pki
from tests.bed.manifests import configmap, event_body
from tests.store.test_tokens import created, revoked
from transporter.config.store_spec import StoreSpec
from transporter.cp.api import create_app
from transporter.cp.api.fast_submit import ENDPOINT, FastSubmit
from transporter.cp.api.services import Services
from transporter.cp.intake import Intake
from transporter.cp.live import LiveAgents
from transporter.cp.metrics import reason_of
from transporter.cp.watch import EventWatch
from transporter.security.tokens import Role, new_token
from transporter.store import Store, open_store
from transporter.store.base import StoreUnavailable


@attrs.define
class Served:
    """What one request got, and whether the app (not the fast path) answered it."""

    status: int
    body: Any
    by_app: bool
    raw: tuple[list[tuple[bytes, bytes]], bytes] = ((), b"")  # type: ignore[assignment]
    """The answer's headers and body, as sent."""


@attrs.define
class Api:
    store: Store
    fast: FastSubmit
    token: str
    token_id: str
    app_calls: int = 0
    chunks: int = 1
    """Messages the body is received in."""
    withhold_last: bool = False
    """The body's last message never comes."""

    async def call(
        self,
        body: bytes | Any,
        *,
        method: str = "POST",
        path: str = "/events",
        query: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
        token: str | None = None,
        direct: bool = False,
        then: Any = None,
    ) -> Served:
        """``direct``: to the app alone. ``then``: what ``receive`` does once the body is
        given (waits for ever: the client waits for its answer)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = [
            (b"authorization", f"Bearer {token or self.token}".encode()),
            (b"content-length", str(len(data)).encode()),
            (b"content-type", b"application/json"),
            *(headers or []),
        ]
        if not any(name == b"host" for name, _ in sent):
            sent.append((b"host", b"cp.example:8443"))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": sent,
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8080),
            "extensions": {},
        }
        size = -(-len(data) // self.chunks) or 1
        pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
        given = [
            {"type": "http.request", "body": piece, "more_body": n < len(pieces) - 1}
            for n, piece in enumerate(pieces)
        ]
        if self.withhold_last:
            given.pop()
        out: list[dict[str, Any]] = []
        before = self.app_calls

        async def receive() -> dict[str, Any]:
            if given:
                return given.pop(0)
            if then is not None:
                await then()
            await trio.sleep_forever()  # the client waits for its answer (the app then stops)
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            out.append(message)

        await (self.inner if direct else self.fast)(scope, receive, send)
        start = next(m for m in out if m["type"] == "http.response.start")
        text = b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body")
        headers = sorted((k.lower(), v) for k, v in start["headers"])
        return Served(start["status"], json.loads(text), self.app_calls > before, (headers, text))

    @property
    def inner(self) -> Any:
        return self.fast._app

    def refused(self, reason: str) -> float:
        registry = self.fast.found.metrics.registry
        found = registry.get_sample_value(
            "transporter_api_refused_requests_total", {"reason": reason}
        )
        return found or 0.0


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        yield await _api(store)


async def _api(store: Store, *, auth: bool = True) -> Api:
    live = LiveAgents()
    intake = Intake(store, test_pki.shared().signer, live)
    app = create_app(Services(store, intake, live, EventWatch()), auth=auth)
    assert ENDPOINT in app.view_functions
    text, record = new_token(name="ci", role=Role.SUBMIT, agents=("a",), now=1.0, created_by="t")
    await store.create_token(record, created(record))
    fast = FastSubmit(app)
    served = Api(store, fast, text, record.id)
    inner = fast._app

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        served.app_calls += 1
        await inner(scope, receive, send)

    fast._app = counted
    return served


async def test_a_kept_tokens_event_is_served_without_the_app(api: Api) -> None:
    first = await api.call(event_body("a", configmap("x"), id="e1"))
    assert (first.status, first.by_app) == (202, True)  # the token read, and kept
    second = await api.call(event_body("a", configmap("y"), id="e2"))
    assert (second.status, second.by_app) == (202, False)
    assert second.body == {"event_id": "e2", "agent_known": False, "status": "accepted"}
    stored = await api.store.get_event("e2")
    assert stored is not None and stored.event.created_by == "token:ci"
    assert stored.event.signature  # signed as every event is
    again = await api.call(event_body("a", configmap("y"), id="e2"))
    assert (again.status, again.by_app) == (200, False)
    assert again.body == {
        "event_id": "e2",
        "agent_known": False,
        "status": "exists",
        "state": "queued",
    }
    clash = await api.call(event_body("a", configmap("z"), id="e2"))
    assert (clash.status, clash.by_app) == (409, False)
    assert clash.body == {
        "error": "conflict",
        "message": "event 'e2' exists with different content",
        "field": "id",
    }
    assert api.refused("conflict") == 1  # counted as the app counts its answers
    # byte for byte what the app answers to the same requests
    for body in (
        event_body("a", configmap("y"), id="e2"),
        event_body("a", configmap("z"), id="e2"),
    ):
        fast, by_app = await api.call(body), await api.call(body, direct=True)
        assert (fast.by_app, by_app.by_app) == (False, True)
        assert fast.raw == by_app.raw


async def test_a_body_in_pieces_is_read_whole(api: Api) -> None:
    assert (await api.call(event_body("a", configmap("x")))).by_app
    api.chunks = 5
    served = await api.call(event_body("a", configmap("pieces"), id="p1"))
    assert (served.status, served.by_app) == (202, False)
    stored = await api.store.get_event("p1")
    assert stored is not None and "pieces" in stored.event.payload.manifests[0]


async def test_without_authentication_the_event_says_who_made_it(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        api = await _api(store, auth=False)
        body = event_body("a", configmap("x"), id="o1", created_by="alice")
        served = await api.call(body, token="none")
        assert (served.status, served.by_app) == (202, False)
        stored = await store.get_event("o1")
        assert stored is not None and stored.event.created_by == "alice"


BY_THE_APP: dict[str, tuple[dict[str, Any], int]] = {
    "not JSON": ({"body": b"{"}, 400),
    "a key twice": ({"body": b'{"target_agent": "a", "target_agent": "a"}'}, 400),
    "not valid": ({"body": {"target_agent": "a"}}, 400),
    "out of reach": ({"body": event_body("b", configmap("x"))}, 403),
    "a rollout": (
        {"body": {"target_agents": ["b"], "payload": {"manifests": [configmap("x")]}}},
        403,
    ),
    "a query": ({"body": event_body("a", configmap("q"), id="q1"), "query": b"x=1"}, 202),
    "chunked": (
        {
            "body": event_body("a", configmap("c")),
            "headers": [(b"transfer-encoding", b"chunked")],
        },
        400,
    ),
    "a large body": ({"body": event_body("a", configmap("l"), labels={"x": "y" * 70000})}, 202),
    "a token twice": (
        {"body": event_body("a", configmap("t")), "headers": [(b"authorization", b"Bearer x")]},
        202,  # the app reads the first
    ),
    "another path": ({"body": {"events": [event_body("a", configmap("b"))]}, "path": "/e"}, 404),
    "a GET": ({"body": b"", "method": "GET", "path": "/events"}, 200),
    "a bad host": ({"body": event_body("a", configmap("h")), "headers": [(b"host", b"a..b")]}, 400),
}


UNCHANGED = {"not JSON", "a key twice", "not valid", "out of reach", "a rollout", "a bad host"}
"""Requests the app answers without storing anything: the same answer, byte for byte."""


@pytest.mark.parametrize("what", list(BY_THE_APP))
async def test_every_other_request_reaches_the_app_as_it_came(api: Api, what: str) -> None:
    assert (await api.call(event_body("a", configmap("x")))).by_app  # the token now kept
    kwargs, status = BY_THE_APP[what]
    body = kwargs.pop("body")
    served = await api.call(body, **kwargs)
    assert served.by_app
    assert served.status == status, served.body
    if what in UNCHANGED:  # the body it read given again, whole
        assert served.raw == (await api.call(body, direct=True, **kwargs)).raw


async def test_a_wrong_secret_is_never_served_on_a_kept_record(api: Api) -> None:
    assert (await api.call(event_body("a", configmap("x")))).by_app
    wrong = api.token[:-4] + ("AAAA" if not api.token.endswith("AAAA") else "BBBB")
    served = await api.call(event_body("a", configmap("w"), id="w1"), token=wrong)
    assert (served.status, served.by_app) == (401, True)
    assert await api.store.get_event("w1") is None


async def test_a_token_revoked_since_it_was_kept_is_refused_by_the_app(api: Api) -> None:
    assert (await api.call(event_body("a", configmap("x"), id="e1"))).by_app
    stored = await api.store.get_token(api.token_id)
    assert stored is not None
    await api.store.revoke_token(api.token_id, 2.0, revoked(stored, 2.0))
    served = await api.call(event_body("a", configmap("y"), id="e2"))
    assert (served.status, served.by_app) == (401, True)
    assert served.body["message"].startswith(f"the bearer token {api.token_id} ('ci') was revoked")
    assert await api.store.get_event("e2") is None
    again = await api.call(event_body("a", configmap("y"), id="e3"))
    assert (again.status, again.by_app) == (401, True)  # no longer kept


class FailingSubmits:
    """The real store, whose submissions fail as an unreachable store's do."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failing = False

    async def submit_many(self, *args: Any, **kwargs: Any) -> Any:
        if self.failing:
            raise StoreUnavailable("the store did not answer within 5 s")
        return await self.store.submit_many(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.mark.parametrize("revoke", [False, True])
async def test_an_unreachable_store_is_a_503_unless_the_token_was_revoked(
    tmp_path: Path, revoke: bool
) -> None:
    """As the app answers: the 503 of a write that did not check the token is given once a read
    of the token finds it valid; a token revoked since it was kept gets its 401, audited."""
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as real:
        failing = FailingSubmits(real)
        api = await _api(cast(Store, failing))
        assert (await api.call(event_body("a", configmap("x")))).by_app
        failing.failing = True
        if revoke:
            await real.revoke_token(api.token_id, 2.0, revoked(await _record(api), 2.0))
        served = await api.call(event_body("a", configmap("y"), id="e2"))
        assert not served.by_app
        if not revoke:
            assert served.status == 503
            assert served.body == {
                "error": "store_unavailable",
                "message": "the store did not answer within 5 s",
            }
            return
        assert served.status == 401
        assert served.body["message"].startswith(f"the bearer token {api.token_id} ('ci') was")
        assert (b"www-authenticate", b'Bearer realm="transporter", error="invalid_token"') in (
            served.raw[0]
        )
        refusals = [e for e in await real.audit_after(0) if e.action == "api.refused"]
        assert [e.actor for e in refusals] == ["token:ci"]


async def test_a_body_that_takes_too_long_is_a_408(api: Api) -> None:
    assert (await api.call(event_body("a", configmap("x")))).by_app
    api.fast.app.config["BODY_TIMEOUT"] = 0.05
    api.chunks, api.withhold_last = 2, True  # the second piece never comes
    served = await api.call(event_body("a", configmap("slow")))
    assert (served.status, served.by_app) == (408, False)
    assert served.body["error"] == "request_timeout"
    assert api.refused(reason_of(408) or "") == 1


async def _record(api: Api) -> Any:
    record = await api.store.get_token(api.token_id)
    assert record is not None
    return record
