"""The Redis store's guard: data coredis cannot send (a lone surrogate a JSON body may carry, a
value of the wrong type) is refused as the caller's (StoreError), never escapes as a coredis
or codec error that would end the control plane, and is not taken for Redis being down."""

from __future__ import annotations

import pytest

from tests.bed import records as r
from tests.bed.redis import RedisServer
from transporter.config.store_spec import StoreSpec
from transporter.store import StoreError, StoreUnavailable, open_store

pytestmark = pytest.mark.redis

SURROGATE = "ev-\ud800"
"""What ``json.loads('"ev-\\\\ud800"')`` gives: a str that UTF-8 cannot encode."""


async def test_a_string_redis_cannot_be_sent_is_the_callers_error(
    redis_server: RedisServer,
) -> None:
    async with open_store(StoreSpec.parse(redis_server.url)) as store:
        for call in (
            lambda: store.get_event(SURROGATE),
            lambda: store.get_agent(SURROGATE),
            lambda: store.put_agent(r.agent(SURROGATE)),
        ):
            with pytest.raises(StoreError) as caught:
                await call()
            assert not isinstance(caught.value, StoreUnavailable)
            assert "cannot store or look up this data" in str(caught.value)
            assert "\n" not in str(caught.value)
        await store.ping()  # the store goes on
        event = r.event("ev-after")
        await store.submit(event, r.accepted_audit(event))
        assert await store.get_event(event.id) is not None
