"""Reading what the policy's verdict depends on, before anything of an event is applied.

The policy says what it needs (:meth:`Policy.needs`); this reads it from the cluster into a
:class:`ClusterView`, round after round, until the policy needs nothing more: first the objects
as they will be (dry runs; for a delete, the objects as they are), then the roles their
bindings bind and the bindings of the ServiceAccounts their pods run as.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import trio

from transporter.agent.policy import ClusterView, Needs, Policy
from transporter.kube import KubeTarget, PlannedObject

MAX_ROUNDS: Final = 5
"""Rounds of reading; the policy needs three at most (objects, then bindings and roles, then
the roles of those bindings)."""
AT_ONCE: Final = 4
"""Reads in flight at once (the transport has as many worker threads)."""


class InspectionError(RuntimeError):
    """The policy kept asking for more than the rounds allow: a bug of ours."""


async def inspect(
    target: KubeTarget,
    policy: Policy,
    objects: Sequence[PlannedObject],
    *,
    delete: bool,
    headers: Mapping[str, str] | None = None,
) -> ClusterView:
    """Everything ``policy`` needs to judge ``objects``. ``headers``: sent with the dry runs
    and reads of the objects themselves (impersonation), not with the RBAC reads, which are
    the agent's own business. Raises what the target raises (:class:`KubeUnavailable`)."""
    view = ClusterView()
    for _ in range(MAX_ROUNDS):
        needs = policy.needs(objects, view, delete=delete)
        if not needs:
            return view
        await _read(target, objects, needs, view, delete=delete, headers=headers)
    raise InspectionError(f"the policy still needs {needs} after {MAX_ROUNDS} rounds")


async def _read(
    target: KubeTarget,
    objects: Sequence[PlannedObject],
    needs: Needs,
    view: ClusterView,
    *,
    delete: bool,
    headers: Mapping[str, str] | None,
) -> None:
    limiter = trio.CapacityLimiter(AT_ONCE)

    async def merge(index: int) -> None:
        async with limiter:
            obj = objects[index]
            if delete:
                seen = await target.current(obj, headers=headers)
            else:
                seen = await target.dry_run(obj, headers=headers)
        if seen.refused is not None:
            view.refused[index] = str(seen.refused)
        else:
            view.merged[index] = seen.body

    async def role(key: tuple[str, str | None, str]) -> None:
        async with limiter:
            view.roles[key] = await target.read_role(*key)

    async def bindings(namespace: str | None) -> None:
        async with limiter:
            view.bindings[namespace] = await target.list_bindings(namespace)

    async def aggregators() -> None:
        async with limiter:
            view.aggregators = await target.aggregation_selectors()

    failures: list[Exception] = []

    async def each(read: Callable[..., Awaitable[None]], *args: Any) -> None:
        try:
            await read(*args)
        except Exception as exc:  # the first failure ends the round, as itself (no group)
            failures.append(exc)
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for index in sorted(needs.merge):
            nursery.start_soon(each, merge, index)
        for key in sorted(needs.roles, key=repr):
            nursery.start_soon(each, role, key)
        for namespace in sorted(needs.bindings, key=repr):
            nursery.start_soon(each, bindings, namespace)
        if needs.aggregators:
            nursery.start_soon(each, aggregators)
    if failures:
        raise failures[0]
