"""The applying and verifying phases: one server-side apply per object, in plan order.

The verdict rests on what the server said. An apply answers with the object as stored, and its
HTTP status says whether it created it (201) or not (200); a server-side apply that changes
nothing writes nothing, so ``metadata.resourceVersion`` stays. What each object was before the
apply is known one of two ways:

- Remembered (:mod:`~transporter.kube.remembered`): the resourceVersion our last apply of the
  object left, and a digest of its content. The apply is sent with that resourceVersion in its
  body, a precondition: the API server applies it only over that very version (409 Conflict if
  anyone wrote the object since; an object deleted since is created, 201). When it goes
  through, the object before it was exactly the one remembered: one call.
- Read (GET before the apply), when nothing is remembered (the agent's first apply of the
  object since it started, or forgotten since) or the precondition failed: two calls, three
  after a conflict.

Then: absent before, or a 201 → ``created``; the answer's resourceVersion equal to the one
before → ``unchanged``; a new one → ``updated``, unless the object differs from before only in
``metadata.managedFields`` or ``status`` (then ``unchanged``). The server records field
ownership alone on the second apply of an object whose manifest sets no field besides its name
(a bare Namespace), and a controller may write status between our read and our apply; neither
is a change the apply made.

An apply over the remembered version whose answer was lost (the API server may have acted on
it) is sent again over that version (the transport's retries). Refused then as written since,
it is sent without the precondition and judged against the remembered object, as the lost try
may have been the writer (another uid: it made the object anew): exact, unless someone else
wrote the object too since our last apply.

Applying a plan (``expect``, its fingerprint of each object) always reads first: the object is
applied only while it is still as the plan saw it, and only over the version read.

Verifying judges each object by the apply's answer, the object as the server stored it; only an
answer that was not the object is read back (GET). Readiness, when an event asks for it, is
waited for afterwards (:mod:`transporter.agent.readying`).

One object failing does not stop the others; :class:`KubeUnavailable` (after the transport's
bounded retries) does, because then nothing else would get through either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import trio

from transporter.kube.crd import POLL_FIRST, POLL_MAX, CrdKind, crd_kind, is_crd, wait_established
from transporter.kube.discovery import Discovery, ResourceInfo
from transporter.kube.errors import (
    DependencyFailed,
    Drifted,
    KubeError,
    KubeNotFound,
    KubeNotReady,
    KubeRejected,
    KubeUnavailable,
)
from transporter.kube.fingerprint import CHANGED, NOT_PLANNED, fingerprint
from transporter.kube.inspect import apply_query
from transporter.kube.manifests import api_version_of
from transporter.kube.plan import Applied, Plan, PlannedObject
from transporter.kube.remembered import (
    LastSeen,
    Stored,
    content,
    last_seen,
    resource_version,
    stored,
)
from transporter.kube.transport import APPLY_PATCH, Reply, Transport
from transporter.kube.validate import unknown_kind
from transporter.protocol.model import ResourceResult, ResourceStatus, object_key

CONFLICT_TRIES: Final = 5
"""Applying a plan: applies tried while the object keeps being written between our read and
our apply (a controller's status updates), each after a fresh read and check."""


def _locked(body: dict[str, Any], version: str | None) -> dict[str, Any]:
    """``body`` that the API server applies only over ``version`` of the object: any write
    since makes the apply a 409 Conflict. (An object gone since is created anew.)"""
    if version is None:
        return body
    metadata = body.get("metadata")
    return {
        **body,
        "metadata": {
            **(metadata if isinstance(metadata, dict) else {}),
            "resourceVersion": version,
        },
    }


async def _patch(
    transport: Transport,
    path: str,
    body: dict[str, Any],
    headers: Mapping[str, str] | None,
    on_retry: Callable[[KubeUnavailable], None] | None = None,
) -> Reply:
    return await transport.exchange(
        "PATCH",
        path,
        query=apply_query(),
        body=body,
        content_type=APPLY_PATCH,
        headers=headers,
        on_retry=on_retry,
    )


async def _drifted(
    before: Mapping[str, Any] | None, manifest: Mapping[str, Any], expected: str
) -> bool:
    found = await trio.to_thread.run_sync(fingerprint, before, manifest, abandon_on_cancel=True)
    return found != expected


class _Apply:
    """Applying one object: the ways to learn what it was before (see the module's text)."""

    def __init__(
        self,
        transport: Transport,
        memory: LastSeen,
        obj: PlannedObject,
        resource: ResourceInfo,
        headers: Mapping[str, str] | None,
    ) -> None:
        self.transport, self.memory, self.obj = transport, memory, obj
        self.resource, self.headers = resource, headers
        self.path = resource.object_path(obj.name, obj.namespace)

    async def run(self, expected: str | None) -> Applied:
        try:
            if expected is not None:
                return await self._planned(expected)
            remembered = self.memory.get(self.path)
            if remembered is not None:
                applied = await self._over(remembered)
                if applied is not None:
                    return applied
            return await self._read_first()
        except KubeRejected as exc:
            return Applied(self.obj, self.resource, error=exc)

    async def _over(self, remembered: Stored) -> Applied | None:
        """Applied over the remembered version; ``None``: written since (read it first)."""
        lost = False

        def retried(exc: KubeUnavailable) -> None:
            nonlocal lost
            lost = lost or exc.code != 429  # a 429 is a refusal: nothing was done

        body = _locked(self.obj.body, remembered.version)
        try:
            reply = await _patch(self.transport, self.path, body, self.headers, retried)
        except KubeUnavailable:
            # Outcome unknown (or a server that will not create over a version, as some do for
            # an object deleted since): the next apply reads first, rather than fail the same.
            self.memory.put(self.path, None)
            raise
        except KubeRejected as exc:
            if exc.code != 409:
                raise
            self.memory.put(self.path, None)
            if not lost:
                return None
            # Maybe written by our own try whose answer was lost: judged against what we knew.
            reply = await _patch(self.transport, self.path, self.obj.body, self.headers)
        return await self._judged(reply, remembered)

    async def _judged(self, reply: Reply, before: Stored) -> Applied:
        after = await stored(reply, self.obj.name)
        self.memory.put(self.path, after)
        return Applied(
            self.obj,
            self.resource,
            existed=reply.status != 201 and (after is None or after.uid == before.uid),
            version_before=before.version,
            version_after=after.version if after is not None else None,
            changed=after is None or after.digest != before.digest,
        )

    async def _read(self) -> dict[str, Any] | None:
        try:
            return await self.transport.get(self.path, self.headers)
        except KubeNotFound:
            return None

    async def _read_first(self) -> Applied:
        return await self._after_read(await self._read(), lock=False)

    async def _after_read(self, before: dict[str, Any] | None, *, lock: bool) -> Applied:
        """Applied after ``before`` was read; ``lock``: only over the version read."""
        version = resource_version(before) if before is not None else None
        body = _locked(self.obj.body, version) if lock else self.obj.body
        reply = await _patch(self.transport, self.path, body, self.headers)
        after = await stored(reply, self.obj.name)
        self.memory.put(self.path, after)
        answer = reply.body if isinstance(reply.body, dict) else {}
        return Applied(
            self.obj,
            self.resource,
            existed=before is not None and reply.status != 201,  # not deleted since the read
            version_before=version,
            version_after=after.version if after is not None else None,
            changed=before is None or content(before) != content(answer),
        )

    async def _planned(self, expected: str) -> Applied:
        """Read, then apply while the object is as the plan saw it, over the version read.

        An object expected ``absent`` and still absent when read has no version to lock on: one
        created by someone else between that read and our apply (milliseconds) is applied over.
        Server-side apply has no "must not exist" precondition (a ``metadata.uid`` in the body
        is one for an existing object, but refuses the create), and creating it by POST first
        would record our fields as an update's, not an apply's, changing who owns them."""
        for attempt in range(1, CONFLICT_TRIES + 1):
            before = await self._read()
            if await _drifted(before, self.obj.body, expected):
                return Applied(self.obj, self.resource, error=Drifted(CHANGED))
            try:
                return await self._after_read(before, lock=True)
            except KubeRejected as exc:
                if exc.code != 409 or attempt == CONFLICT_TRIES:
                    raise
        raise AssertionError("unreachable: the last try returns or raises")


class _CrdTracker:
    """The CRDs of one plan as they are applied: established, or why not."""

    def __init__(self, discovery: Discovery, timeout: float) -> None:
        self._discovery = discovery
        self._timeout = timeout
        self._failed: dict[str, KubeError] = {}
        self._deadline: dict[str, float] = {}

    async def after_apply(self, transport: Transport, applied: Applied) -> Applied:
        """Wait until an applied CRD is Established, and make discovery ask about it afresh."""
        obj = applied.object
        if applied.error is None and applied.resource is not None:
            path = applied.resource.object_path(obj.name, None)
            try:
                await wait_established(transport, path, obj.name, self._timeout)
            except (KubeRejected, KubeNotReady) as exc:
                applied = Applied(obj, applied.resource, error=exc)
        if applied.error is not None:
            self._failed[obj.name] = applied.error
        defined = crd_kind(obj.body)
        if defined is not None:
            self._forget(defined)
        self._deadline[obj.name] = trio.current_time() + self._timeout
        return applied

    def _forget(self, defined: CrdKind) -> None:
        for version in defined.versions:
            self._discovery.forget(api_version_of(defined.group, version))

    async def resolve(self, obj: PlannedObject) -> ResourceInfo | KubeError:
        """Where an object of a kind from this plan's CRD lives, polling discovery briefly.

        The CRD is Established by now, but discovery may lag behind it for a moment.
        """
        crd = obj.crd or ""
        if crd in self._failed:
            return DependencyFailed(
                f'not applied: its CustomResourceDefinition "{crd}" failed: {self._failed[crd]}'
            )
        deadline = self._deadline.get(crd, trio.current_time())
        delay = POLL_FIRST
        while True:
            self._discovery.forget(obj.api_version)
            try:
                found = await self._discovery.resolve(obj.api_version, obj.kind)
            except KubeRejected as exc:
                return exc
            if found is not None:
                return found
            if trio.current_time() + delay > deadline:
                return DependencyFailed(
                    f"not applied: {unknown_kind(obj.api_version, obj.kind)}"
                    f' although CustomResourceDefinition "{crd}" was applied'
                )
            await trio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)


