"""Whether an applied object is ready, from its JSON as the API server returns it.

The rules are kstatus's (sigs.k8s.io/cli-utils ``pkg/kstatus/status``: README, ``generic.go``,
``core.go``), in its order. First, for every kind (``checkGenericProperties``): a deletion
timestamp, or a ``status.observedGeneration`` other than ``metadata.generation`` (the controller
has not seen the latest spec), is in progress; a ``Reconciling`` condition True is in progress
and a ``Stalled`` one True is failed, with its message. Then the kind's own rules (``legacyTypes``):
Deployment (replicas, updated, available and ready against ``spec.replicas``; ``Progressing``
for ``ProgressDeadlineExceeded`` is failed, with that condition's message; with a deadline,
``Progressing`` by ``NewReplicaSetAvailable`` and ``Available`` True), ReplicaSet, StatefulSet
(``OnDelete`` is current; a ``partition`` needs only its replicas updated; else all current and
``currentRevision == updateRevision``), DaemonSet (generation observed; desired against current,
updated, available, ready), Job (``Complete``; ``Failed`` is failed), Pod (Running and Ready, or
Succeeded), PersistentVolumeClaim (``Bound``), Service, CustomResourceDefinition
(``Established``; ``NamesAccepted`` False, or ``Established`` False but not ``Installing``, is
failed), PodDisruptionBudget, and ConfigMap, Secret and CronJob (always). Any other kind: a
``Ready`` condition True is current, any other ``Ready`` in progress with its message; without
one, current once applied.

Where this differs from kstatus it is stricter, since "ready" here gates what is applied next: a
Job only once ``Complete`` (kstatus: once started), a ``Failed`` Pod is failed (kstatus: current),
a ``LoadBalancer`` Service needs an ingress (kstatus: a cluster IP), a PodDisruptionBudget needs
an observed generation, a StatefulSet ``partition`` of 0 (the API server's default) is none
(kstatus: a partition, so its revisions are never compared), an object being deleted is in
progress (kstatus: Terminating), and an unschedulable Pod stays in progress with the scheduler's
message (kstatus: failed after 15 s, which needs a clock; this is pure).

Bounded: only paths of fixed depth are read (no recursion), at most :data:`MAX_ITEMS` conditions
or container statuses, and every message is one line of at most :data:`MAX_MESSAGE` characters.
A field of the wrong JSON type is a :class:`ReadinessInputError` naming it.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Final

import attrs

MAX_MESSAGE: Final = 300
"""Characters of a message at most (a condition's message is cut to this, with an ellipsis)."""
MAX_ITEMS: Final = 64
"""Conditions (and container statuses) looked at, in order; the rest are not read."""


def one_line(text: str) -> str:
    """``text`` on one line of at most :data:`MAX_MESSAGE` characters."""
    flat = " ".join(text[: MAX_MESSAGE * 4].split())
    return flat if len(flat) <= MAX_MESSAGE else flat[: MAX_MESSAGE - 1] + "…"


class Status(enum.StrEnum):
    CURRENT = "current"
    """Ready: reconciled and doing what its spec says."""
    IN_PROGRESS = "in_progress"
    """Not ready yet; it may become ready without anyone doing anything."""
    FAILED = "failed"
    """Its controller says it will not become ready without a change."""
    UNKNOWN = "unknown"
    """The status says something these rules cannot read (a Pod phase no release has)."""


@attrs.frozen
class Readiness:
    status: Status
    message: str = attrs.field(converter=one_line)
    """Why, on one line of at most :data:`MAX_MESSAGE` characters, in the controller's words."""

    @property
    def ready(self) -> bool:
        return self.status is Status.CURRENT


class ReadinessInputError(ValueError):
    """The object is not one the API server would return: a field of the wrong JSON type."""


@attrs.frozen
class Condition:
    KEYS: ClassVar = ("type", "status", "reason", "message")
    type: str
    status: str
    reason: str
    message: str


current = functools.partial(Readiness, Status.CURRENT)
in_progress = functools.partial(Readiness, Status.IN_PROGRESS)
failed = functools.partial(Readiness, Status.FAILED)


def first_of(*checks: tuple[bool, str]) -> Readiness | None:
    """In progress with the message of the first check that holds; None if none does."""
    return next((in_progress(message) for holds, message in checks if holds), None)


class Fields:
    """Typed reads of fixed paths in one object; absent (or JSON null) gives the default."""

    def __init__(self, obj: Mapping[str, Any], where: str = "") -> None:
        self.obj, self.where = obj, where

    def get(self, path: str) -> object:
        node: object = self.obj
        walked = self.where
        for key in path.split("."):
            if node is None:
                return None
            if not isinstance(node, Mapping):
                raise ReadinessInputError(f"{walked or 'the object'} is not a JSON object")
            node = node.get(key)
            walked = f"{walked}.{key}" if walked else key
        return node

    def typed[T](self, path: str, kind: type[T], what: str) -> T | None:
        value = self.get(path)
        if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
            return value
        raise ReadinessInputError(f"{self.where}{'.' if self.where else ''}{path} is not {what}")

    def integer(self, path: str, default: int) -> int:
        value = self.typed(path, int, "an integer")
        if value is not None and abs(value) >= 2**63:
            raise ReadinessInputError(f"{path} is out of range")
        return default if value is None else value

    def string(self, path: str, default: str = "") -> str:
        value = self.typed(path, str, "a string")
        return default if value is None else value

    def items(self, path: str) -> Sequence[object]:
        return (self.typed(path, list, "a list") or [])[:MAX_ITEMS]

    def conditions(self) -> tuple[Condition, ...]:
        found = []
        for index, item in enumerate(self.items("status.conditions")):
            if not isinstance(item, Mapping):
                raise ReadinessInputError(f"status.conditions[{index}] is not a JSON object")
            one = Fields(item, f"status.conditions[{index}]")
            found.append(Condition(*(one.string(key) for key in Condition.KEYS)))
        return tuple(found)

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions() if c.type == kind), None)


