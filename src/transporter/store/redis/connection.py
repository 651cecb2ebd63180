"""The Redis store's connection: opening it (TLS, no silent retries), and the guard that every
call goes through (the layout migrated first, a timeout, no coredis error escaping)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, NoReturn, Self
from urllib.parse import parse_qs, urlsplit

import coredis
import trio
from coredis.pool import ConnectionPool
from coredis.retry import NoRetryPolicy
from coredis.typing import RedisError

from transporter.store.base import StoreUnavailable
from transporter.store.redis.chain import AuditChain
from transporter.store.redis.keys import DEFAULT_PREFIX, Keys
from transporter.store.redis.migration import migrate
from transporter.store.redis.records import RecordTexts
from transporter.store.redis.rollout_scripts import RolloutScripts
from transporter.store.redis.scripts import Scripts
from transporter.store.redis.tidy import TIDY
from transporter.store.rollout_rows import decoded_rollouts

DEFAULT_TIMEOUT = 10.0


class RedisConnection:
    """The client and what every concern's part shares: keys, scripts, the audit chain and the
    records decoded lately."""

    def __init__(self, client: coredis.Redis[str], *, prefix: str, call_timeout: float) -> None:
        self._client = client
        self._keys = Keys(prefix)
        self._timeout = call_timeout
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
        ``:password@`` or ``user:password@`` when needed) for the duration of the block.

        ``rediss://`` is TLS, verified: the server's certificate must chain to the CA in
        ``?ssl_ca_certs=FILE`` (else the system's) and name the host (unless
        ``ssl_check_hostname=false``); ``ssl_certfile`` and ``ssl_keyfile`` give a client
        certificate. (coredis alone would not check the host name.)

        Connects on first use: an unreachable server shows as :class:`StoreUnavailable` from
        the calls (``ping`` first), not here; the first call migrates an older layout first.
        coredis keeps its connections in a task group of its own, which is why opening is a
        context manager.
        """
        client = _client(url, call_timeout)
        raised: BaseException | None = None
        try:
            async with client:
                store = cls(client, prefix=prefix, call_timeout=call_timeout)
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
            if raised is None or list(group.exceptions) != [raised]:
                raise
            _raise_again(raised)

    async def aclose(self) -> None:
        """Refuse further calls; the connections close when :meth:`open`'s block ends."""
        self._closed = True

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """Every coredis call of the store: after the layout is migrated (:meth:`_translated`)."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        if not self._migrated:
            async with self._migrating:
                if not self._migrated:
                    await migrate(self._client, self._keys, self._scripts, self._translated)
                    self._migrated = True
        with self._translated():
            yield

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """A timeout, and no coredis error escapes."""
        try:
            with trio.fail_after(self._timeout):
                yield
        except trio.TooSlowError:
            raise StoreUnavailable(f"Redis did not answer within {self._timeout} s") from None
        except (RedisError, OSError) as exc:  # OSError covers TimeoutError
            raise StoreUnavailable(f"Redis: {_with_cause(exc)}") from exc

    async def ping(self) -> None:
        async with self._guard():
            await self._client.ping()

    async def durability_warnings(self) -> list[str]:
        """Redis keeps what its persistence settings keep: ``appendonly yes`` with
        ``appendfsync always`` writes every accepted event to disk before it answers."""
        advice = "set appendonly yes and appendfsync always on the Redis server"
        try:
            async with self._guard():
                found = await self._client.config_get(["appendonly", "appendfsync"])
        except StoreUnavailable as exc:  # CONFIG is often refused on managed Redis
            return [f"cannot read Redis's persistence settings ({exc}); make sure to {advice}"]
        settings = {str(k): str(v) for k, v in found.items()}
        if settings.get("appendonly") != "yes":
            return [
                f"Redis has appendonly {settings.get('appendonly')!r}: accepted events are lost"
                f" if Redis restarts or crashes; {advice}"
            ]
        if settings.get("appendfsync") != "always":
            return [
                f"Redis has appendfsync {settings.get('appendfsync')!r}: events accepted in the"
                f" last second can be lost if Redis's machine crashes; {advice}"
            ]
        return []


def _client(url: str, call_timeout: float) -> coredis.Redis[str]:
    try:
        pool = ConnectionPool.from_url(
            url,
            decode_components=True,  # a user name or password as URLs write them: %-quoted
            decode_responses=True,
            connect_timeout=call_timeout,
            stream_timeout=call_timeout,
            **tls_options(url),
        )
    except (ValueError, RedisError) as exc:
        raise StoreUnavailable(f"bad Redis URL: {exc}") from None
    pool.connection_class = TIDY.get(pool.connection_class, pool.connection_class)
    # No silent retries: a script whose reply was lost may have run, and running it again
    # would tell the caller "not created" or "did not apply" about its own write. The
    # caller hears StoreUnavailable (outcome unknown) and decides.
    return coredis.Redis(connection_pool=pool, decode_responses=True, retry_policy=NoRetryPolicy())


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
    """For ``rediss://``: the TLS context, verified by default (certificate and host name)."""
    parts = urlsplit(url)
    if parts.scheme != "rediss":
        return {}
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
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


def _with_cause(exc: BaseException) -> str:
    """The error and what caused it: coredis's "Unable to establish a connection" says why
    (refused, a certificate that does not verify ...) only in its cause."""
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f": {cause}"
    return text
