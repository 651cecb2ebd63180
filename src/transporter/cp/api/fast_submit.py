"""``POST /events`` of one small event, served on hypercorn's ASGI interface directly: the hot
path of a producer that sends one event per request, without the web framework's request
machinery around it (its before- and after-request hooks, request context, routing and response
objects: about a third of a request's CPU here).

Only the plainest request is served so, and only up to the point where it is stored, so that
it is answered exactly as the app would answer it:

- ``POST /events`` with no query, a ``Content-Length`` under :data:`~.submit.INLINE_CHECK_BYTES`,
  no ``Transfer-Encoding``, and a ``Host`` the app's router takes;
- with a token the gate keeps a valid record of, whose role and agents allow it
  (:meth:`~.access.Gate.kept_caller`: no read, no refusal), or authentication off;
- whose body is one event (not a rollout), strict JSON, valid (:func:`parse_submission`).

Any other request, or one that turns out otherwise once its body is read, goes to the app as it
came (its body given again): nothing has been done for it by then. The event is then stored as
the app stores it (:func:`~.submit.store_event`, whose write checks the token): 202, 200 or
409. A token the write finds revoked is forgotten and the request goes to the app too, which
reads the token and refuses it as ever (nothing was stored). An answer made without that check
(408 when the body took the app's ``BODY_TIMEOUT``, 503 when the store cannot be reached, 500)
is given, as the app gives it, only once a read of the token finds it valid; else the token's
401, audited. Answers are counted in the metrics as the app counts its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import trio
from quart_trio import QuartTrio
from werkzeug.exceptions import InternalServerError, RequestTimeout

from transporter.cp.api.access import GATE, Caller, Gate, Refused
from transporter.cp.api.errors import WithHeaders, http_error, refusal, store_down
from transporter.cp.api.services import KEY, Services
from transporter.cp.api.submit import INLINE_CHECK_BYTES, new_id, store_event
from transporter.protocol import codec
from transporter.protocol.model import Event
from transporter.protocol.rollout_request import is_rollout_body
from transporter.protocol.submission import InvalidEvent, parse_submission
from transporter.store.base import StoreUnavailable, TokenRevoked

log = logging.getLogger(__name__)

ENDPOINT = "submit.submit"
"""The app's endpoint for ``POST /events`` (the gate's declarations are by endpoint)."""

type Message = dict[str, Any]
type Receive = Callable[[], Awaitable[Message]]
type Send = Callable[[Message], Awaitable[None]]
type Asgi = Callable[[Message, Receive, Send], Awaitable[None]]


class FastSubmit:
    """The API's ASGI application: the app, with ``POST /events`` served first here when it
    can be (see the module's docstring)."""

    def __init__(self, app: QuartTrio) -> None:
        self.app = app
        self._app = cast(Asgi, app)
        found = app.extensions[KEY]
        gate = app.extensions[GATE]
        assert isinstance(found, Services)
        assert isinstance(gate, Gate)
        self.found = found
        self.gate = gate

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if not _candidate(scope):
            await self._app(scope, receive, send)
            return
        headers = _headers(scope)
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        caller = self.gate.kept_caller(ENDPOINT, authorization)
        if caller is None or not _host_ok(headers.get(b"host")):
            await self._app(scope, receive, send)
            return
        with trio.move_on_after(self.app.config["BODY_TIMEOUT"]) as reading:
            body = await _body(receive)
        if reading.cancelled_caught:  # as the app: 408 once its whole body took too long
            timeout = http_error(RequestTimeout())
            await self._answer(send, await self._confirmed(scope, authorization, timeout))
            return
        if body is None:  # the client went away
            return
        try:
            event = _event(body, caller.created_by, caller.may_target)
        except Exception:  # never expected: the app answers as it would
            log.exception("POST /events: could not read the event")
            event = None
        if event is None:
            await self._app(scope, _again(body, receive), send)
            return
        await self._store(scope, receive, send, event, caller, body, authorization)

    async def _store(
        self,
        scope: Message,
        receive: Receive,
        send: Send,
        event: Event,
        caller: Caller,
        body: bytes,
        authorization: str,
    ) -> None:
        try:
            answer = await store_event(self.found, event, caller.token_id)
        except TokenRevoked:
            self.gate.forget(caller.token_id)
            await self._app(scope, _again(body, receive), send)
            return
        except StoreUnavailable as exc:
            failed: WithHeaders = (*store_down(exc), [])
        except Exception:
            log.exception("POST /events failed")
            failed = http_error(InternalServerError())
        else:
            await self._answer(send, (*answer, []))
            return
        await self._answer(send, await self._confirmed(scope, authorization, failed))

    async def _confirmed(
        self, scope: Message, authorization: str, answer: WithHeaders
    ) -> WithHeaders:
        """``answer``, made without the store checking the token (as :func:`.queries.kept_view`
        does, the token is read again first): or the token's refusal, audited, when it was
        revoked since it was kept."""
        try:
            await self.gate.admit(ENDPOINT, authorization, fresh=True)
        except Refused as refused:
            client = scope.get("client")
            remote = client[0] if client else None
            await self.gate.record_refusal(refused, method="POST", path="/events", remote=remote)
            return refusal(refused)
        except StoreUnavailable as exc:
            return (*store_down(exc), [])
        return answer

    async def _answer(self, send: Send, answer: WithHeaders) -> None:
        body, status, headers = answer
        payload = (self.app.json.dumps(body, separators=(",", ":")) + "\n").encode()
        self.found.metrics.answered(status)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    *((name.lower().encode(), value.encode()) for name, value in headers),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload, "more_body": False})


