"""One request to the control plane's own API, in process: an ASGI call of the app with a
request we build, no socket. Queue mode submits through it so that an entry meets exactly what
``POST /events`` does (the gate, the checks, the intake, the audit) and gets its answer."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

type App = Callable[..., Awaitable[None]]
"""An ASGI application (the API's QuartTrio app)."""

ADDRESS = "queue"
"""The client address the API sees for queue entries (its audit log's ``address``)."""
MAX_ANSWER_BYTES = 1024 * 1024
"""An answer to ``POST /events`` is a few hundred bytes: more is cut (and is not JSON)."""


@attrs.frozen
class Answer:
    status: int
    body: Any
    """The answer's JSON, or ``None`` when it had none."""


async def post(app: App, path: str, body: bytes, *, token: str | None) -> Answer:
    """``POST path`` with ``body`` (JSON) and the bearer ``token``, as a producer would send it."""
    headers = [
        (b"host", ADDRESS.encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if token:
        headers.append((b"authorization", b"Bearer " + token.encode("utf-8", "replace")))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": (ADDRESS, 0),
        "server": (ADDRESS, 0),
        "extensions": {},
    }
    sent = False
    done = trio.Event()
    status = 0
    chunks: list[bytes] = []
    size = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # the client stays until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunk = bytes(message.get("body", b""))
            if size < MAX_ANSWER_BYTES:
                chunks.append(chunk[: MAX_ANSWER_BYTES - size])
            size += len(chunk)
            if not message.get("more_body", False):
                done.set()

    await app(scope, receive, send)
    done.set()
    try:
        parsed = json.loads(b"".join(chunks)) if chunks else None
    except ValueError:
        parsed = None
    return Answer(status, parsed)
