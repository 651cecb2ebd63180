"""What an idle agent connection costs the control plane in tasks (a real control plane over
mutual TLS, raw agents): one task each once welcomed, none for deliveries or
acknowledgements while there is nothing to deliver or acknowledge; a delivery's task comes
for an event and goes when it is done."""

from __future__ import annotations

from collections import Counter
from contextlib import AsyncExitStack

import trio
import trio.testing

from tests.bed.clients import raw_agent
from tests.bed.harness import ControlPlane, finish
from tests.bed.manifests import configmap, event_body
from transporter.protocol.model import EventState

AGENTS = 20


def tasks_of_the_control_plane() -> Counter[str]:
    """The names of the tasks under the in-process control plane's own task."""
    found: Counter[str] = Counter()

    def walk(task: trio.lowlevel.Task, inside: bool) -> None:
        inside = inside or task.name.endswith("ControlPlane.start.<locals>.run")
        if inside:
            found[task.name.rsplit(".", 1)[-1]] += 1
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child, inside)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    walk(root, False)
    return found


async def test_an_idle_connection_is_one_task(cp: ControlPlane) -> None:
    await trio.testing.wait_all_tasks_blocked(0.05)
    before = tasks_of_the_control_plane()
    async with AsyncExitStack() as stack:
        agents = [await stack.enter_async_context(raw_agent(cp.agent_url)) for _ in range(AGENTS)]
        for n, agent in enumerate(agents):
            await agent.register(f"idle-{n}", protocol=None)
        await trio.testing.wait_all_tasks_blocked(0.05)
        idle = tasks_of_the_control_plane()
        assert idle - before == Counter({"_serve_tls": AGENTS}), idle - before

        # An event: a delivery task while it is in flight, none once it is finished.
        submitted = await cp.client.submit(event_body("idle-3", configmap("c")))
        delivered = await agents[3].next_delivery()
        assert delivered["id"] == submitted.event_id
        assert tasks_of_the_control_plane()["_deliver"] == 1
        await agents[3].send(
            {
                "type": "status",
                "event_id": submitted.event_id,
                "seq": 1,
                "state": "completed",
                "phase": "completed",
                "at": 1.0,
                "message": "done",
            }
        )
        assert (await agents[3].receive())["type"] == "status_ack"
        assert (await finish(cp, submitted.event_id)).state is EventState.COMPLETED
        await trio.testing.wait_all_tasks_blocked(0.05)
        assert tasks_of_the_control_plane() - before == Counter({"_serve_tls": AGENTS})