def compute(obj: Mapping[str, Any]) -> Readiness:
    """How ready ``obj`` (one object, as the API server returns it) is, by kstatus's rules."""
    if not isinstance(obj, Mapping):
        raise ReadinessInputError("the object is not a JSON object")
    fields = Fields(obj)
    kind = fields.string("kind")
    if not kind:
        raise ReadinessInputError("kind is missing")
    group = fields.string("apiVersion").rpartition("/")[0]
    if (generic := generic_properties(fields, kind)) is not None:
        return generic
    rule = RULES.get(f"{group}/{kind}" if group else kind)
    return rule(fields) if rule is not None else ready_condition(fields)


def generic_properties(fields: Fields, kind: str) -> Readiness | None:
    """kstatus's ``checkGenericProperties``: deletion, the observed generation, and the
    ``Reconciling`` and ``Stalled`` conditions."""
    if fields.string("metadata.deletionTimestamp"):
        return in_progress("Resource scheduled for deletion")
    latest = fields.integer("metadata.generation", -1)
    seen = fields.integer("status.observedGeneration", latest)
    if latest != -1 and seen != latest:
        return in_progress(
            f"{kind} generation is {latest}, but latest observed generation is {seen}"
        )
    for condition in fields.conditions():
        if condition.type == "Reconciling" and condition.status == "True":
            return in_progress(condition.message or f"Reconciling: {condition.reason}")
        if condition.type == "Stalled" and condition.status == "True":
            return failed(condition.message or f"Stalled: {condition.reason}")
    return None


def ready_condition(fields: Fields) -> Readiness:
    """Any other kind: its ``Ready`` condition if it has one, else current once applied."""
    ready = fields.condition("Ready")
    if ready is None:
        return current("Resource is current")
    words = ready.message or ready.reason
    if ready.status == "True":
        return current(f"Ready: {words}" if words else "Ready")
    return in_progress(words or f"Ready is {ready.status or 'not set'}")