async def apply_plan(
    transport: Transport,
    discovery: Discovery,
    plan: Plan,
    *,
    crd_timeout: float,
    headers: Mapping[str, str] | None = None,
    expect: Mapping[str, str] | None = None,
    memory: LastSeen | None = None,
) -> list[Applied]:
    """``headers``: sent with each object's requests (impersonation). ``expect``: applying a
    plan, its fingerprint of each object (by :func:`object_key`); an object not as the plan saw
    it, or not in it, is not applied (:class:`Drifted`). ``memory``: what earlier applies left
    (default: the transport's, :func:`last_seen`)."""
    memory = memory if memory is not None else last_seen(transport)
    crds = _CrdTracker(discovery, crd_timeout)
    results: list[Applied] = []
    for obj in plan.objects:
        resource = obj.resource
        if resource is None:
            found = await crds.resolve(obj)
            if isinstance(found, KubeError):
                results.append(Applied(obj, None, error=found))
                continue
            resource = found
        expected = None
        if expect is not None:
            expected = expect.get(object_key(obj.api_version, obj.kind, obj.namespace, obj.name))
            if expected is None:
                results.append(Applied(obj, resource, error=Drifted(NOT_PLANNED)))
                continue
        applied = await _Apply(transport, memory, obj, resource, headers).run(expected)
        if isinstance(applied.error, KubeNotFound):
            discovery.forget(obj.api_version)  # the kind may be gone: ask again next time
        if is_crd(obj.api_version, obj.kind):
            applied = await crds.after_apply(transport, applied)
        results.append(applied)
    return results


