"""The store as the control plane uses it, each call timed for its metrics.

A thin wrapper: each of the :class:`~transporter.store.base.Store` protocol's operations (a
fixed set of names, read from the protocol itself) is timed by name, and counted when the
store was unavailable; a cancelled call is neither. Anything else is the store's own attribute,
untouched.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, cast

from transporter.store.base import Store, StoreUnavailable

OPERATIONS: Final = frozenset(
    name
    for name, member in inspect.getmembers(Store)
    if not name.startswith("_") and inspect.iscoroutinefunction(member)
)
"""The store's operations, by name: the only values of the metrics' ``operation`` label."""


class Observer(Protocol):
    def store_call(self, operation: str, seconds: float, *, failed: bool) -> None: ...


class _TimedStore:
    def __init__(self, inner: Store, observer: Observer) -> None:
        self._inner = inner
        self._observer = observer

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        if name not in OPERATIONS:
            return found
        timed = _timed(name, found, self._observer)
        setattr(self, name, timed)  # found here from now on, without __getattr__
        return timed


def _timed(
    name: str, call: Callable[..., Awaitable[Any]], observer: Observer
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(call)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await call(*args, **kwargs)
        except StoreUnavailable:
            observer.store_call(name, time.perf_counter() - started, failed=True)
            raise
        except Exception:  # the caller's fault (a conflict, a bad cursor): timed all the same
            observer.store_call(name, time.perf_counter() - started, failed=False)
            raise
        observer.store_call(name, time.perf_counter() - started, failed=False)
        return result

    return timed


def timed_store(inner: Store, observer: Observer) -> Store:
    """``inner``, each call of the store's operations reported to ``observer``."""
    return cast(Store, _TimedStore(inner, observer))
