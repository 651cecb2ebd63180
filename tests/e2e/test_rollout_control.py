"""Rollouts steered while they run, end to end (a real control plane, real agents on real
clusters): approve releases a wave that waits, a standing rollout reaches an agent that comes
later until it is closed, cancel starts nothing more (an offline agent that comes afterwards
gets nothing), and a token reaches only the rollouts whose every agent it covers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from tests.bed.harness import Agent, ControlPlane, submit_and_wait
from tests.bed.kube import Cluster
from tests.bed.manifests import event_body, unique
from tests.bed.rollouts import (
    child,
    cm_yaml,
    configmap_data,
    final,
    started,
    started_at,
    states,
    submit_standing,
    timeline,
    until,
)
from transporter.produce.client import ApiError
from transporter.protocol.model import EventState
from transporter.security.tokens import Role


async def test_approve_releases_the_wave_that_waits(
    cp: ControlPlane,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
    second_cluster: Cluster,
) -> None:
    canary = make_agent(cluster, labels={"ring": "canary"})
    main = make_agent(second_cluster, labels={"ring": "main"})
    await started(cp.agent_url, canary, main)
    name = unique("gate")
    waves = [{"selector": "ring=canary"}, {"selector": "", "approval": True}]
    body = {
        "id": name,
        "selector": "ring",
        "payload": {"manifests": [cm_yaml(name, v="1")]},
        "strategy": {"waves": waves},
    }
    await cp.client.submit_rollout(body)
    waiting = await until(cp.client, name, lambda v: v["state"] == "awaiting_approval")
    assert states(waiting) == {canary.agent_id: "completed", main.agent_id: "pending"}
    assert await configmap_data(cluster, name) == {"v": "1"}
    assert await configmap_data(second_cluster, name) is None
    assert await child(cp.client, f"{name}_{main.agent_id}") is None

    answer = await cp.client.rollout_op(name, "approve")
    assert answer == {"rollout_id": name, "approved": 1}
    view = await final(cp.client, name)
    assert view["state"] == "completed", view
    assert await configmap_data(second_cluster, name) == {"v": "1"}
    (approved,) = timeline(view, "approved")
    record = await child(cp.client, f"{name}_{main.agent_id}")
    assert record is not None and started_at(record) >= approved["at"]
    with pytest.raises(ApiError) as nothing:
        await cp.client.rollout_op(name, "approve")
    assert nothing.value.status == 409
    said = [entry for entry in await cp.client.audit(limit=500) if name in entry.detail]
    actions = [entry.action for entry in sorted(said, key=lambda entry: entry.seq)]
    assert actions == [
        "rollout.accepted",
        "rollout.wave_started",
        "rollout.awaiting_approval",
        "rollout.approved",
        "rollout.wave_started",
        "rollout.completed",
    ]


async def test_a_standing_rollout_reaches_later_agents_until_closed(
    cp: ControlPlane,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
    second_cluster: Cluster,
    third_cluster: Cluster,
) -> None:
    team = unique("team")
    first = make_agent(cluster, labels={"team": team})
    await started(cp.agent_url, first)
    name, sentinel = unique("stand"), unique("sentinel")
    for rollout_id in (name, sentinel):
        accepted = await submit_standing(cp.client, rollout_id, f"team={team}", n="1")
        assert accepted["agents"] == [first.agent_id]
    assert states(await cp.client.rollout(name)) == {first.agent_id: "completed"}

    later = make_agent(third_cluster, labels={"team": team})
    await started(cp.agent_url, later)
    view = await until(
        cp.client,
        name,
        lambda v: v["state"] == "standing" and states(v).get(later.agent_id) == "completed",
    )
    assert await configmap_data(third_cluster, name) == {"n": "1"}
    assert [entry["message"] for entry in timeline(view, "agent_added")] == [later.agent_id]

    closed = await cp.client.rollout_op(name, "close")
    assert closed["closed"] is True
    view = await final(cp.client, name)
    assert view["state"] == "completed" and view["total"] == 2

    # Another agent of the team: the closed rollout takes it no more, the open one does (and
    # once it has, the arrival has been seen by the engine).
    last = make_agent(second_cluster, labels={"team": team})
    await started(cp.agent_url, last)
    await until(cp.client, sentinel, lambda v: states(v).get(last.agent_id) == "completed")
    assert await configmap_data(second_cluster, sentinel) == {"n": "1"}
    view = await cp.client.rollout(name)
    assert view["total"] == 2 and last.agent_id not in states(view)
    assert await child(cp.client, f"{name}_{last.agent_id}") is None
    assert await configmap_data(second_cluster, name) is None
    await cp.client.rollout_op(sentinel, "close")


async def test_cancel_starts_nothing_more_and_an_offline_agent_gets_nothing(
    cp: ControlPlane,
    nursery: trio.Nursery,
    cluster: Cluster,
    second_cluster: Cluster,
    third_cluster: Cluster,
) -> None:
    """max_parallel 1 over three agents in id order: the first is online and completes, the
    second is offline (its event queues), the third waits its turn. Cancel: the queued event is
    cancelled and the third is never started; the second, connecting afterwards, gets nothing."""
    prefix = unique("cancel")
    online = Agent(nursery, f"{prefix}-1", cluster)
    offline = Agent(nursery, f"{prefix}-2", second_cluster)
    never = f"{prefix}-3"
    await started(cp.agent_url, online)
    name = unique("stop")
    body = {
        "id": name,
        "target_agents": [online.agent_id, offline.agent_id, never],
        "payload": {"manifests": [cm_yaml(name, x="1")]},
        "strategy": {"max_parallel": 1},
    }
    await cp.client.submit_rollout(body)
    await until(cp.client, name, lambda v: states(v)[offline.agent_id] == "queued")
    answer = await cp.client.rollout_op(name, "cancel")
    assert (answer["cancelled"], answer["running"]) == (2, 0), answer
    view = await final(cp.client, name)
    assert view["state"] == "cancelled", view
    assert states(view) == {
        online.agent_id: "completed",
        offline.agent_id: "cancelled",
        never: "cancelled",
    }
    queued = await child(cp.client, f"{name}_{offline.agent_id}")
    assert queued is not None and queued.state is EventState.CANCELLED
    assert await child(cp.client, f"{name}_{never}") is None
    assert await configmap_data(cluster, name) == {"x": "1"}

    # The offline agent comes: an event submitted after the cancel reaches it, the cancelled
    # one (before it in the queue) never does.
    await started(cp.agent_url, offline)
    after = unique("after")
    done = await submit_and_wait(cp, event_body(offline.agent_id, cm_yaml(after)))
    assert done.state is EventState.COMPLETED, done.message
    assert await configmap_data(second_cluster, after) == {}
    assert await configmap_data(second_cluster, name) is None
    assert (await cp.client.event(queued.event.id)).state is EventState.CANCELLED
    assert (await cp.client.rollout(name))["state"] == "cancelled"


async def test_a_token_reaches_only_the_rollouts_whose_every_agent_it_covers(
    cp: ControlPlane, nursery: trio.Nursery, cluster: Cluster, second_cluster: Cluster
) -> None:
    suffix = unique("s")
    team_a = Agent(nursery, f"team-a-{suffix}", cluster, {"env": "prod"})
    team_b = Agent(nursery, f"team-b-{suffix}", second_cluster, {"env": "prod"})
    await started(cp.agent_url, team_a, team_b)
    token = await cp.new_token("team-a", Role.SUBMIT, ("team-a-*",))
    scoped = cp.client_with(token)
    name = unique("reach")
    body = {"id": name, "selector": "env=prod", "payload": {"manifests": [cm_yaml(name)]}}
    with pytest.raises(ApiError) as refused:
        await scoped.submit_rollout(body)
    assert refused.value.status == 403
    assert team_b.agent_id in refused.value.message
    assert team_a.agent_id not in refused.value.message
    # Nothing stored: no rollout, no event for either agent, nothing on either cluster.
    assert await cp.client.rollouts() == []
    for agent in (team_a, team_b):
        assert await cp.client.events(agent=agent.agent_id) == []
    assert await child(cp.client, f"{name}_{team_a.agent_id}") is None

    # The admin's rollout over both: the team-a token may neither approve nor cancel it.
    waves = [{"selector": "", "approval": True}]
    admin = {**body, "strategy": {"waves": waves}}
    await cp.client.submit_rollout(admin)
    await until(cp.client, name, lambda v: v["state"] == "awaiting_approval")
    for op in ("approve", "cancel", "close"):
        with pytest.raises(ApiError) as denied:
            await scoped.rollout_op(name, op)
        assert denied.value.status == 403, op
        assert team_b.agent_id in denied.value.message
    view = await cp.client.rollout(name)
    assert view["state"] == "awaiting_approval"
    assert states(view) == {team_a.agent_id: "pending", team_b.agent_id: "pending"}
    assert await configmap_data(cluster, name) is None
    await cp.client.rollout_op(name, "cancel")
    assert (await final(cp.client, name))["state"] == "cancelled"


async def test_a_cancelled_standing_rollout_takes_no_one_more(
    cp: ControlPlane,
    make_agent: Callable[..., Agent],
    cluster: Cluster,
    second_cluster: Cluster,
    third_cluster: Cluster,
) -> None:
    """Cancelled while it stands, a rollout ends ``cancelled``; an agent that registers
    afterwards gets nothing, while an agent that comes back with labels it now matches joins
    an open standing rollout."""
    team = unique("team")
    first = make_agent(cluster, labels={"team": team})
    await started(cp.agent_url, first)
    name, sentinel = unique("stand"), unique("sentinel")
    for rollout_id in (name, sentinel):
        await submit_standing(cp.client, rollout_id, f"team={team}")
    answer = await cp.client.rollout_op(name, "cancel")
    assert (answer["cancelled"], answer["running"]) == (0, 0), answer
    assert (await final(cp.client, name))["state"] == "cancelled"

    # Known before with other labels, it comes back as one of the team.
    other = make_agent(third_cluster, labels={"team": "other"})
    await started(cp.agent_url, other)
    await other.stop()
    other.labels = {"team": team}
    await started(cp.agent_url, other)
    await until(cp.client, sentinel, lambda v: states(v).get(other.agent_id) == "completed")
    assert await configmap_data(third_cluster, sentinel) == {}
    view = await cp.client.rollout(name)
    assert states(view) == {first.agent_id: "completed"}
    assert await configmap_data(third_cluster, name) is None
    await cp.client.rollout_op(sentinel, "close")


async def test_a_standing_rollout_reaches_no_agent_past_its_submitters_token(
    cp: ControlPlane, nursery: trio.Nursery, cluster: Cluster, second_cluster: Cluster
) -> None:
    """Submitted with a ``team-a-*`` token, a standing rollout over ``env=prod`` takes a team-a
    agent that comes later, never a team-b one (an admin's standing rollout takes both: the
    sign that the team-b agent's arrival was seen)."""
    suffix = unique("s")
    scoped = cp.client_with(await cp.new_token("team-a", Role.SUBMIT, ("team-a-*",)))
    name, admin = unique("scoped"), unique("admin")
    for client, rollout_id in ((scoped, name), (cp.client, admin)):
        body = {
            "id": rollout_id,
            "selector": f"env={suffix}",
            "standing": True,
            "allow_empty": True,
            "payload": {"manifests": [cm_yaml(rollout_id)]},
        }
        assert (await client.submit_rollout(body))["agents"] == []
    team_b = Agent(nursery, f"team-b-{suffix}", second_cluster, {"env": suffix})
    team_a = Agent(nursery, f"team-a-{suffix}", cluster, {"env": suffix})
    await started(cp.agent_url, team_b, team_a)
    both = {team_a.agent_id: "completed", team_b.agent_id: "completed"}
    await until(cp.client, admin, lambda v: states(v) == both)
    view = await until(cp.client, name, lambda v: states(v) == {team_a.agent_id: "completed"})
    assert view["total"] == 1
    assert await configmap_data(cluster, name) == {}
    assert await configmap_data(second_cluster, name) is None
    assert await configmap_data(second_cluster, admin) == {}
