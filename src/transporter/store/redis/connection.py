"""The Redis store's connection: opening it (TLS, no silent retries), and the guard that every
call goes through (the layout migrated first, a timeout, no coredis error escaping)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, NoReturn, Self
from urllib.parse import urlsplit

import coredis
import trio
from coredis.connection import TCPLocation
from coredis.typing import RedisError

from transporter.config.redis_url import (
    Replication,
    is_sentinel,
    parse_sentinel,
    query_of,
    replication_of,
)
from transporter.config.values import ConfigError
from transporter.store.base import StoreError, StoreUnavailable
from transporter.store.redis.chain import AuditChain
from transporter.store.redis.confirm import Confirming
from transporter.store.redis.failover import (
    WRITES,
    Writes,
    moved,
    plain_client,
    sentinel_client,
    with_cause,
)
from transporter.store.redis.keys import DEFAULT_PREFIX, Keys
from transporter.store.redis.migration import migrate
from transporter.store.redis.records import RecordTexts
from transporter.store.redis.rollout_scripts import RolloutScripts
from transporter.store.redis.scripts import Scripts
from transporter.store.rollout_rows import decoded_rollouts

DEFAULT_TIMEOUT = 10.0
NO_WAIT = Replication(wait_replicas=0)


class RedisConnection:
    """The client and what every concern's part shares: keys, scripts, the audit chain and the
    records decoded lately."""

    def __init__(
        self,
        client: coredis.Redis[str],
        *,
        prefix: str,
        call_timeout: float,
        replication: Replication = NO_WAIT,
        sentinel: bool = False,
    ) -> None:
        self._client = client
        self._replication = replication
        """How many replicas each write waits for (the URL's ``wait_replicas``)."""
        self._sentinel = sentinel
        """Whether the primary is found through Sentinels (so it has replicas to wait for)."""
        self._keys = Keys(prefix)
        self._timeout = call_timeout
        self._confirming = Confirming(client, replication, self._keys, patience=call_timeout / 2)
        self._closed = False
        self._scripts = Scripts(client)
        self._chain = AuditChain(self._keys)
        self._texts = RecordTexts()
        """Events and progress decoded lately, used while the stored text is the same."""
        self._rollout_scripts = RolloutScripts(client)
        self._rollouts = decoded_rollouts()
        """Rollouts decoded lately, likewise."""
        self._migrated = False
        self._migrating = trio.Lock()

    @classmethod
    @asynccontextmanager
    async def open(
        cls, url: str, *, prefix: str = DEFAULT_PREFIX, call_timeout: float = DEFAULT_TIMEOUT
    ) -> AsyncIterator[Self]:
        """A store on the server at ``url`` (``redis://``, ``rediss://``, ``unix://``, with
        ``:password@`` or ``user:password@`` when needed; or ``redis+sentinel://`` and
        ``rediss+sentinel://``, the primary the Sentinels name) for the duration of the block.
        With ``?wait_replicas=N`` every write waits until N replicas have it (``WAIT``).

        ``rediss://`` is TLS, verified: the server's certificate must chain to the CA in
        ``?ssl_ca_certs=FILE`` (else the system's) and name the host (unless
        ``ssl_check_hostname=false``); ``ssl_certfile`` and ``ssl_keyfile`` give a client
        certificate. (coredis alone would not check the host name.)

        Connects on first use: an unreachable server shows as :class:`StoreUnavailable` from
        the calls (``ping`` first), not here; the first call migrates an older layout first.
        coredis keeps its connections in a task group of its own, which is why opening is a
        context manager.
        """
        try:
            replication = replication_of(url)
        except ConfigError as exc:
            raise StoreUnavailable(f"bad Redis URL: {exc}") from None
        raised: BaseException | None = None
        try:
            async with _client(url, call_timeout) as client:
                store = cls(
                    client,
                    prefix=prefix,
                    call_timeout=call_timeout,
                    replication=replication,
                    sentinel=is_sentinel(url),
                )
                try:
                    yield store
                except BaseException as exc:
                    raised = exc
                    raise
                finally:
                    await store.aclose()
        except BaseExceptionGroup as group:
            # coredis's task group (a trio nursery) wraps what the caller's block raised in an
            # ExceptionGroup; give the caller back its own exception, as the SQLite store does.
            if raised is None or not _only(group, raised):
                raise
            _raise_again(raised)

    async def aclose(self) -> None:
        """Refuse further calls; the connections close when :meth:`open`'s block ends."""
        self._closed = True

    @asynccontextmanager
    async def _guard(self, *, confirm: bool = True) -> AsyncIterator[None]:
        """Every coredis call of the store: after the layout is migrated (:meth:`_translated`);
        when the calls wrote, not done until the replicas have it (:class:`Confirming`), unless
        ``confirm`` is false (a look at the settings, which must answer without replicas)."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        writes = Writes()
        token = WRITES.set(writes)
        try:
            if not self._migrated:
                async with self._migrating:
                    if not self._migrated:
                        await migrate(self._client, self._keys, self._scripts, self._translated)
                        self._migrated = True
            with self._translated():
                yield
                if writes.made and confirm:
                    await self._confirming.confirm(writes)
        finally:
            WRITES.reset(token)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """A timeout, and no coredis error escapes: what the server or the network did is
        :class:`StoreUnavailable`; what coredis could not send (a string it cannot encode, such
        as a lone surrogate from a JSON body, a value of the wrong type) is :class:`StoreError`,
        the caller's data and not the store's state, so that it is refused, not retried, and
        never ends the control plane."""
        try:
            with trio.fail_after(self._timeout):
                yield
        except trio.TooSlowError:
            raise StoreUnavailable(f"Redis did not answer within {self._timeout} s") from None
        except StoreError:
            raise  # the store's own (InvalidCursor is a ValueError too)
        except (RedisError, OSError) as exc:  # OSError covers TimeoutError
            if moved(exc):  # a pipeline's error: the next call finds the primary again
                self._client.connection_pool.disconnect()
            raise StoreUnavailable(f"Redis: {with_cause(exc)}") from exc
        except (ValueError, TypeError) as exc:  # UnicodeError is a ValueError
            raise StoreError(f"Redis store: cannot store or look up this data: {exc}") from exc

    async def ping(self) -> None:
        async with self._guard():
            await self._client.ping()

    async def durability_warnings(self) -> list[str]:
        """What in the servers' settings breaks the promise that an accepted event is kept
        (:func:`durability_advice`): the primary's, and behind Sentinels each replica's
        persistence too, since any of them may be promoted."""
        try:
            async with self._guard(confirm=False):
                found = await self._client.config_get(
                    ["appendonly", "appendfsync", "min-replicas-to-write"]
                )
                info = await self._client.info("replication")
                read = getattr(self._client, "replica_settings", None)
                replicas = {} if read is None else await read(["appendonly", "appendfsync"])
        except StoreUnavailable as exc:  # CONFIG is often refused on managed Redis
            return [
                f"cannot read Redis's persistence settings ({exc}); make sure to set appendonly"
                " yes and appendfsync always on the Redis server"
            ]
        settings = {str(k): str(v) for k, v in found.items()}
        connected = int(str(info.get("connected_slaves", 0)))
        warnings = durability_advice(
            settings, connected, self._replication.wait_replicas, sentinel=self._sentinel
        )
        for name, each in replicas.items():
            warnings += persistence_advice(each, f"Redis replica {name}")
        return warnings


def durability_advice(
    settings: dict[str, str], replicas: int, wait_replicas: int, *, sentinel: bool
) -> list[str]:
    """Each way Redis's ``settings`` (CONFIG GET), with ``replicas`` connected, and the URL's
    ``wait_replicas`` can lose an accepted event, with what to set instead."""
    warnings = persistence_advice(settings, "Redis")
    if wait_replicas == 0 and (replicas > 0 or sentinel):
        warnings.append(
            f"Redis has {replicas} replica(s) but the store does not wait for them: an event"
            " accepted just before a failover can be lost; add wait_replicas=1 to the store URL"
        )
    if wait_replicas > replicas:
        warnings.append(
            f"the store waits for {wait_replicas} replica(s) but Redis has {replicas} connected:"
            " every write fails (503) until enough replicas are back"
        )
    if wait_replicas > 0 and settings.get("min-replicas-to-write", "0") == "0":
        warnings.append(
            "Redis has min-replicas-to-write 0: a primary cut off from its replicas keeps"
            " writing, and a failover then drops what it wrote (answered 503, so retried);"
            " set min-replicas-to-write 1 and min-replicas-max-lag 10"
        )
    return warnings


def persistence_advice(settings: dict[str, str] | str, server: str) -> list[str]:
    """How ``server``'s ``settings`` (or why they could not be read) can lose an event."""
    advice = f"set appendonly yes and appendfsync always on {server}"
    if isinstance(settings, str):
        return [f"cannot read {server}'s persistence settings ({settings}); {advice}"]
    if settings.get("appendonly") != "yes":
        return [
            f"{server} has appendonly {settings.get('appendonly')!r}: accepted events are lost"
            f" if it restarts or crashes; {advice}"
        ]
    if settings.get("appendfsync") != "always":
        return [
            f"{server} has appendfsync {settings.get('appendfsync')!r}: events accepted in the"
            f" last second can be lost if its machine crashes; {advice}"
        ]
    return []


def _only(group: BaseExceptionGroup[BaseException], raised: BaseException) -> bool:
    """Whether ``raised`` is all that ``group`` holds, in groups nested to any depth."""
    return all(
        _only(each, raised) if isinstance(each, BaseExceptionGroup) else each is raised
        for each in group.exceptions
    )


def _client(url: str, call_timeout: float) -> AbstractAsyncContextManager[coredis.Redis[str]]:
    """The client for ``url``, open for the block (coredis keeps its connections in task groups
    of its own). No coredis retries: our client repeats only what is safe to (failover.py)."""
    options: dict[str, Any] = {"connect_timeout": call_timeout, "stream_timeout": call_timeout}
    try:
        if not is_sentinel(url):
            return plain_client(url, options | tls_options(url), call_timeout)
        target = parse_sentinel(url)
    except (ValueError, RedisError, ConfigError) as exc:
        raise StoreUnavailable(f"bad Redis URL: {exc}") from None
    tls = tls_options(url) if target.tls else {}
    sentinel_options = options | tls
    if target.sentinel_password is not None:
        sentinel_options |= {
            "username": target.sentinel_username,
            "password": target.sentinel_password,
        }
    data = options | tls | {"db": target.db}
    if target.password is not None:
        data |= {"username": target.username, "password": target.password}
    return sentinel_client(
        [TCPLocation(host, port) for host, port in target.sentinels],
        target.service,
        sentinel_options=sentinel_options,
        options=data,
        call_timeout=call_timeout,
    )


def _raise_again(raised: BaseException) -> NoReturn:
    """Raise ``raised`` itself, from the handler of the group that held it."""
    context = raised.__context__
    try:
        raise raised  # the same exception, not a new one
    finally:
        raised.__context__ = context  # not "raised while handling the group"


_TLS_PARAMETERS = {
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
    "ssl_cert_reqs",
}


def tls_options(url: str) -> dict[str, Any]:
    """For ``rediss://`` and ``rediss+sentinel://``: the TLS context, verified by default
    (certificate and host name)."""
    parts = urlsplit(url)
    if parts.scheme not in ("rediss", "rediss+sentinel"):
        return {}
    query = query_of(url)
    unknown = sorted({name for name in query if name.startswith("ssl_")} - _TLS_PARAMETERS)
    if unknown:
        raise StoreUnavailable(f"bad Redis URL: unknown TLS parameter {unknown[0]!r}")
    ca = query.get("ssl_ca_certs")
    try:
        if ca is None:
            context = ssl.create_default_context()
        elif Path(ca).is_dir():
            context = ssl.create_default_context(capath=ca)
        else:
            context = ssl.create_default_context(cafile=ca)
        if query.get("ssl_check_hostname", "true").lower() in ("false", "0", "no"):
            context.check_hostname = False
        if query.get("ssl_cert_reqs", "required").lower() == "none":
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if "ssl_certfile" in query:
            context.load_cert_chain(query["ssl_certfile"], query.get("ssl_keyfile"))
    except (OSError, ssl.SSLError) as exc:
        raise StoreUnavailable(f"Redis TLS settings in the store URL: {exc}") from None
    return {"ssl_context": context}
