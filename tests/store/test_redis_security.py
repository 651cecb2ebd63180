"""The Redis store on a locked Redis, as managed ones are: a password (``requirepass``), an ACL
user limited to the store's keys and without dangerous commands, and TLS with client
certificates (``rediss://``, verified). Real redis-servers (Debian's, built with TLS)."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import pytest

from tests.bed import records as r
from tests.bed.redis import RedisSecurity, running_redis
from transporter.config.store_spec import StoreSpec
from transporter.protocol.identity import Revocation
from transporter.protocol.model import AuditEntry, EventState
from transporter.protocol.status import StatusUpdate
from transporter.store import Store, StoreUnavailable, open_store, verify_audit
from transporter.store.redis.connection import tls_options

pytestmark = pytest.mark.redis  # servers of running_redis(), not of a fixture

PASSWORD = "s3cr:t@p/ss%w0rd?"  # characters a URL must quote (spaces: redis's config would not)
STORE_ACL = "~transporter:* +@all -@dangerous"
"""The store's keys only, and no CONFIG, KEYS, FLUSHALL, DEBUG ... (managed Redis refuse them)."""


async def the_store_works(store: Store) -> None:
    """Every kind of write the control plane makes (scripts included), and reads."""
    await store.ping()
    event = r.event("secured")
    _, created = await store.submit(event, r.accepted_audit(event))
    assert created
    update = StatusUpdate(at=r.T0 + 1, state=EventState.COMPLETED, message="done")
    assert (await store.update_event(event.id, update)) is not None
    assert [e.id for _, e in await store.outbox(event.target_agent)] == []
    await store.audit(AuditEntry(at=r.T0 + 2, action="agent.connected", agent_id="a"))
    revocation = Revocation("serial", "abc", time.time())
    await store.revoke_certificate(revocation, AuditEntry(at=r.T0 + 3, action="x"))
    assert [rev.value for rev in await store.revocations()] == ["abc"]
    assert (await verify_audit(store)).intact
    assert (await store.get_event(event.id)) is not None


async def test_a_password_protected_redis(tmp_path: Path) -> None:
    with running_redis(tmp_path / "redis", security=RedisSecurity(password=PASSWORD)) as server:
        spec = StoreSpec.parse(server.url)
        assert PASSWORD not in spec.display and "***" in spec.display
        async with open_store(spec) as store:
            await the_store_works(store)
        async with open_store(StoreSpec.parse(server.url_as(None, None))) as store:
            with pytest.raises(StoreUnavailable, match=r"(?i)auth"):
                await store.ping()
        async with open_store(StoreSpec.parse(server.url_as(None, "wrong"))) as store:
            with pytest.raises(StoreUnavailable, match=r"(?i)pass"):
                await store.ping()


async def test_an_acl_user_limited_to_the_stores_keys(tmp_path: Path) -> None:
    security = RedisSecurity(password="admin-only", users=(("transporter", PASSWORD, STORE_ACL),))
    with running_redis(tmp_path / "redis", security=security) as server:
        async with open_store(StoreSpec.parse(server.url_as("transporter", PASSWORD))) as store:
            await the_store_works(store)
            # CONFIG is refused to this user, as managed Redis refuse it: said, not fatal.
            (warning,) = await store.durability_warnings()
            assert "cannot read Redis's persistence settings" in warning
        wrong = StoreSpec.parse(server.url_as("transporter", "not-it"))
        async with open_store(wrong) as store:
            with pytest.raises(StoreUnavailable):
                await store.ping()


async def test_tls_with_client_certificates(tmp_path: Path) -> None:
    security = RedisSecurity(password=PASSWORD, tls=True)
    with running_redis(tmp_path / "redis", security=security) as server:
        assert server.url.startswith("rediss://")
        async with open_store(StoreSpec.parse(server.url)) as store:
            await the_store_works(store)
        # Without a client certificate, the server refuses.
        no_cert = server.url_as(None, PASSWORD, client_cert=False)
        async with open_store(StoreSpec.parse(no_cert)) as store:
            with pytest.raises(StoreUnavailable):
                await store.ping()


async def test_tls_verifies_the_server_by_default(tmp_path: Path) -> None:
    """Without the CA named, the system's is used, which never issued the test bed's: refused.
    The host name is checked too (coredis alone would not check it)."""
    with running_redis(tmp_path / "redis", security=RedisSecurity(tls=True)) as server:
        certs = server.certs
        client = f"ssl_certfile={certs.admin_cert}&ssl_keyfile={certs.admin_key}"
        unverified = f"rediss://{server.host}:{server.port}/0?{client}"
        async with open_store(StoreSpec.parse(unverified)) as store:
            with pytest.raises(StoreUnavailable, match=r"(?i)certificate verify failed"):
                await store.ping()
        # The certificate names localhost as well: the same server by that name is fine.
        async with open_store(StoreSpec.parse(server.url.replace("127.0.0.1", "localhost"))) as s:
            await s.ping()
    context = tls_options("rediss://h:1/0")["ssl_context"]
    assert context.check_hostname
    assert context.verify_mode is ssl.CERT_REQUIRED
    lax = tls_options("rediss://h:1/0?ssl_check_hostname=false")["ssl_context"]
    assert not lax.check_hostname


async def test_a_misspelt_tls_parameter_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="unknown TLS parameter 'ssl_ca_cert'"):
        async with open_store(StoreSpec.parse("rediss://127.0.0.1:1/0?ssl_ca_cert=/x")):
            pass
