"""Fingerprints: a delete's: what a controller writes leaves them as they were, any edit changes
them; an apply's: only what its manifest sets (and the object's being there, and its deletion)
counts; a Secret's values are never hashed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from transporter.kube.fingerprint import DIGITS, content, fingerprint, redacted
from transporter.protocol.model import ABSENT
from transporter.security.scrub import LAST_APPLIED, REDACTED

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "shop",
        "uid": "1f0c",
        "resourceVersion": "100",
        "generation": 3,
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "labels": {"app": "web"},
        "annotations": {"deployment.kubernetes.io/revision": "3", "team": "a"},
        "managedFields": [{"manager": "transporter", "operation": "Apply"}],
    },
    "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "web:1"}]}}},
    "status": {"replicas": 1, "availableReplicas": 1},
}


def edited(path: str, value: Any, base: dict[str, Any] = DEPLOYMENT) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = obj
    for part in parents:
        node = node[part]
    node[last] = value
    return obj


def test_absent_and_shape() -> None:
    assert fingerprint(None, None) == ABSENT
    found = fingerprint(DEPLOYMENT, None)
    assert len(found) == DIGITS and int(found, 16) >= 0


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("status.availableReplicas", 2),
        ("status", {"conditions": [{"type": "Available", "status": "True"}]}),
        ("metadata.resourceVersion", "101"),
        ("metadata.generation", 4),
        ("metadata.managedFields", []),
        ("metadata.annotations", {"deployment.kubernetes.io/revision": "4", "team": "a"}),
    ],
)
def test_what_the_server_and_controllers_write_does_not_change_it(path: str, value: Any) -> None:
    assert fingerprint(edited(path, value), None) == fingerprint(DEPLOYMENT, None)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.replicas", 3),
        ("metadata.labels", {"app": "web", "tier": "front"}),
        ("metadata.annotations", {"deployment.kubernetes.io/revision": "3", "team": "b"}),
        ("metadata.finalizers", ["example.com/keep"]),
        ("metadata.deletionTimestamp", "2026-01-02T00:00:00Z"),
    ],
)
def test_an_edit_changes_it(path: str, value: Any) -> None:
    assert fingerprint(edited(path, value), None) != fingerprint(DEPLOYMENT, None)


def test_content_keeps_what_an_apply_can_change() -> None:
    kept = content(DEPLOYMENT)
    assert "status" not in kept
    assert kept["metadata"] == {
        "name": "web",
        "namespace": "shop",
        "labels": {"app": "web"},
        "annotations": {"team": "a"},
    }
    assert content(
        {"kind": "X", "metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}}}
    ) == {
        "kind": "X",
        "metadata": {},
    }


SECRET: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {
        "name": "creds",
        "namespace": "shop",
        "resourceVersion": "7",
        "annotations": {LAST_APPLIED: '{"data":{"pw":"aHVudGVyMg=="}}'},
    },
    "data": {"pw": "aHVudGVyMg=="},
    "type": "Opaque",
}


def test_a_secret_is_fingerprinted_by_its_version_not_its_values() -> None:
    same_values_other_version = edited("metadata.resourceVersion", "8", SECRET)
    assert fingerprint(same_values_other_version, None) != fingerprint(SECRET, None)
    other_values_same_version = edited("data", {"pw": "b3RoZXI="}, SECRET)
    assert fingerprint(other_values_same_version, None) == fingerprint(SECRET, None), (
        "values are not hashed"
    )
    assert fingerprint(edited("data", {"pw": "x", "new": "y"}, SECRET), None) != fingerprint(
        SECRET, None
    )


def test_redacted_hides_a_secrets_values_and_keeps_its_keys() -> None:
    shown = redacted({**SECRET, "stringData": {"token": "t0ken"}})
    assert shown["data"] == {"pw": REDACTED}
    assert shown["stringData"] == {"token": REDACTED}
    assert shown["metadata"]["annotations"] == {LAST_APPLIED: REDACTED}
    assert "aHVudGVyMg" not in repr(shown) and "t0ken" not in repr(shown)
    assert redacted(DEPLOYMENT) == DEPLOYMENT
    assert redacted({"apiVersion": "v1", "kind": "Secret", "data": "odd"})["data"] == REDACTED


MANIFEST: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {"template": {"spec": {"containers": [{"image": "web:1"}]}}},
}
"""What an apply of ``DEPLOYMENT`` sends: no replicas (an autoscaler's), no annotations."""


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.replicas", 7),
        ("metadata.labels", {"app": "web", "added-by": "someone-else"}),
        ("metadata.annotations", {"team": "b"}),
        ("status.availableReplicas", 2),
        ("metadata.resourceVersion", "101"),
    ],
)
def test_an_apply_covers_only_what_its_manifest_sets(path: str, value: Any) -> None:
    assert fingerprint(edited(path, value), MANIFEST) == fingerprint(DEPLOYMENT, MANIFEST)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.template", {"spec": {"containers": [{"image": "web:2"}]}}),
        ("spec.template", {"spec": {"containers": [{"image": "web:1"}, {"image": "side:1"}]}}),
        ("metadata.labels", {"app": "shop"}),
        ("metadata.labels", {}),
        ("metadata.deletionTimestamp", "2026-01-02T00:00:00Z"),
    ],
)
def test_an_apply_sees_an_edit_of_what_its_manifest_sets(path: str, value: Any) -> None:
    assert fingerprint(edited(path, value), MANIFEST) != fingerprint(DEPLOYMENT, MANIFEST)


def test_a_missing_field_is_not_any_value() -> None:
    """A field the manifest sets that the live object lacks is unlike every value it may have."""
    manifest = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    lacking = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    values: tuple[object, ...] = (None, [], {}, "", "1")
    for value in values:
        having = {**lacking, "data": {"a": value}}
        assert fingerprint(having, manifest) != fingerprint(lacking, manifest)
    assert fingerprint(None, manifest) == ABSENT != fingerprint(lacking, manifest)


def test_a_secrets_apply_fingerprint_hashes_its_version_not_its_values() -> None:
    manifest = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}}
    assert fingerprint(SECRET, manifest) == fingerprint(SECRET, None)
    other_values = edited("data", {"pw": "b3RoZXI="}, SECRET)
    assert fingerprint(other_values, manifest) == fingerprint(SECRET, manifest)
    other_version = edited("metadata.resourceVersion", "8", SECRET)
    assert fingerprint(other_version, manifest) != fingerprint(SECRET, manifest)
