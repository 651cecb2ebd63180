"""How a server's role process starts (transporter/runtime.py): what it holds before its role
starts (its modules) is out of the garbage collector's full collections, which then walk only
what the role makes; the garbage made so far is collected first, not kept for good. A short
command (produce) does not pay for that collection."""

from __future__ import annotations

import gc
import weakref

import trio

from transporter import runtime


class Node:
    """An object that can be part of a cycle."""

    other: Node | None = None


def test_a_role_starts_with_what_the_process_holds_out_of_the_collectors_way() -> None:
    seen: dict[str, object] = {}
    enabled = gc.isenabled()
    gc.disable()  # the cycle below is left to the start, not to a collection by chance
    try:
        node = Node()
        node.other = node
        garbage = weakref.ref(node)
        del node

        async def role(shutdown: trio.Event) -> None:
            seen["frozen"] = gc.get_freeze_count()
            seen["garbage kept"] = garbage() is not None

        assert runtime.run(role, long_lived=True) == 0
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()
    assert seen["garbage kept"] is False
    assert isinstance(seen["frozen"], int)
    assert seen["frozen"] > 10_000  # the interpreter, trio, transporter: all of it


def test_a_short_command_starts_without_a_collection() -> None:
    seen: dict[str, int] = {}

    async def role(shutdown: trio.Event) -> None:
        seen["frozen"] = gc.get_freeze_count()

    assert runtime.run(role) == 0
    assert seen["frozen"] == 0
