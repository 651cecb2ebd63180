"""What the producer shows of rollouts and plans, from the API's views: tables, a plan's
diffs, the live lines, and the exit code a view gives. Pure: no control plane."""

from __future__ import annotations

import io
from typing import Any

import trio
import trio.testing
from rich.console import Console

from transporter.config.produce import Reach
from transporter.produce import rollout_render, rollouts
from transporter.produce.live import Lines, LiveTable, follow_rollout, shown_clusters, table
from transporter.produce.plans import summary
from transporter.produce.views import RolloutView
from transporter.protocol.rollout import Strategy, Wave


def cluster(agent: str, state: str, **more: Any) -> dict[str, Any]:
    return {"agent_id": agent, "wave": 0, "event_id": f"r1_{agent}", "state": state} | more


def view(state: str, *clusters: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "id": "r1",
        "kind": "apply",
        "state": state,
        "message": "",
        "created_at": 1_700_000_000.0,
        "selector": "env=prod",
        "agents": [],
        "wave": 0,
        "waves": 2,
        "clusters": list(clusters),
    } | more


PLAN = view(
    "completed",
    cluster(
        "a",
        "completed",
        resources=[
            {
                "api_version": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "namespace": "shop",
                "status": "would_change",
                "fingerprint": "f1",
                "diff": [
                    {"path": "spec.replicas", "op": "change", "old": "2", "new": "3"},
                    {"path": "metadata.labels.tier", "op": "add", "new": '"web"'},
                    {"path": "data.token", "op": "remove", "old": '"<redacted>"'},
                ],
            },
            {
                "api_version": "v1",
                "kind": "ConfigMap",
                "name": "cfg",
                "namespace": "shop",
                "status": "unchanged",
            },
        ],
    ),
    cluster("b", "failed", message="cluster unavailable"),
    kind="plan",
)


def test_a_plan_shows_each_object_and_each_change_under_it() -> None:
    shown = rollout_render.plan_text(RolloutView.of(PLAN))
    assert shown.splitlines() == [
        "CLUSTER  OBJECT               RESULT        MESSAGE",
        "a        Deployment/shop/web  would_change",
        "    spec.replicas: 2 -> 3",
        '    metadata.labels.tier: + "web"',
        '    data.token: - "<redacted>"',
        "a        ConfigMap/shop/cfg   unchanged",
        "b        -                    failed        cluster unavailable",
    ]
    assert summary(RolloutView.of(PLAN)) == (
        "1 would_change on the 1 cluster(s) that planned; 1 did not plan: b (failed: cluster"
        " unavailable)"
    )
    bare = rollout_render.plan_text(RolloutView.of(PLAN), headers=False)
    assert bare.splitlines()[0].startswith("a  Deployment/shop/web  would_change")


def test_a_plan_with_a_cluster_that_did_not_plan_never_says_nothing_to_change() -> None:
    quiet = [cluster("a", "completed", resources=[])]
    assert summary(RolloutView.of(view("completed", *quiet))) == "nothing to change on 1 cluster(s)"
    lost = [cluster(f"gone-{i:02}", "expired") for i in range(12)]
    said = summary(RolloutView.of(view("failed", *quiet, *lost, kind="plan")))
    assert "nothing to change" not in said
    assert said.startswith("no change found on the 1 cluster(s) that planned; 12 did not plan:")
    assert "gone-00 (expired), gone-01 (expired)" in said
    assert "gone-09 (expired) and 2 more" in said and "gone-10" not in said


def test_a_result_the_producer_cannot_read_is_shown_failed_not_a_crash() -> None:
    odd = view("completed", cluster("a", "completed", resources=[{"kind": "X", "status": "?"}]))
    (result,) = RolloutView.of(odd).clusters[0].resources
    assert result.status.value == "failed" and "cannot be read" in result.message


def test_rollouts_and_clusters_as_tables() -> None:
    running = RolloutView.of(
        view(
            "running",
            cluster("a", "completed"),
            cluster("b", "failed", message="boom"),
            cluster("c", "pending"),
        )
    )
    assert rollout_render.counts_line(running) == "1 completed, 1 pending, 1 failed (3 clusters)"
    headers, rows = rollout_render.rollouts_rows([running], 1_700_000_060.0)
    assert headers[:7] == ("ID", "KIND", "STATE", "DONE", "FAILED", "WAVE", "AGE")
    assert rows == [("r1", "apply", "running", "2/3", "1", "1/2", "1m", "")]
    wide = rollout_render.rollouts_rows([running], 1_700_000_060.0, wide=True)[1][0]
    assert wide[7:10] == ("-l env=prod", "-", "no")
    _, clusters = rollout_render.clusters_rows(running.clusters)
    assert clusters[1] == ("b", "1", "failed", "-", "boom")


