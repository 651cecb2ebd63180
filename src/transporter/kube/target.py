"""One cluster the agent works on: the phases of an event as four calls.

What only an event needs (parsing manifests, validating, applying, deleting) is imported when
the first event comes: an idle agent does without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from transporter.kube import credentials, inspect, state
from transporter.kube.errors import KubeConfigError, KubeRejected, KubeUnavailable
from transporter.kube.inspect import Seen
from transporter.kube.plan import Applied, Plan, PlannedObject
from transporter.kube.retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy
from transporter.kube.transport import MAX_THREADS, RequestObserver, Transport, new_transport
from transporter.protocol.model import ResourceResult

if TYPE_CHECKING:
    from transporter.kube.discovery import Discovery

PARSE_THREADS = 2
"""Manifests parsed at once (CPU-bound), apart from the threads that wait on the server."""
INLINE_PARSE_BYTES = 8 * 1024
"""Manifests shorter than this are parsed on the event loop (about 2 ms of CPU at most): a
worker thread's two hops cost more than parsing one small object (0.9 ms against 0.25 ms)."""


async def _load_config(
    kubeconfig: Path | None, limit: float, limiter: trio.CapacityLimiter
) -> credentials.LoadedConfig:
    """Load in a worker thread: reading files, and maybe running an exec credential plugin."""
    try:
        with trio.fail_after(limit):
            return await trio.to_thread.run_sync(
                credentials.load, kubeconfig, limiter=limiter, abandon_on_cancel=True
            )
    except trio.TooSlowError:
        raise KubeConfigError(f"loading the Kubernetes credentials took over {limit:g} s") from None