def deployment(fields: Fields) -> Readiness:
    progressing = fields.get("spec.progressDeadlineSeconds") is None
    available = False
    for condition in fields.conditions():
        if condition.type == "Progressing":
            if condition.reason == "ProgressDeadlineExceeded":
                return failed(condition.message or "Progress deadline exceeded")
            if condition.status == "True" and condition.reason == "NewReplicaSetAvailable":
                progressing = True
        elif condition.type == "Available" and condition.status == "True":
            available = True
    spec = fields.integer("spec.replicas", 1)
    replicas = fields.integer("status.replicas", 0)
    updated = fields.integer("status.updatedReplicas", 0)
    ready = fields.integer("status.readyReplicas", 0)
    up = fields.integer("status.availableReplicas", 0)
    waiting = first_of(
        (spec > replicas, f"Replicas: {replicas}/{spec}"),
        (spec > updated, f"Updated: {updated}/{spec}"),
        (replicas > spec, f"Pending termination: {replicas - spec}"),
        (updated > up, f"Available: {up}/{updated}"),
        (spec > ready, f"Ready: {ready}/{spec}"),
        (not progressing, "ReplicaSet not Available"),
        (not available, "Deployment not Available"),
    )
    return waiting or current(f"Deployment is available. Replicas: {replicas}")


def replica_set(fields: Fields) -> Readiness:
    failure = fields.condition("ReplicaFailure")
    if failure is not None and failure.status == "True":
        return in_progress(f"Replica Failure condition. Check Pods: {failure.message}")
    spec = fields.integer("spec.replicas", 1)
    replicas = fields.integer("status.replicas", 0)
    ready = fields.integer("status.readyReplicas", 0)
    up = fields.integer("status.availableReplicas", 0)
    labelled = fields.integer("status.fullyLabeledReplicas", 0)
    waiting = first_of(
        (spec > labelled, f"Labelled: {labelled}/{spec}"),
        (spec > up, f"Available: {up}/{spec}"),
        (spec > ready, f"Ready: {ready}/{spec}"),
        (replicas > spec, f"Pending termination: {replicas - spec}"),
    )
    return waiting or current(f"ReplicaSet is available. Replicas: {replicas}")


def stateful_set(fields: Fields) -> Readiness:
    if fields.string("spec.updateStrategy.type") == "OnDelete":
        return current("StatefulSet is using the ondelete update strategy")
    spec = fields.integer("spec.replicas", 1)
    replicas = fields.integer("status.replicas", 0)
    ready = fields.integer("status.readyReplicas", 0)
    now = fields.integer("status.currentReplicas", 0)
    updated = fields.integer("status.updatedReplicas", 0)
    partition = fields.integer("spec.updateStrategy.rollingUpdate.partition", -1)
    waiting = first_of(
        (spec > replicas, f"Replicas: {replicas}/{spec}"),
        (spec > ready, f"Ready: {ready}/{spec}"),
        (replicas > spec, f"Pending termination: {replicas - spec}"),
    )
    if waiting is not None:
        return waiting
    if partition > 0:
        if updated < spec - partition:
            return in_progress(f"updated: {updated}/{spec - partition}")
        return current(f"Partition rollout complete. updated: {updated}")
    if spec > now:
        return in_progress(f"current: {now}/{spec}")
    if fields.string("status.currentRevision") != fields.string("status.updateRevision"):
        return in_progress("Waiting for updated revision to match current")
    return current(f"All replicas scheduled as expected. Replicas: {replicas}")


def daemon_set(fields: Fields) -> Readiness:
    for path in ("metadata.generation", "status.observedGeneration"):
        if fields.get(path) is None:
            return in_progress(f"DaemonSet {path} not found")
    desired = fields.integer("status.desiredNumberScheduled", -1)
    if desired == -1:
        return in_progress("Missing .status.desiredNumberScheduled")
    for path, label in (
        ("status.currentNumberScheduled", "Current"),
        ("status.updatedNumberScheduled", "Updated"),
        ("status.numberAvailable", "Available"),
        ("status.numberReady", "Ready"),
    ):
        count = fields.integer(path, 0)
        if desired > count:
            return in_progress(f"{label}: {count}/{desired}")
    return current(f"All replicas scheduled as expected. Replicas: {desired}")


def job(fields: Fields) -> Readiness:
    parallelism = fields.integer("spec.parallelism", 1)
    completions = fields.integer("spec.completions", parallelism)
    succeeded = fields.integer("status.succeeded", 0)
    active = fields.integer("status.active", 0)
    lost = fields.integer("status.failed", 0)
    for condition in fields.conditions():
        if condition.status != "True":
            continue
        if condition.type == "Complete":
            return current(f"Job Completed. succeeded: {succeeded}/{completions}")
        if condition.type == "Failed":
            return failed(condition.message or f"Job Failed. failed: {lost}/{completions}")
        if condition.type == "Suspended":
            return current("Job is suspended")
    if not fields.string("status.startTime"):
        return in_progress("Job not started")
    return in_progress(f"Job in progress. success: {succeeded}, active: {active}, failed: {lost}")


