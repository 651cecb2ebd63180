"""``transporter cp``: the control plane process."""

from __future__ import annotations

import logging
from functools import partial

import attrs
import trio

from transporter import runtime
from transporter.config import CpConfig
from transporter.cp.api import create_app
from transporter.cp.http import serve_api

log = logging.getLogger("transporter.cp")


@attrs.frozen
class Bound:
    """Where a started control plane listens (the real ports when port 0 was asked for)."""

    api_urls: list[str]


async def serve(
    settings: CpConfig,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[Bound] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with trio.open_nursery() as nursery:
        api_urls: list[str] = await nursery.start(
            partial(serve_api, create_app(), settings.listen, shutdown)
        )
        for url in api_urls:
            log.info("API listening on %s", url)
        task_status.started(Bound(api_urls=api_urls))


def main(settings: CpConfig) -> int:
    runtime.configure_logging(debug=settings.debug)
    return runtime.run(partial(serve, settings))
