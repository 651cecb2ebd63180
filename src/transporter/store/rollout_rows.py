"""Rollouts as both stores keep them: the spec written once, the rest rewritten at every save.

A rollout's spec never changes once accepted, and may be large (the payload's manifests, and a
plan's apply's ``expects``: tens of megabytes); the rest (state, clusters, timeline ...) changes
at every step. The stores keep the two apart: ``create_rollout`` writes the spec once, and
``save_rollout`` writes only the rest (:class:`RolloutPart`), so that a step never re-encodes nor
re-writes the spec, and reading a rollout decodes its spec only when it is not kept decoded
already (:class:`RolloutTexts`).

The store, not the caller, owns a rollout's ``seq`` (given once, at creation) and ``version``
(bumped by every save): both stores keep them beside the JSON and put them back on reading, so
a record the caller altered can never move its rollout in the listings or skip a version.
"""

from __future__ import annotations

from typing import Final, Self

import attrs

from transporter.protocol.rollout import (
    RolloutCluster,
    RolloutEntry,
    RolloutRecord,
    RolloutSpec,
    RolloutState,
)
from transporter.store.cache import Decoded, Recent
from transporter.store.json_rows import dump, load

OPEN_STATES: Final = tuple(state for state in RolloutState if not state.final)
"""States of the rollouts :meth:`RolloutStore.open_rollouts` lists."""

ROLLOUTS_KEPT = 256
"""Rollouts a store keeps decoded (a record of 10,000 clusters is about 1.3 MB of JSON)."""
ROLLOUT_CHARS_KEPT = 64 * 1024 * 1024
"""Characters of rollouts' changing parts' JSON a store keeps decoded, in all."""
SPEC_CHARS_KEPT = 128 * 1024 * 1024
"""Characters of rollouts' specs' JSON a store keeps decoded, in all (a spec's payload is up
to a few megabytes, a plan's apply's ``expects`` up to tens)."""


@attrs.frozen
class RolloutPart:
    """What a save writes of a rollout: its record but the spec (written once), ``seq`` and
    ``version`` (the store's, kept beside)."""

    state: RolloutState = RolloutState.RUNNING
    message: str = ""
    wave: int = 0
    approved: tuple[int, ...] = ()
    resume_at: float | None = None
    cancel_requested: bool = False
    closed: bool = False
    clusters: tuple[RolloutCluster, ...] = ()
    timeline: tuple[RolloutEntry, ...] = ()
    updated_at: float = 0.0

    @classmethod
    def of(cls, record: RolloutRecord) -> Self:
        return cls(
            record.state,
            record.message,
            record.wave,
            record.approved,
            record.resume_at,
            record.cancel_requested,
            record.closed,
            record.clusters,
            record.timeline,
            record.updated_at,
        )

    def record(self, spec: RolloutSpec, seq: int, version: int) -> RolloutRecord:
        """The whole record: this part with ``spec``, numbered by the store."""
        return RolloutRecord(
            spec,
            self.state,
            self.message,
            self.wave,
            self.approved,
            self.resume_at,
            self.cancel_requested,
            self.closed,
            self.clusters,
            self.timeline,
            version,
            seq,
            self.updated_at,
        )


@attrs.frozen
class NumberedPart(RolloutPart):
    """A part as Redis keeps it: with its ``seq`` (put first by the script that stores it) and
    ``version`` in the JSON. (SQLite keeps both in columns: its JSON has neither, or zeros.)"""

    seq: int = 0
    version: int = 0


def same_request(stored: RolloutSpec, new: RolloutSpec) -> bool:
    """Whether ``new`` asks for what ``stored`` asked (a producer's retry: only the time it
    was made, and the id of the token it came with, may differ: a token made again under
    the same name retries what the first one asked; the stored rollout keeps the first)."""
    return attrs.evolve(new, created_at=stored.created_at, token_id=stored.token_id) == stored


class SpecChanged(ValueError):
    """``save_rollout`` was given a record whose spec is not the stored one: a rollout's spec
    never changes (the caller's fault; nothing is written)."""

    def __init__(self, rollout_id: str, what: str) -> None:
        super().__init__(
            f"save_rollout: rollout {rollout_id!r} has another spec than the one stored ({what});"
            " a rollout's spec never changes once created"
        )
        self.rollout_id = rollout_id


def part_text(record: RolloutRecord) -> str:
    """The JSON a save writes of ``record``: :class:`RolloutPart`."""
    return dump(RolloutPart.of(record))


def numbered(record: RolloutRecord, seq: int, version: int) -> RolloutRecord:
    return attrs.evolve(record, seq=seq, version=version)


class RolloutTexts:
    """What a store keeps decoded of its rollouts, by id.

    Specs never change once stored: one kept here is the stored one (whichever process wrote
    it), and a spec is read and decoded only when it is not here. Parts change: each is kept
    with the text it was decoded from and used only for that very text.
    """

    def __init__(self, *, spec_chars: int = SPEC_CHARS_KEPT) -> None:
        self.specs: Recent[RolloutSpec] = Recent(size=ROLLOUTS_KEPT, weight=spec_chars)
        self.parts = Decoded(NumberedPart, size=ROLLOUTS_KEPT, chars=ROLLOUT_CHARS_KEPT)

    def spec(self, rollout_id: str) -> RolloutSpec | None:
        return self.specs.get(rollout_id)

    def read_spec(self, rollout_id: str, text: str) -> RolloutSpec:
        """The spec stored under ``rollout_id`` as ``text``, kept for next time."""
        spec = load(text, RolloutSpec)
        if spec.id != rollout_id:
            spec = attrs.evolve(spec, id=rollout_id)  # the row's id is the rollout's
        self.specs.put(rollout_id, spec, len(text))
        return spec

    def wrote_spec(self, spec: RolloutSpec, text: str) -> None:
        """``spec`` is stored (the write is committed) as ``text``."""
        self.specs.put(spec.id, spec, len(text))

    def part(self, rollout_id: str, text: str) -> NumberedPart:
        """The part stored under ``rollout_id`` as ``text``, decoded (or as decoded lately)."""
        return self.parts.load(rollout_id, text)

    def wrote_part(self, rollout_id: str, text: str, part: NumberedPart) -> None:
        """``part`` is stored (the write is committed) as ``text``."""
        self.parts.wrote(rollout_id, text, part)

    def check(self, record: RolloutRecord) -> None:
        """Raise :class:`SpecChanged` when ``record``'s spec is not the one kept (when one is:
        else the store compares what it has beside the row, the kind)."""
        kept = self.specs.get(record.spec.id)
        if kept is not None and record.spec is not kept and record.spec != kept:
            raise SpecChanged(record.spec.id, "payload, strategy or other field")


def decoded_rollouts() -> RolloutTexts:
    """Rollouts decoded lately (:class:`RolloutTexts`)."""
    return RolloutTexts()
