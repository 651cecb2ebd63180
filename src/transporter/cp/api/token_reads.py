"""The API tokens' records, read once for the requests that come together: the requests with
one token share a read of its record, as long as that read *began after* they came (rounds,
:mod:`transporter.rounds`). A request is never answered with a record read before it came, so
a token revoked (``transporter token revoke``, from another process or on another replica) is
refused by the next request, as before; only requests that wait together share one read. Under
load that is one store read for several requests of the same client (one event per POST from
several threads: fewer reads than requests), and alone it is the one read it always was.

No record is kept after its requests are answered: nothing to expire, nothing to bound but the
tokens of the requests under way (the API's connection limits bound those).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from transporter.rounds import Rounds
from transporter.security.tokens import TokenRecord


class TokenReads:
    """Records by token id, read in rounds shared by the requests waiting for them."""

    def __init__(self, read: Callable[[str], Awaitable[TokenRecord | None]]) -> None:
        self._read = read
        self._rounds: dict[str, Rounds[TokenRecord | None]] = {}

    async def get(self, token_id: str) -> TokenRecord | None:
        """The record of ``token_id`` as read by a read that began after this call."""
        rounds = self._rounds.get(token_id)
        if rounds is None:
            read = self._read
            rounds = self._rounds[token_id] = Rounds(lambda: read(token_id))
        try:
            return await rounds.after_now()
        finally:
            if rounds.waiting == 0 and self._rounds.get(token_id) is rounds:
                del self._rounds[token_id]


__all__ = ["TokenReads"]
