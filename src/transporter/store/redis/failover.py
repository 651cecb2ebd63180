"""The coredis client the Redis store talks through: it finds the primary again after a failover
(through Sentinels, or the same address), retries only a call that cannot have run twice, and
tells the store which of its calls wrote, so that the store can wait until replicas have them.

A retry is safe when the command was refused before it ran (``READONLY`` from a primary turned
replica, ``NOREPLICAS`` from one with too few replicas, ``LOADING``, a connection that could not
be made or whose server is no longer the primary), or when it only reads. A write whose reply was
lost is never sent again: it may have run, and the caller must hear "outcome unknown".
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from typing import Any, Final

import attrs
import coredis
import trio
from coredis.commands.request import CommandRequest
from coredis.connection import TCPLocation
from coredis.connection._sentinel import SentinelManagedConnection
from coredis.exceptions import (
    BusyLoadingError,
    ConnectionError,
    ReadOnlyError,
    ResponseError,
    SentinelError,
)
from coredis.globals import READONLY_COMMANDS
from coredis.patterns.pipeline import Pipeline
from coredis.pool._sentinel import SentinelConnectionPool
from coredis.retry import NoRetryPolicy
from coredis.typing import RedisError

from transporter.rounds import Rounds
from transporter.store.redis.named_primary import Named, ask_sentinels
from transporter.store.redis.pool_slots import KeptPlaces
from transporter.store.redis.rollout_scripts import ROLLOUT_PAGE
from transporter.store.redis.scripts import MIGRATION_FINISH, MIGRATION_SCAN, PAGE, REVOCATIONS
from transporter.store.redis.tidy import TIDY

RETRY_FIRST = 0.05
RETRY_MOST = 0.5
"""Seconds between the tries of a call refused during a failover: doubled each time from the
first to the most, so a promotion (a second or two with Sentinel) is found soon, and never past
the call's timeout."""

_READ_ONLY_SCRIPTS: Final = frozenset(
    hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()  # how Redis names scripts
    for text in (PAGE, REVOCATIONS, MIGRATION_SCAN, MIGRATION_FINISH, ROLLOUT_PAGE)
)
"""The SHA-1s of the store's scripts that only read, or (MIGRATION_FINISH, at each opening) set
once what they would set again the same: safe to run again, and nothing to wait for."""
_NO_WRITE: Final = frozenset(
    {b"PUBLISH", b"WAIT", b"PING", b"ROLE", b"INFO", b"CONFIG", b"SCRIPT LOAD"}
)
"""Commands that write no data, though coredis does not list them as read-only."""
_SCRIPT_CALLS: Final = frozenset({b"EVALSHA", b"EVALSHA_RO", b"EVAL", b"EVAL_RO"})


@attrs.define
class Writes:
    """Whether the calls of one store operation wrote (any task of it: they share this), and
    on which servers (their addresses) the writes were answered."""

    made: bool = False
    servers: set[str] = attrs.Factory(set)


WRITES: ContextVar[Writes | None] = ContextVar("transporter_redis_writes", default=None)
_SERVER: ContextVar[str | None] = ContextVar("transporter_redis_server", default=None)
"""The address of the server of the last connection this task was handed (a call's, a
pipeline's): which server answered what the task sent just now."""


def last_server() -> str | None:
    """The server the calling task's last call or pipeline went to."""
    return _SERVER.get()


def _answered_write() -> None:
    writes = WRITES.get()
    server = _SERVER.get()
    if writes is not None and server is not None:
        writes.servers.add(server)


def reads_only(name: bytes, arguments: tuple[Any, ...]) -> bool:
    """Whether command ``name`` with ``arguments`` can change no data."""
    if name in _SCRIPT_CALLS:
        sha = arguments[0] if arguments else b""
        text = sha.decode() if isinstance(sha, bytes) else str(sha)
        return text in _READ_ONLY_SCRIPTS
    return name in READONLY_COMMANDS or name in _NO_WRITE


def _note(name: bytes, arguments: tuple[Any, ...]) -> None:
    writes = WRITES.get()
    if writes is not None and not reads_only(name, arguments):
        writes.made = True


def moved(exc: BaseException) -> bool:
    """Whether ``exc`` says the primary may be elsewhere now, so that the pool's connections go
    (the next ones are made where the Sentinels say it is). Not when no connection could be
    had: there is none to drop, and the others may be busy with calls that are going well."""
    if isinstance(exc, NotSent):
        return False
    return isinstance(exc, (ConnectionError, ReadOnlyError, SentinelError)) or refused_for_replicas(
        exc
    )


def refused_for_replicas(exc: BaseException) -> bool:
    return isinstance(exc, ResponseError) and str(exc).startswith("NOREPLICAS")


class NotSent(ConnectionError):
    """No connection to the primary could be had: the command was not sent."""