def test_the_exit_code_is_0_only_when_every_cluster_completed() -> None:
    def code(state: str, *states: str, why: str = "settled") -> int:
        data = view(state, *(cluster(f"a{i}", s) for i, s in enumerate(states)))
        settings = Reach(output="json")
        return rollouts.ended(settings, Console(file=io.StringIO()), data, why)

    assert code("completed", "completed", "completed") == 0
    assert code("standing") == 0  # a standing rollout nobody matched yet: nothing failed
    assert code("failed", "completed", "failed") == 1
    assert code("failed", "completed", "expired") == 1
    assert code("cancelled", "completed", "cancelled") == 1
    assert code("completed", "completed", "drifted") == 1
    assert code("running", "completed", why="timeout") == 1
    assert code("running", "completed", why="interrupted") == 1


def test_the_request_body_says_only_what_was_given() -> None:
    strategy = Strategy(max_parallel_percent=25, waves=(Wave("r=1", pause=5), Wave(approval=True)))
    assert rollouts.strategy_body(strategy) == {
        "max_parallel": "25%",
        "waves": [
            {"selector": "r=1", "pause": 5, "approval": False},
            {"selector": "", "pause": 0, "approval": True},
        ],
    }
    assert rollouts.strategy_body(Strategy()) == {}
    assert rollouts.strategy_body(Strategy(max_parallel=3, max_failures=1)) == {
        "max_parallel": 3,
        "max_failures": 1,
    }


def test_accepted_lines() -> None:
    many = {"rollout_id": "r1", "status": "accepted", "agents": [f"a{i}" for i in range(12)]}
    line = rollouts.accepted_line(many | {"waves": [["a0"], ["a1"]]})
    assert line.startswith("rollout r1 accepted: 12 agent(s) in 2 waves (a0, a1,")
    assert line.endswith("a9, …)")
    again = {"rollout_id": "r1", "status": "exists", "state": "running"}
    assert rollouts.accepted_line(again) == "rollout r1 exists (state running)"


def test_following_shows_each_change_once_and_stops_when_settled() -> None:
    answers = [
        view("running", cluster("a", "queued"), cluster("b", "pending")),
        view("running", cluster("a", "queued"), cluster("b", "pending")),
        view("running", cluster("a", "in_progress", phase="applying"), cluster("b", "pending")),
        view("completed", cluster("a", "completed"), cluster("b", "completed")),
    ]
    looked: list[int] = []

    async def look() -> dict[str, Any]:
        looked.append(1)
        return answers[len(looked) - 1]

    buffer = io.StringIO()
    lines = Lines(Console(file=buffer, width=200, highlight=False))

    async def main() -> dict[str, Any]:
        return await follow_rollout(look, lines)

    assert trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))["state"] == (
        "completed"
    )
    shown = [line.split(None, 1)[1] for line in buffer.getvalue().splitlines()]
    assert shown == [
        "rollout  running",
        "a  wave 1  queued",
        "b  wave 1  pending",
        "a  wave 1  in_progress  applying",
        "rollout  completed",
        "a  wave 1  completed",
        "b  wave 1  completed",
    ]


def test_the_live_table_draws_every_cluster() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=True, color_system=None)
    with LiveTable(console) as live:
        live.update(RolloutView.of(view("running", cluster("a", "failed", message="[/] no"))))
    text = buffer.getvalue()
    assert "rollout r1  running" in text and "[/] no" in text
    assert "1 failed (1 cluster)" in text


def test_a_table_longer_than_the_screen_keeps_failures_then_work_then_waiting() -> None:
    states = ["completed"] * 5 + ["pending"] * 3 + ["in_progress", "failed", "queued"]
    many = RolloutView.of(view("running", *(cluster(f"a{i}", s) for i, s in enumerate(states))))
    kept, left_out = shown_clusters(many, 4)
    assert [c.agent_id for c in kept] == ["a5", "a8", "a9", "a10"]  # in the rollout's order
    assert left_out == 7
    buffer = io.StringIO()
    Console(file=buffer, width=100).print(table(many, 4))
    assert "… 7 more" in buffer.getvalue()
    assert shown_clusters(many, 50) == (list(many.clusters), 0)


def test_hostile_text_from_the_api_stays_on_its_line_and_never_reaches_the_terminal() -> None:
    hostile = view(
        "running\x1b[2J",
        cluster("a\nb", "failed", message="bad\x1b]0;title\x07 [/] \u202eevil\rline"),
        message="m\u2028n",
        agents=[f"x{i}" for i in range(1000)],
        selector="",
    )
    shown = RolloutView.of(hostile)
    assert shown.target == "x0,x1,x2,… (1000 agents)"
    buffer = io.StringIO()
    Lines(Console(file=buffer, width=300, highlight=False)).update(shown)
    rollout_render.show_rollout(Console(file=buffer, width=300), shown)
    text = buffer.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text, text
    assert "\\u001b[2J" in text and "[/]" in text
    cluster_lines = [line for line in text.splitlines() if "bad" in line]
    assert all(line.count("a b") == 1 for line in cluster_lines)
    line = rollouts.accepted_line({"rollout_id": "r\x1b", "status": "accepted", "agents": ["\n"]})
    assert "\x1b" not in line and "\n" not in line
