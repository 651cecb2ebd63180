"""``transporter cp``: the control plane process."""

from __future__ import annotations

import logging
from functools import partial

import attrs
import trio

from transporter import runtime
from transporter.config import Address, CpConfig
from transporter.cp.api import create_app
from transporter.cp.channel import PATH, AgentChannel, ChannelSettings
from transporter.cp.dispatch import Hub
from transporter.cp.http import serve_api
from transporter.store import open_store

log = logging.getLogger("transporter.cp")


@attrs.frozen
class Bound:
    """Where a started control plane listens (the real ports when port 0 was asked for)."""

    api_urls: list[str]
    agent_addresses: list[Address]

    @property
    def api_url(self) -> str:
        return self.api_urls[0]

    @property
    def agent_url(self) -> str:
        address = self.agent_addresses[0]
        return f"ws://{address}{PATH}"


async def serve(
    settings: CpConfig,
    shutdown: trio.Event,
    *,
    channel: ChannelSettings | None = None,
    task_status: trio.TaskStatus[Bound] = trio.TASK_STATUS_IGNORED,
) -> None:
    store_spec = settings.effective_store
    async with open_store(store_spec) as store, trio.open_nursery() as nursery:
        hub = Hub(store, shared_store=store_spec.kind == "redis")
        agents = AgentChannel(hub, channel or ChannelSettings())
        # The agent channel and the expiry task stop at once on shutdown; the API (outer
        # nursery) finishes the requests it is answering first (hypercorn's graceful stop).
        async with trio.open_nursery() as background:
            agent_addresses: list[Address] = await background.start(
                agents.serve, settings.agent_listen
            )
            api_urls: list[str] = await nursery.start(
                partial(serve_api, create_app(hub), settings.listen, shutdown)
            )
            background.start_soon(hub.run)
            log.info("store: %s", store_spec.display)
            for warning in await store.durability_warnings():
                log.warning("store: %s", warning)
            for address in agent_addresses:
                log.info("agent channel listening on ws://%s%s", address, PATH)
            for url in api_urls:
                log.info("API listening on %s", url)
            task_status.started(Bound(api_urls=api_urls, agent_addresses=agent_addresses))
            await shutdown.wait()
            background.cancel_scope.cancel()


def main(settings: CpConfig) -> int:
    runtime.configure_logging(debug=settings.debug)
    return runtime.run(partial(serve, settings))
