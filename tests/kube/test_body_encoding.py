"""A request's body is encoded to JSON on trio's thread only when it is small: a manifest may
be megabytes, and encoding those would hold up every other task of the agent."""

from __future__ import annotations

import json

from transporter.kube.transport import SMALL_BODY, _encoded, _small


def test_a_typical_manifest_is_small() -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "namespace": "default", "labels": {"a": "b"}},
        "data": {"k": "v" * 1000, "list": [1, 2.5, None, True]},
    }
    assert _small(manifest)


def test_a_large_string_or_many_items_are_not() -> None:
    assert not _small({"data": {"k": "x" * SMALL_BODY}})
    assert not _small({"data": {str(n): "" for n in range(SMALL_BODY)}})
    assert not _small({"items": [[0]] * SMALL_BODY})
    assert not _small({"deep": [[[[["x" * (SMALL_BODY // 2)]]]], "y" * (SMALL_BODY // 2)]})


async def test_either_way_the_body_is_its_json() -> None:
    for body in ({"k": "v"}, {"k": "x" * (2 * SMALL_BODY)}):
        assert await _encoded(body) == json.dumps(body).encode()
    assert await _encoded(None) is None
