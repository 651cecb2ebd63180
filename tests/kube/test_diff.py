"""The fields a plan would change: paths, operations, compact values, Secrets redacted, bounds."""

from __future__ import annotations

import copy
from typing import Any

from transporter.kube.diff import MAX_DEPTH, compact, diff
from transporter.protocol.model import FieldChange
from transporter.protocol.report_bounds import MAX_CHANGES, MAX_PATH, MAX_VALUE
from transporter.security.scrub import LAST_APPLIED, REDACTED

LIVE: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "resourceVersion": "5", "generation": 1, "labels": {"a": "1"}},
    "spec": {
        "replicas": 2,
        "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}, {"name": "log"}]}},
    },
    "status": {"replicas": 2},
}


def test_nothing_changes_apart_from_what_the_server_writes() -> None:
    planned = copy.deepcopy(LIVE)
    planned["metadata"].update(resourceVersion="6", generation=2, managedFields=[{}])
    planned["status"] = {"replicas": 0}
    assert diff(LIVE, planned).changes == ()


def test_changes_added_and_removed_fields_in_path_order() -> None:
    planned = copy.deepcopy(LIVE)
    planned["spec"]["replicas"] = 3
    planned["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    del planned["spec"]["template"]["spec"]["containers"][1]
    planned["metadata"]["labels"] = {"a": "1", "app.kubernetes.io/name": "web"}
    found = diff(LIVE, planned)
    assert found.changes == (
        FieldChange('metadata.labels["app.kubernetes.io/name"]', "add", "", '"web"'),
        FieldChange("spec.replicas", "change", "2", "3"),
        FieldChange("spec.template.spec.containers[0].image", "change", '"web:1"', '"web:2"'),
        FieldChange("spec.template.spec.containers[1]", "remove", '{"name":"log"}', ""),
    )
    assert found.more == 0 and found.note == ""


def test_a_type_change_is_one_change() -> None:
    found = diff({"kind": "X", "data": {"a": [1]}}, {"kind": "X", "data": {"a": {"b": 1}}})
    assert found.changes == (FieldChange("data.a", "change", "[1]", '{"b":1}'),)


SECRET: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "creds", "annotations": {LAST_APPLIED: "pw=aHVudGVy"}},
    "data": {"pw": "aHVudGVy", "same": "c2FtZQ=="},
}


def test_a_secrets_values_are_redacted_on_both_sides() -> None:
    planned = copy.deepcopy(SECRET)
    planned["data"] = {"pw": "bmV3LXB3", "same": "c2FtZQ==", "added": "YWRkZWQ="}
    planned["metadata"]["annotations"][LAST_APPLIED] = "pw=bmV3LXB3"
    found = diff(SECRET, planned)
    assert found.changes == (
        FieldChange("data.added", "add", "", f'"{REDACTED}"'),
        FieldChange("data.pw", "change", f'"{REDACTED}"', f'"{REDACTED}"'),
        FieldChange(
            f'metadata.annotations["{LAST_APPLIED}"]', "change", f'"{REDACTED}"', f'"{REDACTED}"'
        ),
    )
    text = repr(found)
    assert "aHVudGVy" not in text and "bmV3LXB3" not in text and "YWRkZWQ=" not in text


def test_a_secrets_whole_data_added_still_lists_its_keys() -> None:
    bare = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    found = diff(bare, {**bare, "stringData": {"k": "v"}, "data": {"pw": {"nested": "x"}}})
    assert found.changes == (
        FieldChange("data.pw", "add", "", f'"{REDACTED}"'),
        FieldChange("stringData.k", "add", "", f'"{REDACTED}"'),
    )


def test_bounds() -> None:
    many_live = {"kind": "X", "data": {f"k{i:04}": "a" for i in range(MAX_CHANGES + 7)}}
    many_new = {"kind": "X", "data": {f"k{i:04}": "b" for i in range(MAX_CHANGES + 7)}}
    found = diff(many_live, many_new)
    assert len(found.changes) == MAX_CHANGES and found.more == 7
    assert found.note == " (7 more changes not listed)"
    long = diff({"kind": "X", "k" * 2000: "x" * 5000}, {"kind": "X"})
    (change,) = long.changes
    assert len(change.path) == MAX_PATH and len(change.old) == MAX_VALUE
    assert change.old.endswith("characters cut)")
    deep_old: dict[str, Any] = {"v": 1}
    deep_new: dict[str, Any] = {"v": 2}
    for _ in range(MAX_DEPTH * 3):
        deep_old, deep_new = {"n": deep_old}, {"n": deep_new}
    (deep,) = diff({"kind": "X", "d": deep_old}, {"kind": "X", "d": deep_new}).changes
    assert deep.path.count(".") == MAX_DEPTH - 1


def test_compact() -> None:
    assert compact({"b": 1, "a": [True, None]}) == '{"a":[true,null],"b":1}'
    assert compact("line\nbreak") == '"line\\nbreak"'
