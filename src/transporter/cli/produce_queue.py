"""``produce k8s --mode queue --redis URL``: the flags, and the queue the producer appends to,
opened here (the command line may reach the store's package; the producer may not)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from transporter.cli.commands import Parser, Values
from transporter.cli.flags import Flag
from transporter.config.store_spec import StoreSpec
from transporter.config.values import ConfigError
from transporter.produce.queue import Append, QueueError


def parse_redis_url(text: str) -> str:
    try:
        spec = StoreSpec.parse(text)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    if spec.kind != "redis":
        raise ConfigError(
            "give the Redis URL of the control planes' store (redis[s]://… or"
            " redis[s]+sentinel://…)"
        )
    return spec.url


MODE = Flag(
    "--mode",
    "how to submit: http (POST to --cp-url) or queue (append to the control planes' queue on"
    " --redis)",
    str,
    "http",
    choices=("http", "queue"),
)
REDIS = Flag(
    "--redis",
    "--mode queue: the Redis of the control planes' store, redis[s]://[USER:PASSWORD@]HOST:PORT/DB"
    " or redis[s]+sentinel://[USER:PASSWORD@]S1,S2,S3/SERVICE (a user that may only XADD and"
    " XLEN the queue, and WAIT and ROLE, will do; give it through TRANSPORTER_REDIS)",
    parse_redis_url,
    metavar="URL",
)


def queue_of(values: Values, parser: Parser) -> dict[str, Any]:
    """The queue's settings of ``produce k8s`` (:class:`config.produce.ProduceConfig`)."""
    if values["mode"] == "queue":
        if values["redis"] is None:
            parser.error("--mode queue needs --redis URL (or TRANSPORTER_REDIS)")
        return {"mode": "queue", "redis": values["redis"], "open_queue": open_queue}
    if values["redis"] is not None:
        parser.error("--redis: only with --mode queue")
    return {"mode": "http"}


@asynccontextmanager
async def open_queue(url: str) -> AsyncIterator[Append]:
    """The queue on the Redis at ``url``, for the block; its failures as :class:`QueueError`."""
    from transporter.store import StoreError  # lazy: coredis only when the queue is used
    from transporter.store.redis.queue_append import OutcomeUnknown, open_appender

    try:
        async with open_appender(url) as appender:

            async def append(fields: Mapping[str, str]) -> str:
                try:
                    return await appender.append(fields)
                except OutcomeUnknown as exc:
                    raise QueueError(str(exc), unknown=True) from None
                except StoreError as exc:
                    raise QueueError(str(exc)) from None

            yield append
    except StoreError as exc:
        raise QueueError(str(exc)) from None
