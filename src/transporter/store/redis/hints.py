"""The hints replicas on one Redis send each other on the channel ``P notify``.

A message is lines of text: the sender's origin (random, one per store object, so that a
replica ignores its own), then one hint a line::

    queued AGENT                 an event for AGENT was stored
    progressed EVENT AGENT 0|1   EVENT's progress was stored (1: it ended)
    claimed AGENT SEQ            a replica took AGENT's live session as number SEQ

Agent and event ids hold no space nor newline (:mod:`transporter.protocol.ids`), so they need
no quoting. A batch that writes many events sends one message of many lines (at most
:data:`LINES_PER_MESSAGE`), not one message an event; a message of an origin alone tells
nothing (a replica tries whether it may use the channel with it). Whatever else is on the channel
(another program, an older or newer version) is refused line by line and never trusted: a hint
only wakes, what is sent or answered is read from the store.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator

from transporter.protocol import ids
from transporter.store.replica_feed import ChangeSink

LINES_PER_MESSAGE = 1000
"""Hints in one message at most (a batch of more sends several)."""
MAX_MESSAGE = 1024 * 1024
"""Characters of a message read at most; a longer one is refused whole."""
_ORIGIN_CHARS = 16


class BadHint(ValueError):
    """A message or line on the channel that is not a hint of this version."""


def new_origin() -> str:
    """The origin of one store object's messages."""
    return secrets.token_hex(_ORIGIN_CHARS // 2)


def queued(agent_id: str) -> str:
    return f"queued {agent_id}"


def progressed(event_id: str, agent_id: str, *, terminal: bool) -> str:
    return f"progressed {event_id} {agent_id} {int(terminal)}"


def messages(origin: str, lines: Iterable[str]) -> Iterator[str]:
    """``lines`` (the same one once) in messages of ``origin``."""
    unique = list(dict.fromkeys(lines))
    for start in range(0, len(unique), LINES_PER_MESSAGE):
        yield "\n".join([origin, *unique[start : start + LINES_PER_MESSAGE]])


def deliver(text: object, own_origin: str, sink: ChangeSink) -> list[str]:
    """Hand ``sink`` the hints of message ``text``, unless it is this store object's own.
    Returns why each line not understood was refused (the others are delivered); raises
    :class:`BadHint` for a message refused whole."""
    if not isinstance(text, str):
        raise BadHint(f"a message of type {type(text).__name__}")
    if len(text) > MAX_MESSAGE:
        raise BadHint(f"a message of {len(text)} characters (at most {MAX_MESSAGE})")
    origin, _, body = text.partition("\n")
    if len(origin) != _ORIGIN_CHARS or not _is_hex(origin):
        raise BadHint(f"no origin at the start of {_shown(text)}")
    if origin == own_origin:
        return []
    refused: list[str] = []
    for line in body.split("\n") if body else []:  # no line: a probe of the channel
        try:
            _deliver_line(line, sink)
        except BadHint as exc:
            refused.append(str(exc))
    return refused


def _deliver_line(line: str, sink: ChangeSink) -> None:
    match line.split(" "):
        case ["queued", agent] if ids.is_agent_id(agent):
            sink.queued(agent)
        case ["progressed", event, agent, "0" | "1" as ended] if _ids(event, agent):
            sink.progressed(event, agent, terminal=ended == "1")
        case ["claimed", agent, seq] if ids.is_agent_id(agent) and _is_seq(seq):
            sink.claimed(agent, int(seq))
        case _:
            raise BadHint(f"not a hint: {_shown(line)}")


def _ids(event_id: str, agent_id: str) -> bool:
    return ids.is_event_id(event_id) and ids.is_agent_id(agent_id)


def _is_seq(text: str) -> bool:
    return text.isascii() and text.isdecimal() and 0 < len(text) <= 18


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _shown(text: str) -> str:
    """``text`` as a log line may show it: short, on one line."""
    return repr(text[:80] + ("..." if len(text) > 80 else ""))
