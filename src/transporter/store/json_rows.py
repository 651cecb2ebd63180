"""Records as both stores keep them: JSON text through the one converter."""

from __future__ import annotations

import json

from transporter.protocol import codec
from transporter.store.base import StoreError


def dump(value: object) -> str:
    return json.dumps(codec.unstructure(value), separators=(",", ":"))


def load[T](text: str, kind: type[T]) -> T:
    try:
        return codec.structure(json.loads(text), kind)
    except ValueError as exc:  # not JSON, or codec.ProtocolError
        raise StoreError(f"a stored {kind.__name__} cannot be read: {exc}") from exc


def dump_without_seq(value: object) -> str:
    """The JSON with ``seq`` left out, for a Redis script to put the seq it assigns first."""
    data = codec.unstructure(value)
    del data["seq"]
    text = json.dumps(data, separators=(",", ":"))
    if not text.startswith('{"'):
        raise StoreError(f"cannot store {type(value).__name__}: encodes to {text[:20]!r}")
    return text
