"""Rollouts and plans as the API shows them (:mod:`transporter.cp.api.rollout_views`): the
shapes, the number of waves, and no Secret value in a message or a plan's diff, whatever the
agent reported."""

from __future__ import annotations

from typing import Any

import attrs

from transporter.cp.api.rollout_views import (
    detail,
    plan_detail,
    scrubber,
    strategy_view,
    summary,
    waves_of,
)
from transporter.protocol.model import (
    Event,
    EventRecord,
    FieldChange,
    K8sPayload,
    ResourceResult,
    ResourceStatus,
)
from transporter.protocol.rollout import (
    RolloutCluster,
    RolloutEntry,
    RolloutKind,
    RolloutRecord,
    RolloutSpec,
    Strategy,
    Wave,
)

SECRET = """apiVersion: v1
kind: Secret
metadata: {name: db, namespace: default}
stringData: {password: hunter2-hunter2}
"""
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"


def record(*manifests: str, kind: RolloutKind = RolloutKind.APPLY, **fields: Any) -> RolloutRecord:
    spec = RolloutSpec(
        id="r1",
        kind=kind,
        payload=K8sPayload(manifests or (CONFIGMAP,)),
        created_at=100.0,
        ttl=60,
        created_by="token:ci",
        selector="env=prod",
        strategy=Strategy(max_parallel_percent=25, waves=(Wave("ring=canary", 10, True),)),
    )
    clusters = (
        RolloutCluster("a-1", 0, "r1_a-1", "completed", "completed", "", 101.0),
        RolloutCluster("a-2", 1, "r1_a-2", "failed", "applying", "bad: hunter2-hunter2", 102.0),
        RolloutCluster("a-3", 1, "r1_a-3"),
    )
    timeline = (RolloutEntry(100.0, "accepted"), RolloutEntry(101.0, "wave_started", wave=1))
    return RolloutRecord(spec, clusters=clusters, timeline=timeline, **fields)


def test_a_summary_counts_clusters_by_state() -> None:
    shown = summary(record(), scrubber(record()))
    assert shown == {
        "id": "r1",
        "kind": "apply",
        "state": "running",
        "message": "",
        "created_at": 100.0,
        "created_by": "token:ci",
        "selector": "env=prod",
        "agents": [],
        "standing": False,
        "wave": 0,
        "waves": 2,
        "counts": {"completed": 1, "failed": 1, "pending": 1},
        "total": 3,
        "updated_at": 0.0,
    }


def test_waves_are_the_strategy_s_and_a_last_one_for_the_rest() -> None:
    plain = record()
    assert waves_of(plain) == 2
    alone = attrs.evolve(plain, clusters=plain.clusters[:1])
    assert waves_of(alone) == 1
    empty = attrs.evolve(plain, clusters=(), spec=attrs.evolve(plain.spec, strategy=Strategy()))
    assert waves_of(empty) == 1


def test_a_strategy_is_shown_as_submitted() -> None:
    assert strategy_view(Strategy(max_parallel_percent=25)) == {
        "max_parallel": "25%",
        "max_failures": 0,
        "waves": [],
    }
    shown = strategy_view(Strategy(3, 0, 1, (Wave("a=b", 5, True),)))
    assert shown == {
        "max_parallel": 3,
        "max_failures": 1,
        "waves": [{"selector": "a=b", "pause": 5, "approval": True}],
    }


def test_the_detail_scrubs_secret_values_out_of_messages() -> None:
    plain = record(SECRET, message="a-2 failed: hunter2-hunter2")
    shown = detail(plain, scrubber(plain))
    text = repr(shown)
    assert "hunter2" not in text
    assert shown["clusters"][1]["message"] == "bad: <redacted>"
    assert shown["message"] == "a-2 failed: <redacted>"
    assert shown["timeline"][1] == {"at": 101.0, "what": "wave_started", "message": "", "wave": 1}
    assert shown["plan_id"] == ""
    assert shown["strategy"]["max_parallel"] == "25%"
    # Without a Secret in the manifests nothing is parsed, and nothing changes.
    other = record(message="x: hunter2-hunter2")
    assert detail(other, scrubber(other))["message"] == "x: hunter2-hunter2"


def child(agent: str, *results: ResourceResult) -> EventRecord:
    event = Event(f"r1_{agent}", agent, K8sPayload((SECRET,)), 60, 100.0, rollout_id="r1")
    return EventRecord(event, 1, resources=results)


def test_a_plan_shows_results_with_a_secret_s_values_redacted_whatever_the_agent_sent() -> None:
    plan = record(SECRET, kind=RolloutKind.PLAN)
    secret = ResourceResult(
        "v1",
        "Secret",
        "db",
        "default",
        ResourceStatus.WOULD_CHANGE,
        "would change password",
        diff=(
            FieldChange("stringData.password", "change", "old-value-1", "hunter2-hunter2"),
            FieldChange("data.token", "add", "", "dG9rZW4="),
            FieldChange("metadata.labels.app", "change", "a", "b"),
        ),
        fingerprint="f" * 32,
    )
    config = ResourceResult(
        "v1",
        "ConfigMap",
        "a",
        "default",
        ResourceStatus.WOULD_CHANGE,
        diff=(FieldChange("data.copy", "change", "x", "hunter2-hunter2"),),
        fingerprint="absent",
    )
    shown = plan_detail(plan, [child("a-1", secret, config), None, child("a-3")], scrubber(plan))
    assert "hunter2" not in repr(shown) and "dG9rZW4=" not in repr(shown)
    assert shown["expires_at"] == 160.0
    first = shown["clusters"][0]["resources"]
    assert first[0]["diff"] == [
        {"path": "stringData.password", "op": "change", "old": "<redacted>", "new": "<redacted>"},
        {"path": "data.token", "op": "add", "old": "", "new": "<redacted>"},
        {"path": "metadata.labels.app", "op": "change", "old": "a", "new": "b"},
    ]
    assert first[0]["fingerprint"] == "f" * 32
    assert first[1]["diff"][0]["new"] == "<redacted>"  # a known Secret value, scrubbed
    assert shown["clusters"][1]["resources"] == []
    assert shown["clusters"][2]["resources"] == []
    assert shown["results_for"] == 3
    # Only the first clusters' children read: the others are shown without results.
    first_only = plan_detail(plan, [child("a-1", config)], scrubber(plan))
    assert first_only["results_for"] == 1
    assert [len(c["resources"]) for c in first_only["clusters"]] == [1, 0, 0]


def test_a_plan_shows_only_its_own_children_s_results() -> None:
    """An event stored under a child's id that this plan did not make for that agent (another
    rollout's, or a single event submitted with that id) shows no results under the plan."""
    plan = record(kind=RolloutKind.PLAN)
    result = ResourceResult("v1", "ConfigMap", "a", "default", ResourceStatus.WOULD_CREATE)
    own = child("a-1", result)
    submitted = attrs.evolve(own, event=attrs.evolve(own.event, rollout_id=""))
    elsewhere = attrs.evolve(own, event=attrs.evolve(own.event, target_agent="a-9"))
    shown = plan_detail(plan, [own, submitted, elsewhere], scrubber(plan))
    assert [len(c["resources"]) for c in shown["clusters"]] == [1, 0, 0]
    assert shown["clusters"][0]["message"] == ""
    for cluster in shown["clusters"][1:]:
        assert "was not made by this plan" in cluster["message"]
        assert cluster["agent_id"] in cluster["message"]
