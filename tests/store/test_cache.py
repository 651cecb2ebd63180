"""cache.Decoded: decoded values reused only while the stored text is the same."""

from __future__ import annotations

import json

from transporter.protocol.model import AuditEntry
from transporter.store import json_rows
from transporter.store.cache import Decoded


def _text(entry: AuditEntry) -> str:
    return json_rows.dump(entry)


def test_a_value_is_decoded_once_while_its_text_stays_the_same() -> None:
    cache = Decoded(AuditEntry)
    text = _text(AuditEntry(at=1.0, action="a"))
    first = cache.load("k", text)
    assert cache.load("k", text) is first
    other = _text(AuditEntry(at=2.0, action="a"))
    changed = cache.load("k", other)  # written by someone else meanwhile
    assert changed.at == 2.0
    assert cache.load("k", text) is not first  # the old text again: decoded afresh
    assert cache.load("k", text) == first


def test_what_was_written_is_used_for_that_text_only() -> None:
    cache = Decoded(AuditEntry)
    written = AuditEntry(at=3.0, action="b")
    cache.wrote("k", _text(written), written)
    assert cache.load("k", _text(written)) is written
    # The write did not happen (rolled back, or another writer won): the stored text differs.
    stored = _text(AuditEntry(at=1.0, action="a"))
    assert cache.load("k", stored).action == "a"


def test_the_cache_is_bounded_by_count_and_by_characters() -> None:
    texts = {f"k{n}": json.dumps({"at": float(n), "action": "x" * 50}) for n in range(10)}
    by_count = Decoded(AuditEntry, size=3)
    for key, text in texts.items():
        by_count.load(key, text)
    assert by_count.recent.keys() == ["k7", "k8", "k9"]
    by_chars = Decoded(AuditEntry, chars=len(texts["k0"]) * 2)
    for key, text in texts.items():
        by_chars.load(key, text)
    assert by_chars.recent.keys() == ["k8", "k9"]
    assert by_chars.recent.weight == len(texts["k8"]) + len(texts["k9"])
    huge = json.dumps({"at": 1.0, "action": "y" * 1000})
    assert by_chars.load("huge", huge).action == "y" * 1000  # decoded, not kept
    assert by_chars.recent.keys() == ["k8", "k9"]
