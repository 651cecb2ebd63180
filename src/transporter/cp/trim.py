"""Giving freed memory back to the system after a burst of connections (glibc's
``malloc_trim``).

glibc's malloc keeps memory freed in the middle of its heap for later use, so the process's RSS
stays near its high-water mark. A burst of TLS handshakes (every agent dialling back after a
control-plane restart) leaves much of it behind (``bench/memory.py`` shows how much). So the
control plane trims a little after connections came or went, at most every :data:`INTERVAL`
seconds, in a worker thread (a trim of a large heap takes a while, without stopping other
threads for long).

Where the C library has no ``malloc_trim`` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Awaitable, Callable
from functools import partial

import trio

log = logging.getLogger(__name__)

INTERVAL = 10.0
"""Seconds between looks at whether connections came or went (and so, trims) at most."""
TIMEOUT = 10.0
"""Seconds a trim may take before it is abandoned (it finishes in its thread regardless)."""

Trim = Callable[[], object]
Runner = Callable[[Trim], Awaitable[object]]


def malloc_trim() -> Trim | None:
    """``malloc_trim(0)`` of the C library this process runs on, or ``None`` without one."""
    try:
        libc = ctypes.CDLL(None)
        function = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return lambda: function(0)


async def in_a_thread(trim: Trim, *, limiter: trio.CapacityLimiter | None = None) -> None:
    """Run ``trim`` in a worker thread (under ``limiter``), abandoned after :data:`TIMEOUT`
    seconds."""
    with trio.move_on_after(TIMEOUT):
        await trio.to_thread.run_sync(trim, limiter=limiter, abandon_on_cancel=True)


async def trim_after_changes(
    changes: Callable[[], int],
    *,
    trim: Trim | None = None,
    interval: float = INTERVAL,
    run: Runner | None = None,
) -> None:
    """Trim once ``changes()``, a count of connections opened and closed, has moved since the
    last look; every ``interval`` seconds at most. ``run`` runs each trim (default: in a
    worker thread, one at a time). Runs until cancelled."""
    trim = trim or malloc_trim()
    if trim is None:
        log.debug("no malloc_trim in this C library: freed memory is not given back")
        return
    run = run or partial(in_a_thread, limiter=trio.CapacityLimiter(1))
    seen = changes()
    while True:
        await trio.sleep(interval)
        now = changes()
        if now == seen:
            continue
        seen = now
        await run(trim)
