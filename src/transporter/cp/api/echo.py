"""Ids a caller sent, as an answer's message repeats them: quoted, and cut to a bound (a path or
a query holds what the caller likes, up to the server's line limit; a refusal need not send it
back whole, nor write it whole into the log and the audit)."""

from __future__ import annotations

from typing import Final

MAX_ECHO: Final = 128
"""Characters of a caller's id repeated in a message (the longest valid id, an event's)."""


def quoted(text: str) -> str:
    """``text`` quoted as ``repr`` does; past :data:`MAX_ECHO` characters, cut and said so."""
    if len(text) <= MAX_ECHO:
        return repr(text)
    return f"{text[:MAX_ECHO]!r}… ({len(text)} characters)"
