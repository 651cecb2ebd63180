"""Submissions admitted on a token record kept from an earlier request (cp/api/access.py,
``needs(..., kept=True)``), and their write checking the token again: a revocation still holds
at once for them, with the gate's own refusal, nothing stored, on both stores and across
control planes; and the gate does not read the store for a kept token (on a real store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import attrs
import pytest
import trio

from tests.bed.clients import assert_error
from tests.bed.harness import ControlPlane
from tests.bed.manifests import configmap, event_body
from tests.bed.redis import RedisServer
from tests.e2e.test_auth import (
    call,
    refusals,
    revoke_with_the_command,
    stored_event_ids,
    two_planes,
)
from tests.store.test_tokens import created
from transporter.config.store_spec import StoreSpec
from transporter.cp.api import access as auth
from transporter.cp.api.token_reads import KeptTokens
from transporter.security.tokens import Role, TokenRecord, new_token
from transporter.store import Store, open_store


def assert_revoked(answer: Any, token_id: str) -> None:
    error = assert_error(answer, 401, "unauthorized")
    assert error["message"].startswith(f"the bearer token {token_id} ('ci') was revoked at ")
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


FIRST_AFTER_THE_REVOCATION: dict[str, tuple[str, str, Any]] = {
    "an event": ("POST", "/events", event_body("a", configmap("x"), id="e3")),
    "a batch": ("POST", "/events/batch", {"events": [event_body("a", configmap("y"), id="e4")]}),
    "what it stored before": ("POST", "/events", event_body("a", configmap("x"), id="e1")),
    "a rollout": (
        "POST",
        "/events",
        {"id": "r1", "target_agents": ["a"], "payload": {"manifests": [configmap("z")]}},
    ),
    "a body that is not JSON": ("POST", "/events", "{"),
    "an event that is not valid": ("POST", "/events", {"target_agent": "a"}),
    "an agent out of its reach": ("POST", "/events", event_body("b", configmap("x"))),
    "a batch out of its reach": (
        "POST",
        "/events/batch",
        {"events": [event_body("b", configmap("y"))]},
    ),
    "a batch with nothing valid": ("POST", "/events/batch", {"events": [{"nope": 1}]}),
    "OPTIONS": ("OPTIONS", "/events", None),
}


@pytest.mark.parametrize("what", list(FIRST_AFTER_THE_REVOCATION))
async def test_a_kept_token_revoked_is_refused_at_once(plane: ControlPlane, what: str) -> None:
    """Whatever its first request after the revocation asks (its record kept by the request
    before), it is refused as at the gate (never a 2xx, 400 or 403), audited with who it was,
    and nothing is stored."""
    token = await plane.new_token("ci", Role.SUBMIT, ("a",))
    first = await call(plane, "POST", "/events", token, event_body("a", configmap("x"), id="e1"))
    assert first.status == 202  # its record is kept from here on
    token_id = await revoke_with_the_command(plane, token)
    method, path, body = FIRST_AFTER_THE_REVOCATION[what]
    assert_revoked(await call(plane, method, path, token, body), token_id)
    assert await stored_event_ids(plane) == {"e1"}
    refused = [entry for entry in await refusals(plane) if entry.actor == "token:ci"]
    wanted = f"the bearer token {token_id} ('ci') was revoked at "
    assert [wanted in entry.detail for entry in refused] == [True]


async def test_a_kept_token_of_another_role_revoked_is_refused_as_revoked(
    plane: ControlPlane,
) -> None:
    """A read token kept (a GET read it) that asks to submit once revoked: 401, not 403."""
    token = await plane.new_token("ci", Role.READ, ("*",))
    assert (await call(plane, "GET", "/events", token)).status == 200
    token_id = await revoke_with_the_command(plane, token)
    body = event_body("a", configmap("x"))
    assert_revoked(await call(plane, "POST", "/events", token, body), token_id)


async def test_two_control_planes_refuse_a_kept_token_at_once(
    nursery: trio.Nursery, tmp_path: Path, redis_server: RedisServer
) -> None:
    one, two = await two_planes(nursery, tmp_path, redis_server)
    token = await one.new_token("ci", Role.SUBMIT, ("*",))
    for n, plane in enumerate((one, two)):
        body = event_body("a", configmap("x"), id=f"kept-{n}")
        assert (await call(plane, "POST", "/events", token, body)).status == 202
    token_id = await revoke_with_the_command(one, token)
    for n, plane in enumerate((one, two)):
        body = event_body("a", configmap("x"), id=f"after-{n}")
        assert_revoked(await call(plane, "POST", "/events", token, body), token_id)
    assert await stored_event_ids(one) == {"kept-0", "kept-1"}


class CountedReads:
    """A real store whose token reads are counted."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0

    async def get_token(self, token_id: str) -> TokenRecord | None:
        self.reads += 1
        return await self.store.get_token(token_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@auth.needs(Role.SUBMIT, kept=True)
async def _submits() -> None: ...


@auth.needs(Role.SUBMIT)
async def _reads() -> None: ...


async def test_the_gate_reads_a_kept_token_once_and_keeps_only_valid_ones(tmp_path: Path) -> None:
    async with open_store(StoreSpec.sqlite_in(tmp_path)) as real:
        text, record = new_token(
            name="ci", role=Role.SUBMIT, agents=("*",), now=1.0, created_by="t"
        )
        await real.create_token(record, created(record))
        store = CountedReads(real)
        gate = auth.Gate(cast(Store, store))
        gate.learn({"submits": _submits, "reads": _reads})
        for _ in range(3):
            caller = await gate.admit("submits", f"Bearer {text}")
            assert caller.token == record
        assert store.reads == 1  # then kept
        assert (await gate.admit("submits", f"Bearer {text}", fresh=True)).kept is False
        assert (await gate.admit("reads", f"Bearer {text}")).kept is False
        assert store.reads == 3  # an endpoint not declared kept reads at every request
        wrong = text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB")
        with pytest.raises(auth.Refused, match="not valid"):  # the secret is still compared
            await gate.admit("submits", f"Bearer {wrong}")
        unknown, _ = new_token(name="x", role=Role.SUBMIT, agents=("*",), now=1.0, created_by="t")
        for _ in range(2):
            with pytest.raises(auth.Refused, match="not valid"):
                await gate.admit("submits", f"Bearer {unknown}")
        assert store.reads == 6  # unknown tokens are never kept


def test_kept_tokens_are_bounded_and_keep_only_valid_records() -> None:
    kept = KeptTokens(most=2)
    records = [
        new_token(name=f"t{n}", role=Role.READ, agents=("*",), now=1.0, created_by="t")[1]
        for n in range(3)
    ]
    for record in records:
        kept.saw(record.id, record)
    assert kept.get(records[0].id) is None  # the longest unused went first
    assert kept.get(records[2].id) == records[2]
    kept.saw(records[2].id, attrs.evolve(records[2], revoked_at=5.0))
    assert kept.get(records[2].id) is None
    kept.saw(records[1].id, None)
    assert kept.get(records[1].id) is None