def pod(fields: Fields) -> Readiness:
    phase = fields.string("status.phase")
    if phase == "Succeeded":
        return current("Pod has completed successfully")
    if phase == "Failed":
        why = fields.string("status.message") or fields.string("status.reason")
        return failed(f"Pod has completed, but not successfully{': ' + why if why else ''}")
    if phase == "Running":
        ready = fields.condition("Ready")
        if ready is not None and ready.status == "True":
            return current("Pod is Ready")
        looping = crash_looping(fields)
        if looping:
            return failed(f"Containers in CrashLoop state: {','.join(looping)}")
        return in_progress("Pod is running but is not Ready")
    if phase == "Pending":
        scheduled = fields.condition("PodScheduled")
        if scheduled is not None and (scheduled.status, scheduled.reason) == (
            "False",
            "Unschedulable",
        ):
            return in_progress(f"Pod could not be scheduled: {scheduled.message}")
        return in_progress("Pod is in the Pending phase")
    if not phase:
        return in_progress("Pod phase not available")
    return Readiness(Status.UNKNOWN, f"Pod phase {phase} is not known")


def crash_looping(fields: Fields) -> list[str]:
    names = []
    for index, item in enumerate(fields.items("status.containerStatuses")):
        if not isinstance(item, Mapping):
            raise ReadinessInputError(f"status.containerStatuses[{index}] is not a JSON object")
        one = Fields(item, f"status.containerStatuses[{index}]")
        if one.string("state.waiting.reason") == "CrashLoopBackOff":
            names.append(one.string("name"))
    return names


def persistent_volume_claim(fields: Fields) -> Readiness:
    phase = fields.string("status.phase", "unknown")
    if phase != "Bound":
        return in_progress(f"PVC is not Bound. phase: {phase}")
    return current("PVC is Bound")


def service(fields: Fields) -> Readiness:
    balanced = fields.string("spec.type", "ClusterIP") == "LoadBalancer"
    if balanced and not fields.items("status.loadBalancer.ingress"):
        return in_progress("Waiting for a load balancer ingress. Service type: LoadBalancer")
    return current("Service is ready")


def custom_resource_definition(fields: Fields) -> Readiness:
    for condition in fields.conditions():
        if condition.type == "NamesAccepted" and condition.status == "False":
            return failed(condition.message or f"Names not accepted: {condition.reason}")
        if condition.type == "Established":
            if condition.status == "False" and condition.reason != "Installing":
                return failed(condition.message or f"Not established: {condition.reason}")
            if condition.status == "True":
                return current("CRD is established")
    return in_progress("Install in progress")


def pod_disruption_budget(fields: Fields) -> Readiness:
    if fields.get("status.observedGeneration") is None:
        return in_progress("PodDisruptionBudget status.observedGeneration not found")
    return current("AllowedDisruptions has been computed.")


def always_ready(fields: Fields) -> Readiness:
    return current("Resource is always ready")


RULES: Final[Mapping[str, Callable[[Fields], Readiness]]] = {
    "Service": service,
    "Pod": pod,
    "Secret": always_ready,
    "ConfigMap": always_ready,
    "PersistentVolumeClaim": persistent_volume_claim,
    "apps/StatefulSet": stateful_set,
    "apps/DaemonSet": daemon_set,
    "extensions/DaemonSet": daemon_set,
    "apps/Deployment": deployment,
    "extensions/Deployment": deployment,
    "apps/ReplicaSet": replica_set,
    "extensions/ReplicaSet": replica_set,
    "policy/PodDisruptionBudget": pod_disruption_budget,
    "batch/CronJob": always_ready,
    "batch/Job": job,
    "apiextensions.k8s.io/CustomResourceDefinition": custom_resource_definition,
}
"""kstatus's ``legacyTypes``: the rules of each built-in kind, by ``group/Kind``."""
