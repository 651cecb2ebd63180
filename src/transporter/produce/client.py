"""A small client of the control plane's HTTP API, for the producer.

urllib runs in worker threads (it blocks), each call under a limiter and a timeout. Answers are
decoded into the protocol's types with the one converter.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import attrs
import trio

from transporter.protocol import codec
from transporter.protocol.model import AgentRecord, AuditEntry, EventRecord


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the error it is here: following it would send the bearer
    token to wherever it points (urllib copies the Authorization header to the new URL)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def opener(ca_file: Path | None) -> urllib.request.OpenerDirector:
    """An opener that follows no redirect and trusts ``ca_file`` (the control plane's CA) for
    HTTPS, else the system's trust store. TLS 1.2 or later, host names checked."""
    context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return urllib.request.build_opener(_NoRedirects, urllib.request.HTTPSHandler(context=context))


class ApiError(Exception):
    """The control plane answered with an error (``status`` 4xx/5xx) and said why."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        where = f" ({field})" if field else ""
        super().__init__(f"{status} {code}{where}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field


class Unreachable(Exception):
    """The control plane could not be reached or did not answer in time."""


@attrs.frozen
class Submitted:
    event_id: str
    created: bool
    agent_known: bool


class Client:
    """``token``: the API token, sent with every request as ``Authorization: Bearer``."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        token: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        """``ca_file``: the CA that issued the control plane's certificate (else the system's
        trust store). Raises :class:`Unreachable` when ``ca_file`` cannot be read."""
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        try:
            self._opener = opener(ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise Unreachable(f"cannot use the CA file {ca_file}: {exc}") from None
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._limiter = trio.CapacityLimiter(4)

    def __repr__(self) -> str:  # never the token
        return f"Client({self.base_url!r})"

    async def _call(
        self, method: str, path: str, body: Any = None, *, read_timeout: float | None = None
    ) -> Any:
        limit = read_timeout or self.timeout
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is checked to be http(s)
            self.base_url + path,
            data=data,
            method=method,
            headers=self._headers,
        )

        def call() -> Any:
            try:
                with self._opener.open(request, timeout=limit) as answer:
                    return json.load(answer)
            except urllib.error.HTTPError as exc:
                try:
                    detail = json.load(exc)
                except ValueError:
                    detail = {}
                raise ApiError(
                    exc.code,
                    str(detail.get("error", "error")),
                    str(detail.get("message", exc.reason)),
                    detail.get("field"),
                ) from None
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, ssl.SSLCertVerificationError):
                    reason = (
                        f"its certificate is not trusted ({reason.verify_message}): give the"
                        " control plane's CA with --ca-cert (its DATA_DIR/ca.crt)"
                    )
                raise Unreachable(f"{self.base_url}: {reason}") from None

        try:
            with trio.fail_after(limit + 5):
                return await trio.to_thread.run_sync(
                    call, limiter=self._limiter, abandon_on_cancel=True
                )
        except trio.TooSlowError:
            raise Unreachable(f"{self.base_url}: no answer in {limit:.0f} s") from None

    async def submit(self, event: dict[str, Any]) -> Submitted:
        answer = await self._call("POST", "/events", event)
        return Submitted(answer["event_id"], answer["status"] == "accepted", answer["agent_known"])

    async def submit_batch(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /events/batch``: the answer's ``results`` line up with ``events``."""
        answer: dict[str, Any] = await self._call("POST", "/events/batch", {"events": events})
        return answer

    async def event(
        self, event_id: str, *, wait: float = 0.0, since: int = 0, manifests: bool = False
    ) -> EventRecord:
        """With ``wait``, the manifests are left out (an empty list) unless ``manifests``."""
        args: dict[str, Any] = {"wait": wait, "since": since} if wait else {}
        if wait and manifests:
            args["manifests"] = "true"
        query = urllib.parse.urlencode(args)
        path = f"/events/{urllib.parse.quote(event_id, safe='')}" + (f"?{query}" if query else "")
        data = await self._call("GET", path, read_timeout=self.timeout + wait)
        return codec.structure(data, EventRecord)

    async def events(
        self, *, agent: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[EventRecord]:
        query = {
            "limit": limit,
            **({"agent": agent} if agent else {}),
            **({"state": state} if state else {}),
        }
        data = await self._call("GET", "/events?" + urllib.parse.urlencode(query))
        return codec.structure(data["items"], list[EventRecord])

    async def audit(self, *, limit: int = 100) -> list[AuditEntry]:
        data = await self._call("GET", f"/audit?limit={limit}")
        return codec.structure(data["items"], list[AuditEntry])

    async def agents(self) -> list[AgentRecord]:
        data = await self._call("GET", "/agents")
        return codec.structure(data["items"], list[AgentRecord])

    async def agent(self, agent_id: str) -> AgentRecord:
        data = await self._call("GET", f"/agents/{urllib.parse.quote(agent_id, safe='')}")
        return codec.structure(data, AgentRecord)

    # Rollouts and plans: their answers are the API's views (JSON objects), shown as they come
    # (-o json) or read by :mod:`transporter.produce.views`.

    async def _object(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        answer = await self._call(method, path, body)
        if not isinstance(answer, dict):
            raise Unreachable(f"{self.base_url}{path}: the answer is not a JSON object")
        return answer

    async def submit_rollout(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /events`` with ``target_agents`` or ``selector``: ``rollout_id``, ``status``
        (``accepted`` or ``exists``), ``agents`` and ``waves``."""
        return await self._object("POST", "/events", body)

    async def rollouts(
        self, *, state: str | None = None, kind: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        query = {"limit": limit, **({"state": state} if state else {})}
        query |= {"kind": kind} if kind else {}
        data = await self._object("GET", "/rollouts?" + urllib.parse.urlencode(query))
        items = data.get("items")
        return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

    async def rollout(self, rollout_id: str) -> dict[str, Any]:
        return await self._object("GET", f"/rollouts/{_quoted(rollout_id)}")

    async def rollout_op(
        self, rollout_id: str, op: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """``POST /rollouts/{id}/approve|cancel|close``."""
        return await self._object("POST", f"/rollouts/{_quoted(rollout_id)}/{op}", body or {})

    async def cancel_event(self, event_id: str) -> dict[str, Any]:
        return await self._object("POST", f"/events/{_quoted(event_id)}/cancel", {})

    async def submit_plan(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._object("POST", "/plans", body)

    async def plan(self, plan_id: str) -> dict[str, Any]:
        """``GET /plans/{id}``: the rollout's view, each cluster with its objects' results."""
        return await self._object("GET", f"/plans/{_quoted(plan_id)}")

    async def apply_plan(self, plan_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._object("POST", f"/plans/{_quoted(plan_id)}/apply", body)


def _quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")
