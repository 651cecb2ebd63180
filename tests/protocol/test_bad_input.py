"""Bad input refused by pure code: strict JSON of the wire, and the bounds of an event's YAML.

The control plane never composes nor constructs a manifest: it reads the parser's events and
keeps the bounds there (:func:`transporter.protocol.submission.parse_submission`). These tests
also hold it to the agent's loader (:mod:`transporter.protocol.yaml_reader`): what one refuses
for its shape, so does the other, so an accepted event never fails for its YAML's shape on the
agent.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from typing import Any

import pytest
import yaml

from transporter.protocol import codec
from transporter.protocol.messages import Deliver
from transporter.protocol.submission import (
    MAX_EVENT_BYTES,
    MAX_MANIFEST_BYTES,
    EventTooLarge,
    InvalidEvent,
    parse_submission,
)
from transporter.protocol.yaml_reader import MAX_ALIAS_NODES as MAX_YAML_ALIAS_NODES
from transporter.protocol.yaml_reader import MAX_DEPTH as MAX_YAML_DEPTH
from transporter.protocol.yaml_reader import MAX_EXPANDED_BYTES, Budget, load_documents


def submit(*manifests: str, **fields: Any) -> Any:
    body = {"target_agent": "agent-1", "payload": {"manifests": list(manifests)}, **fields}
    return parse_submission(body, now=0.0, new_id=lambda: "x")


def refusal(*manifests: str, **fields: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        submit(*manifests, **fields)
    return caught.value


def flow(depth: int) -> str:
    """A scalar at ``depth`` (inside ``depth - 1`` flow sequences)."""
    return "[" * (depth - 1) + "x" + "]" * (depth - 1)


def block(depth: int) -> str:
    """A scalar at ``depth`` (inside ``depth - 1`` block mappings)."""
    return (
        "".join("  " * level + "a:\n" for level in range(depth - 2)) + "  " * (depth - 2) + "a: x\n"
    )


def laughs(levels: int, width: int = 10) -> str:
    """The "billion laughs": ``width ** levels`` scalars once expanded."""
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


# --- the wire: strict JSON ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"type": "heartbeat", "at": NaN}', "NaN"),
        ('{"type": "heartbeat", "at": Infinity}', "Infinity"),
        ('{"type": "heartbeat", "at": -Infinity}', "Infinity"),
        ('{"type": "heartbeat", "at": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
        ('{"type": "received", "event_id": "\\ud800"}', "surrogate"),
        ('{"type": "received", "event_id": "\\udc00\\ud800"}', "surrogate"),
        (b'{"type": "received", "event_id": "\xff"}', "utf-8"),
        (b'{"type": "received", "event_id": "\xed\xa0\x80"}', "utf-8"),  # an encoded surrogate
        ('{"type": "heartbeat", "at": 1}'.encode("utf-16"), "utf-8"),  # JSON is UTF-8 only
    ],
)
def test_what_python_would_read_but_json_is_not_is_malformed(text: str | bytes, words: str) -> None:
    with pytest.raises(codec.ProtocolError) as caught:
        codec.decode(text)
    assert caught.value.code == "malformed"
    assert words in caught.value.message


def test_a_surrogate_pair_is_one_character_and_fine() -> None:
    message = codec.decode('{"type": "received", "event_id": "\\ud83d\\ude00"}')
    assert message == codec.decode(json.dumps({"type": "received", "event_id": "😀"}))


# --- identifiers and text ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"target_agent": "agent-1\n"}, "target_agent"),
        ({"id": "e-1\n"}, "id"),
        ({"labels": {"team": "a\ud800"}}, "labels.team"),
        ({"labels": {"\udfff": "a"}}, "labels"),
        ({"created_by": "ci\ud800"}, "created_by"),
    ],
)
def test_ids_are_whole_matches_and_text_is_valid_unicode(
    fields: dict[str, Any], field: str
) -> None:
    assert refusal("a: 1", **fields).field == field


def test_a_manifest_with_a_lone_surrogate_is_refused_not_a_crash() -> None:
    problem = refusal("a: \ud800")
    assert problem.field == "payload.manifests[0]"
    assert "surrogate" in problem.problem


# --- sizes ------------------------------------------------------------------------------------


def test_manifest_bytes_over_the_limit_are_too_large() -> None:
    half = "a: " + "x" * (MAX_MANIFEST_BYTES // 2) + "\n"
    with pytest.raises(EventTooLarge) as caught:
        submit(half, half)
    assert caught.value.field == "payload.manifests"
    assert str(MAX_MANIFEST_BYTES) in caught.value.problem


def test_an_event_that_json_escaping_makes_too_large_is_refused() -> None:
    """Under the manifest bytes, but newlines take two bytes each on the wire: it could never be
    delivered (the agent's channel refuses messages over MAX_EVENT_BYTES), so 413 now."""
    text = "a: 1\n" + "\n" * (MAX_MANIFEST_BYTES - 100)
    with pytest.raises(EventTooLarge) as caught:
        submit(text)
    assert f"more than {MAX_EVENT_BYTES}" in caught.value.problem


def test_the_largest_accepted_event_fits_one_message() -> None:
    line = "x" * 1000
    text = "".join(f"k{i:05}: {line}\n" for i in range(MAX_MANIFEST_BYTES // 1009))
    event = submit(text)
    assert len(text.encode()) <= MAX_MANIFEST_BYTES
    assert len(codec.encode(Deliver(event))) <= MAX_EVENT_BYTES <= codec.MAX_MESSAGE_BYTES


# --- YAML bounds ------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [flow, block])
def test_nesting_is_bounded(shape: Any) -> None:
    submit(shape(MAX_YAML_DEPTH))
    problem = refusal(shape(MAX_YAML_DEPTH + 1))
    assert problem.field == "payload.manifests[0]"
    assert f"nested deeper than {MAX_YAML_DEPTH} levels" in problem.problem
    assert "line" in problem.problem  # where, without quoting the manifest


@pytest.mark.parametrize("depth", [1000, 10_000, 1_000_000])
def test_deeply_nested_documents_are_refused_at_once(depth: int) -> None:
    started = time.perf_counter()
    problem = refusal("[" * depth + "]" * depth)
    assert problem.field == "payload.manifests[0]"
    # Our bound stops reading at level MAX_YAML_DEPTH + 1, unless libyaml's scanner, which
    # reads ahead, has already met its own bound (1000 levels).
    assert (
        f"nested deeper than {MAX_YAML_DEPTH} levels" in problem.problem
        or "exceeded maximum nesting depth" in problem.problem
    )
    assert time.perf_counter() - started < 1.0


def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        problem = refusal(laughs(9))  # 10**9 nodes expanded
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"aliases expand to more than {MAX_YAML_ALIAS_NODES} nodes" in problem.problem
    assert elapsed < 1.0
    assert peak < 1024 * 1024


def test_aliases_in_moderation_are_fine() -> None:
    manifest = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: &labels {app: web, tier: front}
spec:
  selector:
    matchLabels: *labels
  template:
    metadata:
      labels: *labels
    spec:
      containers:
      - &main {name: main, image: "registry.invalid/app:1", env: [{name: A, value: "1"}]}
      - <<: *main
        name: sidecar
"""
    submit(manifest)


def test_the_alias_budget_is_one_for_the_whole_event() -> None:
    # Each manifest alone stays under the budget; together they do not.
    width = 1000
    one = "a: &a [" + ", ".join(["x"] * width) + "]\nb: [" + ", ".join(["*a"] * 60) + "]\n"
    submit(one)
    problem = refusal(one, one)
    assert problem.field == "payload.manifests[1]"
    assert "aliases expand" in problem.problem


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: &a [1, *a]\n", "*a refers to a node that contains it"),
        ("a: *nowhere\n", "*nowhere is not defined"),
        ("a: &x 1\nb: &x 2\n", "duplicate anchor &x"),
        ("a: &x 1\n---\nb: *x\n", "*x is not defined"),  # anchors belong to one document
        ("a: &deep " + flow(60) + "\nb: " + "[" * 45 + "*deep" + "]" * 45 + "\n", "nested deeper"),
    ],
)
def test_anchors_and_aliases_that_cannot_be_built_are_refused(text: str, words: str) -> None:
    assert words in refusal(text).problem


AGREEMENT = [
    flow(MAX_YAML_DEPTH),
    flow(MAX_YAML_DEPTH + 1),
    block(MAX_YAML_DEPTH),
    block(MAX_YAML_DEPTH + 1),
    laughs(4),
    laughs(5),
    laughs(6),
    "a: &a [1, *a]\n",
    "a: &deep " + flow(60) + "\nb: " + "[" * 38 + "*deep" + "]" * 38 + "\n",
    "a: &deep " + flow(60) + "\nb: " + "[" * 39 + "*deep" + "]" * 39 + "\n",
    "a: &deep " + flow(60) + "\nb: " + "[" * 40 + "*deep" + "]" * 40 + "\n",
    "base: &b {x: 1}\nmore:\n  <<: *b\n  y: 2\n",
    "a: &big " + "x" * 1024 * 1024 + "\nb: [" + ", ".join(["*big"] * 6) + "]\n",
    "a: &big " + "x" * 1024 * 1024 + "\nb: [" + ", ".join(["*big"] * 8) + "]\n",
    "a: &big " + "x" * (1024 * 1024 - 4) + "\nb: [" + ", ".join(["*big"] * 7) + "]\n",
]


@pytest.mark.parametrize("text", AGREEMENT)
def test_the_control_plane_and_the_agent_agree_on_the_bounds(text: str) -> None:
    try:
        submit(text)
        control_plane = True
    except InvalidEvent:
        control_plane = False
    try:
        list(load_documents(text, Budget()))
        agent = True
    except yaml.YAMLError:
        agent = False
    assert control_plane == agent


def test_reading_a_large_manifest_does_not_build_it() -> None:
    """Composing this 360 KiB manifest (what the control plane did before) holds about 30 MiB
    of nodes at once; reading its events holds under 1 MiB, whatever the size."""
    text = "items:\n" + "".join(f"- {{a: {i}, b: x}}\n" for i in range(20_000))
    tracemalloc.start()
    try:
        submit(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def big_aliased(size: int, uses: int) -> str:
    """One string of ``size`` characters, anchored once and aliased ``uses`` times."""
    aliases = ", ".join(["*big"] * uses)
    return f"a: &big {'x' * size}\nb: [{aliases}]\n"


def test_what_aliases_expand_to_is_bounded_in_bytes_at_submission() -> None:
    """A 1 MB string aliased 2,000 times is a 1 MB manifest that would build 2 GB: refused
    at once, naming the manifest, without building it."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        problem = refusal(big_aliased(1024 * 1024, 2000))
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problem.field == "payload.manifests[0]"
    assert f"expands to more than {MAX_EXPANDED_BYTES} bytes" in problem.problem
    assert elapsed < 2.0 and peak < 16 * 1024 * 1024
    submit(big_aliased(1024 * 1024, 6))  # 7 MB once expanded: within the bound


def test_the_expansion_budget_is_one_for_the_whole_event() -> None:
    half = big_aliased(1024 * 1024, 4)  # 5 MB each
    submit(half)
    assert refusal(half, half).field == "payload.manifests[1]"