def may_retry(command: CommandRequest[Any], exc: BaseException, *, unsent: bool = True) -> bool:
    """Whether ``command``, which failed with ``exc``, cannot have changed anything (and, with
    ``unsent`` false, was not refused for want of a connection: see FailoverRedis)."""
    if isinstance(exc, NotSent):
        return unsent
    if isinstance(exc, (ReadOnlyError, BusyLoadingError, SentinelError)):
        return True  # refused before it ran
    if refused_for_replicas(exc):
        return True  # a script's first write is refused, and nothing of it is written
    if isinstance(exc, (ConnectionError, OSError)):
        return reads_only(command.name, command.arguments)
    return False


class FailoverRedis(coredis.Redis[str]):
    """A client whose calls are tried again while that is safe (:func:`may_retry`), for at most
    :attr:`retry_for` seconds, and which notes in :data:`WRITES` the calls that may write."""

    retry_for: float = 10.0
    count_replicas: Callable[[], Awaitable[int]] | None = None
    """How many replicas the Sentinels see up and in step now (behind Sentinels only)."""
    replica_settings: Callable[[list[str]], Awaitable[dict[str, dict[str, str] | str]]] | None = (
        None
    )
    """Each replica's ``CONFIG GET`` of these names, or why it could not be read (likewise)."""
    primary_named: Callable[[], Awaitable[Named]] | None = None
    """The primary the Sentinels name, asked after the call (likewise; see named_primary)."""
    retry_unsent: bool = True
    """Whether a call that found no connection is tried again: behind Sentinels the primary
    may be between two servers; one server that refuses connections is down, said at once."""

    async def execute_command(self, command: CommandRequest[Any]) -> Any:
        _note(command.name, command.arguments)
        deadline = trio.current_time() + self.retry_for
        delay = RETRY_FIRST
        while True:
            try:
                answer = await super().execute_command(command)
            except (RedisError, OSError) as exc:
                if moved(exc):
                    self.connection_pool.disconnect()  # the next call asks where it is now
                if (
                    not may_retry(command, exc, unsent=self.retry_unsent)
                    or trio.current_time() + delay > deadline
                ):
                    raise
            else:
                if not reads_only(command.name, command.arguments):
                    _answered_write()
                return answer
            await trio.sleep(delay)
            delay = min(delay * 2, RETRY_MOST)

    def pipeline(
        self, transaction: bool = True, *, raise_on_error: bool = True, timeout: float | None = None
    ) -> Pipeline[str]:
        return _NotingPipeline(self, transaction, raise_on_error, timeout)


class _NotingPipeline(Pipeline[str]):
    async def _execute(self) -> None:
        stack = self.command_stack
        wrote = any(not reads_only(each.name, each.arguments) for each in stack)
        await super()._execute()
        if wrote:
            _answered_write()

    def create_request(
        self, name: bytes, *arguments: Any, callback: Any, execution_parameters: Any = None
    ) -> Any:
        _note(name, arguments)
        return super().create_request(
            name, *arguments, callback=callback, execution_parameters=execution_parameters
        )


class _Unsent:
    """A pool whose failure to hand out a connection says that nothing was sent."""

    async def get_connection(self, **kwargs: Any) -> Any:
        try:
            connection = await super().get_connection(**kwargs)  # type: ignore[misc]
        except (ConnectionError, SentinelError, OSError) as exc:
            # not a refused login or the like: that is said at once, not tried again
            raise NotSent(with_cause(exc)) from exc
        _SERVER.set(str(connection.location))  # the caller's task: get_connection is awaited
        return connection


class _Pool(_Unsent, KeptPlaces):
    pass


class _SentinelPool(_Unsent, SentinelConnectionPool, KeptPlaces):
    """The primary's connections, made where the Sentinels say it is now (tidy on failure)."""

    async def _construct_connection(self) -> SentinelManagedConnection:
        location = await self.get_primary_location()
        tidy: type[SentinelManagedConnection] = TIDY[SentinelManagedConnection]
        return tidy(location, self.service_name, True, **self.connection_kwargs)


def plain_client(url: str, options: dict[str, Any], call_timeout: float) -> FailoverRedis:
    """The client of a ``redis://``, ``rediss://`` or ``unix://`` URL."""
    pool = _Pool.from_url(url, decode_components=True, decode_responses=True, **options)
    pool.connection_class = TIDY.get(pool.connection_class, pool.connection_class)
    # coredis's own retries stay off (NoRetryPolicy): ours know which calls are safe to repeat.
    client = FailoverRedis(
        connection_pool=pool, decode_responses=True, retry_policy=NoRetryPolicy()
    )
    client.retry_for = call_timeout
    client.retry_unsent = False
    return client


