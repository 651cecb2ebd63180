"""Serving the HTTP API with hypercorn on trio."""

from __future__ import annotations

import logging
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from transporter.config import Address


async def serve_api(
    app: Any,
    address: Address,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``address`` until ``shutdown`` is set; started() gives the bound URLs."""
    hc = HypercornConfig()
    hc.bind = [str(address)]
    hc.accesslog = None
    # Through our logging setup (one format, one level), not hypercorn's own stderr handler.
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 5.0
    hc.include_server_header = False
    await serve(app, hc, shutdown_trigger=shutdown.wait, task_status=task_status)