def _verdict(applied: Applied) -> ResourceStatus:
    if not applied.existed:
        return ResourceStatus.CREATED
    if applied.version_before is not None and applied.version_before == applied.version_after:
        return ResourceStatus.UNCHANGED
    if not applied.changed:  # only field ownership was written (see Applied.changed)
        return ResourceStatus.UNCHANGED
    return ResourceStatus.UPDATED


async def verify_applied(
    transport: Transport,
    applied: Sequence[Applied],
    headers: Mapping[str, str] | None = None,
) -> list[ResourceResult]:
    """One result per :class:`Applied`, in order, judged by the apply's answer (the object as
    stored); an object whose apply answered with something else is read back."""
    results: list[ResourceResult] = []
    for one in applied:
        obj = one.object
        if isinstance(one.error, Drifted):
            results.append(obj.result(ResourceStatus.DRIFTED, str(one.error)))
            continue
        if one.error is not None or one.resource is None:
            results.append(obj.result(ResourceStatus.FAILED, str(one.error or "not applied")))
            continue
        if one.version_after is None:
            try:
                await transport.get(one.resource.object_path(obj.name, obj.namespace), headers)
            except KubeNotFound:
                results.append(
                    obj.result(ResourceStatus.FAILED, "applied, but gone when read back")
                )
                continue
            except KubeRejected as exc:
                results.append(obj.result(ResourceStatus.FAILED, f"cannot read it back: {exc}"))
                continue
        results.append(obj.result(_verdict(one)))
    return results
