"""What ``wait_ready`` says of an object: kstatus's verdict, and the condition that says why."""

from __future__ import annotations

from typing import Any

from transporter.kube.readiness import MAX_MESSAGE
from transporter.kube.waiting import Verdict, assess, detail
from transporter.protocol.model import Readiness


def deployment(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "generation": 1},
        "spec": {"replicas": 2},
        "status": {"observedGeneration": 1, **status},
    }


UNAVAILABLE = {
    "type": "Available",
    "status": "False",
    "reason": "MinimumReplicasUnavailable",
    "message": "Deployment does not have minimum availability.",
}
PROGRESSING = {"type": "Progressing", "status": "True", "message": "ReplicaSet is progressing."}


def test_not_ready_with_its_condition() -> None:
    found = assess(deployment(replicas=2, updatedReplicas=2, conditions=[PROGRESSING, UNAVAILABLE]))
    assert found == Verdict(
        Readiness.IN_PROGRESS,
        "Available: 0/2",
        "Available: Deployment does not have minimum availability.",
    )
    assert found.words == (
        "Available: 0/2 (Available: Deployment does not have minimum availability.)"
    )


def test_ready() -> None:
    rolled = {"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}
    available = {"type": "Available", "status": "True"}
    found = assess(deployment(**rolled, conditions=[available]))
    assert found == Verdict(Readiness.CURRENT, "Deployment is available. Replicas: 2")
    assert found.words == found.message


def test_failed_says_it_once() -> None:
    late = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "web-1" has timed out progressing.',
    }
    found = assess(deployment(conditions=[late]))
    assert found.ready is Readiness.FAILED
    assert found.words == 'ReplicaSet "web-1" has timed out progressing.'


def test_gone_and_unreadable() -> None:
    assert assess(None) == Verdict(Readiness.FAILED, "deleted while waiting for it to be ready")
    odd = assess({"apiVersion": "v1", "kind": "Pod", "status": {"phase": 7}})
    assert odd.ready is Readiness.UNKNOWN
    assert odd.message == "its status cannot be read: status.phase is not a string"


def test_detail_reads_conditions_both_ways_and_is_bounded() -> None:
    upside_down = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate"}
    assert detail({"status": {"conditions": [PROGRESSING, upside_down]}}) == (
        "ReplicaFailure: FailedCreate"
    )
    assert detail({"status": {"conditions": "odd"}}) == ""
    assert detail({"status": {"conditions": [1, {"type": 2}, {"type": "Ready"}]}}) == ""
    long = {"type": "Ready", "status": "False", "message": "x\n" * 1000}
    said = detail({"status": {"conditions": [long]}})
    assert len(said) == MAX_MESSAGE and "\n" not in said
