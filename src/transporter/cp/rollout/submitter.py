"""Whether a standing rollout's submitter may still widen it: a standing rollout takes agents
long after it was accepted, on the authority of the token that submitted it
(:attr:`~transporter.protocol.rollout.RolloutSpec.token_id`); once that token is revoked (or
gone), it takes no more.

The token is read from the store only when a rollout is about to take an agent, and the answer
kept a few seconds (a sweep offers every agent to every standing rollout); a revocation is
final, so it is kept for good.
"""

from __future__ import annotations

from typing import Final

import attrs
import trio

from transporter.store.base import Store

VALID_FOR: Final = 5.0
"""Seconds a token found valid is taken as valid without reading it again."""
KEPT: Final = 10_000
"""Tokens' answers kept at most (past it, all are forgotten and read again)."""
REVOKED_NOTE: Final = "no more agents: the submitting token was revoked"


@attrs.define
class Submitters:
    store: Store
    valid_for: float = VALID_FOR
    _valid_until: dict[str, float] = attrs.field(factory=dict)
    _revoked: set[str] = attrs.field(factory=set)

    def known(self, token_id: str) -> bool | None:
        """Whether the token may still widen its rollouts (``None``: not known lately: ask
        :meth:`look`). A rollout accepted without a token (authentication off) always may."""
        if not token_id:
            return True
        if token_id in self._revoked:
            return False
        if self._valid_until.get(token_id, 0.0) > trio.current_time():
            return True
        return None

    async def look(self, token_id: str) -> bool:
        """Read the token from the store: valid (known, not revoked) or not."""
        record = await self.store.get_token(token_id)
        if len(self._valid_until) >= KEPT:
            self._valid_until.clear()
        if record is None or record.revoked:
            if len(self._revoked) >= KEPT:
                self._revoked.clear()
            self._revoked.add(token_id)
            self._valid_until.pop(token_id, None)
            return False
        self._valid_until[token_id] = trio.current_time() + self.valid_for
        return True
