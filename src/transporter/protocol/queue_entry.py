"""Queue mode's entry: what ``produce k8s --mode queue`` appends to the control planes' queue
(a Redis Stream) in place of posting it, and what they read. Its fields are strings:

- ``v``: :data:`FORMAT_VERSION`; an entry of a version the control plane does not read is
  refused (dead-lettered), never guessed at;
- ``body``: the JSON text ``POST /events`` takes, with the ``id`` the producer chose (so that
  it knows the id at once, and an entry taken twice is the same event);
- ``token``: the producer's API token, checked by the control plane as a bearer token; ``""``
  when it has none (then only a control plane without authentication takes the entry).
"""

from __future__ import annotations

from typing import Final

from transporter.protocol.submission import MAX_MANIFEST_BYTES

FORMAT_VERSION: Final = "1"
VERSION: Final = "v"
BODY: Final = "body"
TOKEN: Final = "token"  # noqa: S105 - a field's name
MAX_ENTRY_BYTES: Final = 2 * MAX_MANIFEST_BYTES
"""An entry's body, at most: what the API takes in one request."""
