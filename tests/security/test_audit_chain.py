"""The audit chain's definition: the exact bytes hashed, sealing, and the checker's verdicts."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import attrs
import pytest

from transporter.protocol import codec
from transporter.protocol.model import AuditEntry
from transporter.security.audit_chain import (
    GENESIS,
    HASHED_FIELDS,
    Broken,
    ChainCheck,
    ChainHead,
    canonical,
    entry_hash,
    head_of,
    seal,
)

ENTRY = AuditEntry(
    at=1_700_000_000.123456,
    action="event.accepted",
    actor="alice",
    agent_id="agent-a",
    event_id="ev-1",
    detail='café ☃ "q"',
)

# Written out by hand, and checked with `printf '%s' '…' | sha256sum`: a change to the encoding
# would make every stored chain fail to verify, so it must not happen by accident.
CANONICAL_FIRST = (
    b'{"action":"event.accepted","actor":"alice","agent_id":"agent-a","at":1700000000.123456,'
    b'"detail":"caf\\u00e9 \\u2603 \\"q\\"","event_id":"ev-1","prev_hash":"' + b"0" * 64 + b'",'
    b'"seq":1}'
)
HASH_FIRST = "5f5f382fe031aefe7a5c8b54590db513f42a2113074a5db7e9596e9346a3daed"


def chain(count: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    head = ChainHead()
    for n in range(count):
        entry = seal(attrs.evolve(ENTRY, at=ENTRY.at + n, detail=f"n={n}"), head)
        entries.append(entry)
        head = head_of(entry)
    return entries


def test_the_first_record_is_sealed_after_the_genesis_value() -> None:
    first = seal(ENTRY, ChainHead())
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert canonical(first) == CANONICAL_FIRST
    assert first.hash == HASH_FIRST == hashlib.sha256(CANONICAL_FIRST).hexdigest()
    assert entry_hash(attrs.evolve(first, hash="anything")) == HASH_FIRST  # not itself


def test_every_field_but_the_hash_is_hashed() -> None:
    names = {field.name for field in attrs.fields(AuditEntry)}
    assert set(HASHED_FIELDS) == names - {"hash"}
    first = seal(ENTRY, ChainHead())
    for name in HASHED_FIELDS:
        value = getattr(first, name)
        other: Any = value + 1 if isinstance(value, (int, float)) else value + "x"
        assert entry_hash(attrs.evolve(first, **{name: other})) != first.hash, name


def test_any_text_encodes_and_a_stored_record_read_back_has_the_same_hash() -> None:
    odd = attrs.evolve(ENTRY, detail="nul \x00 lone \ud800 emoji 🚀", at=1_700_000_000.0)
    sealed = seal(odd, ChainHead(41, "a" * 64))
    assert (sealed.seq, sealed.prev_hash) == (42, "a" * 64)
    assert b'"at":1700000000.0,' in canonical(sealed)
    assert b"lone \\ud800 emoji \\ud83d\\ude80" in canonical(sealed)
    stored = json.dumps(codec.unstructure(sealed), separators=(",", ":"))  # as the stores do
    read_back = codec.structure(json.loads(stored), AuditEntry)
    assert read_back == sealed
    assert entry_hash(read_back) == sealed.hash


def test_an_intact_chain_is_accepted_and_its_head_kept() -> None:
    entries = chain(5)
    check = ChainCheck()
    assert all(check.feed(entry) for entry in entries)
    check.end(ChainHead(5, entries[-1].hash), ChainHead(5, entries[-1].hash))
    assert check.broken is None
    assert (check.count, check.head) == (5, head_of(entries[-1]))


@pytest.mark.parametrize(
    ("index", "change", "broken"),
    [
        (2, {"detail": "forged"}, Broken(3, "does not match its content")),
        (0, {"prev_hash": "1" * 64}, Broken(1, "is not the genesis value")),
        (3, {"seq": 3}, Broken(4, "the record after seq 3 says seq 3: out of order")),
        (3, {"seq": 7}, Broken(4, "the record after seq 3 says seq 7 (seqs 4-6 are missing)")),
        (0, {"seq": 2}, Broken(1, "the first record says seq 2 (seq 1 is missing)")),
        (1, {"hash": ""}, Broken(2, "it has no hash")),
        (1, {"at": float("nan")}, Broken(2, "cannot be encoded")),
    ],
)
def test_the_first_record_that_does_not_match_is_named(
    index: int, change: dict[str, object], broken: Broken
) -> None:
    entries = chain(5)
    entries[index] = attrs.evolve(entries[index], **change)  # type: ignore[arg-type]
    check = ChainCheck()
    fed = [check.feed(entry) for entry in entries]
    assert fed == [n < index for n in range(5)]
    assert check.broken is not None
    assert check.broken.seq == broken.seq
    assert broken.reason in check.broken.reason
    assert check.count == index
    assert check.head == (head_of(entries[index - 1]) if index else ChainHead())


def test_the_log_must_reach_the_stores_head_and_not_pass_it() -> None:
    entries = chain(4)
    head = head_of(entries[-1])

    def ended(before: ChainHead, after: ChainHead) -> ChainCheck:
        check = ChainCheck()
        for entry in entries:
            check.feed(entry)
        check.end(before, after)
        return check

    assert ended(head, head).broken is None
    assert ended(ChainHead(2, entries[1].hash), ChainHead(6, "f" * 64)).broken is None  # live
    cut = ended(ChainHead(6, "f" * 64), ChainHead(6, "f" * 64))
    assert cut.broken == Broken(5, "missing: the log ends at seq 4 but the store's head is seq 6")
    behind = ended(ChainHead(2, "f" * 64), ChainHead(2, "f" * 64))
    assert behind.broken == Broken(3, "the store's head is seq 2, but the log goes on to seq 4")
    other = ended(ChainHead(4, "f" * 64), ChainHead(4, "f" * 64))
    assert other.broken is not None
    assert other.broken.seq == 4
    assert other.broken.reason.startswith(f"the store's head says its hash is {'f' * 64}")
    assert (other.count, other.head) == (3, head_of(entries[2]))