class KubeTarget:
    """A connected cluster. Get one with ``async with KubeTarget.connect(...) as target``.

    Safe to use from several tasks at once; discovery is cached for the target's life.
    """

    def __init__(
        self, transport: Transport, *, server_version: str, source: str, timeout: float
    ) -> None:
        self._transport = transport
        self._found: Discovery | None = None
        self._parse_limiter = trio.CapacityLimiter(PARSE_THREADS)
        self.server_version = server_version
        """``gitVersion`` of the API server, e.g. ``v1.33.4``."""
        self.source = source
        """Where the credentials came from, e.g. ``kubeconfig /path`` (for messages)."""
        self.timeout = timeout

    @property
    def server(self) -> str:
        return self._transport.server

    def observe(self, observer: RequestObserver) -> None:
        """Tell ``observer`` of every request's answer and retry from now on."""
        self._transport.observer = observer

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        kubeconfig: Path | None,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - bounds each request, not the whole call
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> AsyncIterator[KubeTarget]:
        """Load credentials (see :mod:`transporter.kube.credentials`) and check the server answers.

        ``timeout`` bounds every request (and the wait for a CRD to be Established); ``retry``
        says how every request after this check tries again while the server is unavailable.
        Raises :class:`KubeConfigError`, :class:`KubeUnavailable` (not reachable; not retried
        here) or :class:`KubeRejected` (e.g. 401: the credentials were refused).
        """
        limiter = trio.CapacityLimiter(MAX_THREADS)
        loaded = await _load_config(kubeconfig, timeout, limiter)
        transport = new_transport(
            loaded.configuration, timeout=timeout, limiter=limiter, retry=retry
        )
        try:
            version = await _server_version(transport, loaded.source)
            yield cls(transport, server_version=version, source=loaded.source, timeout=timeout)
        finally:
            transport.close()

    @property
    def _discovery(self) -> Discovery:
        """What the API server serves, learnt as events need it (made with the first)."""
        if self._found is None:
            from transporter.kube.discovery import Discovery

            self._found = Discovery(self._transport)
        return self._found

    async def plan(self, manifests: Sequence[str]) -> Plan:
        """Validating: parse and place every object. Raises :class:`ManifestError`.

        Parsing runs in a worker thread (a few MB of YAML take a second or more of CPU),
        unless the manifests are short (:data:`INLINE_PARSE_BYTES`).
        """
        from transporter.kube.manifests import parse_manifests
        from transporter.kube.validate import make_plan

        if sum(len(text) for text in manifests) < INLINE_PARSE_BYTES:
            objects = parse_manifests(tuple(manifests))
        else:
            objects = await trio.to_thread.run_sync(
                parse_manifests,
                tuple(manifests),
                limiter=self._parse_limiter,
                abandon_on_cancel=True,
            )
        return await make_plan(objects, self._discovery)

    async def apply(
        self,
        plan: Plan,
        *,
        headers: Mapping[str, str] | None = None,
        expect: Mapping[str, str] | None = None,
    ) -> list[Applied]:
        """Applying: server-side apply of each object in plan order; one result per object.

        ``headers``: sent with every request about the plan's objects (impersonation).
        ``expect``: applying a plan, what it saw of each object (``payload.expect``): an object
        not so any more is not applied (:class:`~transporter.kube.errors.Drifted`).
        """
        from transporter.kube.apply import apply_plan

        return await apply_plan(
            self._transport,
            self._discovery,
            plan,
            crd_timeout=self.timeout,
            headers=headers,
            expect=expect,
        )

    async def verify(
        self, applied: Sequence[Applied], *, headers: Mapping[str, str] | None = None
    ) -> list[ResourceResult]:
        """Verifying: judge each object by its apply's answer (the object as the server stored
        it): created, updated, unchanged, drifted or failed. Only an object whose apply did not
        answer with it is read back (GET)."""
        from transporter.kube.apply import verify_applied

        return await verify_applied(self._transport, applied, headers)

    async def delete(
        self,
        plan: Plan,
        *,
        headers: Mapping[str, str] | None = None,
        expect: Mapping[str, str] | None = None,
    ) -> list[ResourceResult]:
        """Delete each object of the plan, in reverse order: deleted, not_found or failed;
        with ``expect`` (a plan's), drifted when not as the plan saw it."""
        from transporter.kube.delete import delete_plan

        return await delete_plan(self._transport, self._discovery, plan, headers, expect)

    async def preview(
        self,
        objects: Sequence[PlannedObject],
        *,
        delete: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> list[ResourceResult]:
        """A plan: what applying (or deleting) each object would do, by server-side dry run;
        would_create, would_change (with a diff), unchanged, would_delete, not_found or failed,
        each with the live object's fingerprint. Nothing is written."""
        from transporter.kube.preview import preview_objects

        return await preview_objects(self._transport, objects, delete=delete, headers=headers)

    # --- looking before changing anything (the policy's view) ------------------------------

    async def dry_run(
        self, obj: PlannedObject, *, headers: Mapping[str, str] | None = None
    ) -> Seen:
        """The object as applying it would leave it (a server-side dry run)."""
        return await inspect.dry_run_apply(self._transport, obj, headers)

    async def current(
        self, obj: PlannedObject, *, headers: Mapping[str, str] | None = None
    ) -> Seen:
        """The object as it is now."""
        return await inspect.current(self._transport, obj, headers)

    async def read_role(
        self, kind: str, namespace: str | None, name: str
    ) -> Mapping[str, Any] | None:
        """A Role or ClusterRole as the cluster holds it; ``None``: there is none."""
        return await inspect.read_role(self._transport, kind, namespace, name)

    async def list_bindings(self, namespace: str | None) -> list[Mapping[str, Any]]:
        """The RoleBindings of ``namespace``, or (``None``) every ClusterRoleBinding."""
        return await inspect.list_bindings(self._transport, namespace)

    async def aggregation_selectors(self) -> list[tuple[str, Mapping[str, Any]]]:
        """``(name, selector)`` of every ClusterRole that aggregates others."""
        return await inspect.aggregation_selectors(self._transport)

    # --- the agent's own state (ConfigMaps in a namespace of its own) --------------------

    async def ensure_namespace(self, namespace: str) -> None:
        await state.ensure_namespace(self._transport, namespace)

    async def list_config_maps(self, namespace: str, selector: str) -> list[Mapping[str, Any]]:
        return await state.list_config_maps(self._transport, namespace, selector)

    async def add_to_config_map(
        self, namespace: str, name: str, data: Mapping[str, str], labels: Mapping[str, str]
    ) -> None:
        await state.add_to_config_map(self._transport, namespace, name, data, labels)

    async def delete_config_map(self, namespace: str, name: str) -> None:
        await state.delete_config_map(self._transport, namespace, name)


async def _server_version(transport: Transport, source: str) -> str:
    where = f"{transport.server} (from {source})"
    try:
        answer: Any = await transport.request("GET", "/version", retry=NO_RETRY)
    except KubeUnavailable as exc:
        raise KubeUnavailable(f"{where}: {exc}") from None
    except KubeRejected as exc:
        raise KubeRejected(f"{where} refused us: {exc}", code=exc.code, reason=exc.reason) from None
    version = answer.get("gitVersion") if isinstance(answer, dict) else None
    return version if isinstance(version, str) else ""