def _host_ok(host: bytes | None) -> bool:
    """Whether the app's router takes ``host`` (its name, without the port, must be IDNA:
    werkzeug's ``BadHost`` otherwise); none: the app says."""
    if host is None:
        return False
    try:
        host.decode("latin-1").lower().partition(":")[0].encode("idna")
    except UnicodeError:
        return False
    return True


def _candidate(scope: Message) -> bool:
    """A ``POST /events`` with no query, and a small body framed by its length alone."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/events":
        return False
    if scope.get("query_string"):
        return False
    lengths = [value for name, value in scope["headers"] if name == b"content-length"]
    if len(lengths) != 1 or not lengths[0].isdigit():
        return False
    if any(name == b"transfer-encoding" for name, _ in scope["headers"]):
        return False
    return int(lengths[0]) < INLINE_CHECK_BYTES


def _headers(scope: Message) -> dict[bytes, bytes]:
    """The request's headers, by lower-case name; a name sent twice is left out."""
    seen: dict[bytes, bytes] = {}
    twice: set[bytes] = set()
    for name, value in scope["headers"]:
        if name in seen:
            twice.add(name)
        seen[name] = value
    return {name: value for name, value in seen.items() if name not in twice}


async def _body(receive: Receive) -> bytes | None:
    """The whole body (hypercorn holds it to its ``Content-Length``); ``None`` when the client
    went away first."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _event(body: bytes, created_by: str | None, may_target: Callable[[str], bool]) -> Event | None:
    """The event ``body`` submits, when it is one, valid, for an agent the caller may reach;
    else ``None`` (the app answers)."""
    try:
        item = codec.loads(body, unique_keys=True)
    except ValueError:  # not strict JSON: the app says why
        return None
    if not isinstance(item, dict) or is_rollout_body(item):
        return None
    target = item.get("target_agent")
    if isinstance(target, str) and not may_target(target):
        return None
    try:
        return parse_submission(item, now=time.time(), new_id=new_id, created_by=created_by)
    except InvalidEvent:
        return None


def _again(body: bytes, receive: Receive) -> Receive:
    """``receive`` for the app: the body read here, then whatever comes next."""
    given = False

    async def again() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


__all__ = ["ENDPOINT", "FastSubmit"]