@asynccontextmanager
async def sentinel_client(
    sentinels: list[TCPLocation],
    service: str,
    *,
    sentinel_options: dict[str, Any],
    options: dict[str, Any],
    call_timeout: float,
) -> AsyncIterator[FailoverRedis]:
    """The primary of ``service`` as ``sentinels`` name it now, open for the block: each new
    connection asks them again, and one made to a server that is no longer the primary is
    refused (coredis checks its ROLE)."""
    sentinel: coredis.Sentinel[str] = coredis.Sentinel(
        sentinels, sentinel_kwargs=sentinel_options, decode_responses=True, **options
    )
    for each in sentinel.sentinels:
        pool = each.connection_pool
        pool.connection_class = TIDY.get(pool.connection_class, pool.connection_class)
    client = sentinel.primary_for(
        service, redis_class=FailoverRedis, connection_pool_class=_SentinelPool
    )
    assert isinstance(client, FailoverRedis)
    client.retry_for = call_timeout

    async def replicas_up() -> int:
        return len(await replicas_in_step(sentinel, service))

    async def replica_settings(names: list[str]) -> dict[str, dict[str, str] | str]:
        replicas = await replicas_in_step(sentinel, service, linked=False)
        return {
            f"{host}:{port}": await _settings(host, port, options, names) for host, port in replicas
        }

    rounds = Rounds[Named](lambda: ask_sentinels(sentinel, service))
    client.count_replicas = replicas_up
    client.replica_settings = replica_settings
    client.primary_named = rounds.after_now
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(sentinel)
        await stack.enter_async_context(client)
        yield client


async def replicas_in_step(
    sentinel: coredis.Sentinel[str], service: str, *, linked: bool = True
) -> list[tuple[str, int]]:
    """The replicas of ``service`` that the first Sentinel to answer sees up (neither down nor
    disconnected from it), and, when ``linked``, that copy the primary it names now: their
    ``master-link-status`` ok, their ``master-host``/``master-port`` that primary's (the
    fields of ``SENTINEL REPLICAS``, from the replica's ``INFO``, which the Sentinel asks for
    every 10 s, every second in a failover). A replica sent elsewhere (``REPLICAOF``), whose
    link is down, or that is still syncing confirms no write, and waiting for it held every
    write until the Sentinels repaired it. A replica being promoted still counts: the Sentinel
    keeps its last fields until the switch, so the old primary's writes are refused."""
    for each in sentinel.sentinels:
        try:
            primary = await each.sentinel_get_master_addr_by_name(service)
            replicas = await each.sentinel_replicas(service)
        except (ConnectionError, ResponseError, TimeoutError):
            continue
        if not primary:
            continue
        return [
            (str(replica["ip"]), int(str(replica["port"])))
            for replica in replicas
            if not (replica["is_odown"] or replica["is_sdown"] or replica["is_disconnected"])
            and (not linked or _copies(replica, primary))
        ]
    return []


def _copies(replica: dict[str, Any], primary: tuple[str, int]) -> bool:
    """Whether ``replica`` (a ``SENTINEL REPLICAS`` entry) is to confirm ``primary``'s writes:
    in step with it, or being promoted in its place.

    A replica being promoted counts, so that the old primary's writes are refused until the
    switch (the ``WAIT`` for it never returns). The Sentinel leading a failover reads the
    replica's ``INFO`` every second: once it has left its primary (``role-reported`` master,
    the ``promoted`` flag) it no longer copies it. Counted out then, the old primary's writes
    were confirmed by the other replica alone, just before the Sentinels sent that one to the
    new primary, which never had them: accepted events lost in a ``SENTINEL FAILOVER`` (seen
    in CI, 72 of 120)."""
    flags = str(replica.get("flags", "")).split(",")
    if "promoted" in flags or replica.get("role-reported") == "master":
        return True
    return replica.get("master-link-status") == "ok" and (
        str(replica.get("master-host")),
        str(replica.get("master-port")),
    ) == (primary[0], str(primary[1]))


async def _settings(
    host: str, port: int, options: dict[str, Any], names: list[str]
) -> dict[str, str] | str:
    """``CONFIG GET`` of ``names`` on the server at ``host``:``port`` (the data servers'
    login and TLS), or why it could not be read."""
    server: coredis.Redis[str] = coredis.Redis(
        host, port, decode_responses=True, retry_policy=NoRetryPolicy(), **options
    )
    try:
        async with server:
            found = await server.config_get(names)
    except (RedisError, OSError) as exc:
        return with_cause(exc)
    return {str(name): str(value) for name, value in found.items()}


def with_cause(exc: BaseException) -> str:
    """The error and what caused it: coredis's "Unable to establish a connection" says why
    (refused, a certificate that does not verify ...) only in its cause."""
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f": {cause}"
    return text


__all__ = [
    "WRITES",
    "FailoverRedis",
    "NotSent",
    "Writes",
    "last_server",
    "moved",
    "plain_client",
    "sentinel_client",
    "with_cause",
]
