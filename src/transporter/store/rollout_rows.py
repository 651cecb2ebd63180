"""Rollouts as both stores keep them: the record's JSON with its ``seq`` and ``version`` apart.

The store, not the caller, owns a rollout's ``seq`` (given once, at creation) and ``version``
(bumped by every save): both stores keep them beside the JSON and put them back on reading, so
a record the caller altered can never move its rollout in the listings or skip a version.
"""

from __future__ import annotations

from typing import Final

import attrs

from transporter.protocol.rollout import RolloutRecord, RolloutSpec, RolloutState
from transporter.store.cache import Decoded
from transporter.store.json_rows import dump

OPEN_STATES: Final = tuple(state for state in RolloutState if not state.final)
"""States of the rollouts :meth:`RolloutStore.open_rollouts` lists."""

ROLLOUTS_KEPT = 256
"""Rollouts a store keeps decoded (a record of 10,000 clusters is about 1.3 MB of JSON)."""
ROLLOUT_CHARS_KEPT = 64 * 1024 * 1024
"""Characters of rollouts' JSON a store keeps decoded, in all."""


def same_request(stored: RolloutSpec, new: RolloutSpec) -> bool:
    """Whether ``new`` asks for what ``stored`` asked (a producer's retry: only the time it
    was made may differ)."""
    return attrs.evolve(new, created_at=stored.created_at) == stored


def body(record: RolloutRecord) -> str:
    """The JSON a store keeps of ``record``: without ``seq`` and ``version`` (the store's)."""
    return dump(attrs.evolve(record, seq=0, version=0))


def numbered(record: RolloutRecord, seq: int, version: int) -> RolloutRecord:
    return attrs.evolve(record, seq=seq, version=version)


def decoded_rollouts() -> Decoded[RolloutRecord]:
    """Rollouts decoded lately, each used again only for the very text it was read as."""
    return Decoded(RolloutRecord, size=ROLLOUTS_KEPT, chars=ROLLOUT_CHARS_KEPT)
