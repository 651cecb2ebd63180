"""Redaction of Secrets' values: manifests as shown, and messages scrubbed of known values.

The messages below are the real API server's (kube-apiserver of the test bed) for Secrets it
refused; the end-to-end check is tests/e2e/test_secrets.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.bed.secrets import DATA, SECRET, STRING, b64, leaks
from transporter.kube import ManifestError
from transporter.kube.manifests import parse_manifests
from transporter.protocol.model import (
    Event,
    EventRecord,
    EventState,
    K8sPayload,
    Phase,
    ResourceResult,
    ResourceStatus,
    TimelineEntry,
)
from transporter.protocol.submission import InvalidEvent, parse_submission
from transporter.security.redact import redact_manifest, redact_manifests, redact_record
from transporter.security.scrub import LAST_APPLIED, REDACTED, Scrubber, secret_values

CONFIGMAP = """# a comment that stays
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data:
  colour: blue
"""


def load(text: str) -> list[Any]:
    return list(yaml.safe_load_all(text))


def test_secret_data_and_string_data_are_replaced_keys_kept() -> None:
    shown, values = redact_manifest(SECRET)
    assert leaks(shown, DATA, b64(DATA), STRING) == []
    (doc,) = load(shown)
    assert doc["data"] == {"token": REDACTED}
    assert doc["stringData"] == {"password": REDACTED}
    assert doc["metadata"] == {"name": "creds", "namespace": "team-a"}
    assert doc["type"] == "Opaque"
    # The values, as submitted and as they may be echoed (decoded, encoded).
    assert {DATA, b64(DATA), STRING, b64(STRING)} <= values


def test_non_secret_kinds_are_untouched() -> None:
    for text in (
        CONFIGMAP,
        CONFIGMAP.replace("blue", "Secret"),  # the word alone changes nothing
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n",
        "apiVersion: example.com/v1\nkind: SecretStore\nmetadata: {name: s}\ndata: {k: v}\n",
    ):
        assert redact_manifest(text) == (text, set())


def test_multi_document_yaml() -> None:
    text = CONFIGMAP + "---\n" + SECRET + "---\n" + "apiVersion: v1\nkind: Namespace\n"
    shown, _ = redact_manifest(text)
    assert leaks(shown, DATA, b64(DATA), STRING) == []
    configmap, secret, namespace = load(shown)
    assert configmap == load(CONFIGMAP)[0]
    assert secret["stringData"] == {"password": REDACTED}
    assert namespace == {"apiVersion": "v1", "kind": "Namespace"}
    assert "# a comment" not in shown  # comments of a manifest with a Secret go (they may tell)


def test_secret_in_a_list_and_in_a_typed_list() -> None:
    listed = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [load(CONFIGMAP)[0], load(SECRET)[0]],
    }
    shown, values = redact_manifest(yaml.safe_dump(listed))
    items = load(shown)[0]["items"]
    assert items[0] == load(CONFIGMAP)[0]
    assert items[1]["data"] == {"token": REDACTED}
    assert STRING in values
    typed = f"""apiVersion: v1
kind: SecretList
items:
- metadata: {{name: one}}
  stringData: {{password: {STRING}}}
- metadata: {{name: two}}
  data: {{token: {b64(DATA)}}}
"""
    shown, values = redact_manifest(typed)
    assert leaks(shown, STRING, b64(DATA)) == []
    assert [item["metadata"]["name"] for item in load(shown)[0]["items"]] == ["one", "two"]
    assert {STRING, DATA} <= values


def test_odd_shapes_under_data_are_replaced_whole() -> None:
    text = f"""apiVersion: v1
kind: Secret
metadata: {{name: odd}}
data: [{DATA}]
stringData:
  nested: {{deeper-key-42: {STRING}}}
  number: 424242
  empty: null
"""
    shown, values = redact_manifest(text)
    doc = load(shown)[0]
    assert doc["data"] == REDACTED
    assert doc["stringData"] == {"nested": REDACTED, "number": REDACTED, "empty": REDACTED}
    assert {DATA, STRING, "424242", "deeper-key-42"} <= values
    assert "nested" not in values  # keys right under data and stringData are shown


def test_last_applied_configuration_of_a_secret_is_redacted() -> None:
    secret = load(SECRET)[0]
    copy = {**secret, "metadata": {**secret["metadata"], "annotations": {}}}
    annotation = yaml.safe_dump(copy)
    secret["metadata"]["annotations"] = {LAST_APPLIED: annotation, "team": "a"}
    shown, values = redact_manifest(yaml.safe_dump(secret))
    assert leaks(shown, DATA, b64(DATA), STRING) == []
    annotations = load(shown)[0]["metadata"]["annotations"]
    assert annotations == {LAST_APPLIED: REDACTED, "team": "a"}
    assert annotation in values


@pytest.mark.parametrize(
    ("text", "known"),
    [
        # Two kinds: which is it? Taken for a Secret.
        (f"kind: Secret\nkind: ConfigMap\ndata: {{k: {STRING}}}\n", True),
        # A value its tag cannot read: the values are still known from the YAML's nodes.
        (f"kind: Secret\nstringData: {{k: !!int {STRING}}}\n", True),
        (f"kind: Secret\ndata: {{k: !custom {STRING}}}\n", True),
        # Not YAML at all.
        (f'kind: Secret\ndata: {{k: "{STRING}\n', False),
        (f'kind: "Secr\\x65t"\ndata: {{k: "{STRING}" }}\nbad: [\n', False),
    ],
)
def test_unreadable_manifests_that_may_hold_a_secret_are_replaced_whole(
    text: str, known: bool
) -> None:
    shown, values = redact_manifest(text)
    assert shown == REDACTED
    assert (STRING in values) is known


def test_escaped_kind_is_still_a_secret() -> None:
    shown, values = redact_manifest(f'kind: "Secr\\x65t"\nstringData: {{k: {STRING}}}\n')
    assert STRING not in shown
    assert STRING in values


def test_unreadable_manifest_without_a_secret_is_shown_as_it_is() -> None:
    assert redact_manifest("kind: [unclosed") == ("kind: [unclosed", set())


def test_aliases_are_followed_once() -> None:
    text = f"""apiVersion: v1
kind: SecretList
items:
- metadata: {{name: a}}
  stringData: &shared
    password: {STRING}
- metadata: {{name: b}}
  stringData: *shared
"""
    shown, values = redact_manifest(text)
    assert STRING not in shown
    assert STRING in values
    assert [item["stringData"] for item in load(shown)[0]["items"]] == [
        {"password": REDACTED},
        {"password": REDACTED},
    ]


def test_redact_manifests_scrubber_covers_all_manifests() -> None:
    other = SECRET.replace(STRING, "another-s3cr3t")
    shown, scrub = redact_manifests([CONFIGMAP, SECRET, other])
    assert shown[0] == CONFIGMAP
    assert scrub(f"saw {STRING} and another-s3cr3t") == f"saw {REDACTED} and {REDACTED}"


# --- messages -------------------------------------------------------------------------------

# What kube-apiserver answered (server-side apply) for Secrets with values of the wrong shape.
ECHOES = [
    (
        "failed to create typed patch object (default/p2; /v1, Kind=Secret): "
        ".stringData.pw: expected string, got &value.valueUnstructured{Value:424242}",
        "424242",
    ),
    (
        "failed to create typed patch object (default/p4; /v1, Kind=Secret): .stringData.pw: "
        'expected string, got &value.valueUnstructured{Value:map[string]interface {}{"x":"'
        + STRING
        + '"}}',
        STRING,
    ),
    (
        "failed to create typed patch object (default/p5; /v1, Kind=Secret): "
        f".data: expected map, got &{{[{DATA}]}}",
        DATA,
    ),
]


@pytest.mark.parametrize(("message", "value"), ECHOES)
def test_scrubber_removes_echoed_values(message: str, value: str) -> None:
    scrubbed = Scrubber([value])(message)
    assert value not in scrubbed
    assert scrubbed.endswith(f"got {REDACTED}")
    assert "Kind=Secret" in scrubbed
    # Even without knowing the value (an agent of an older version reported it).
    assert value not in Scrubber()(message)


def test_scrubber_keeps_the_rest_of_the_message() -> None:
    scrub = Scrubber([STRING, "abc", "7"])
    assert scrub(f"one {STRING}, two {STRING}x") == f"one {REDACTED}, two {REDACTED}x"
    # Short values only where they stand alone: a secret "7" does not eat every digit.
    assert scrub("abc at byte 7 of abcd, 17") == f"{REDACTED} at byte {REDACTED} of abcd, 17"
    # Not a Secret's message: server-side apply's echo of a ConfigMap value stays.
    configmap = (
        "failed to create typed patch object (default/c; /v1, Kind=ConfigMap): "
        ".data.k: expected string, got &value.valueUnstructured{Value:5}"
    )
    assert Scrubber()(configmap) == configmap
    assert not Scrubber()
    assert Scrubber([""]).values == frozenset()


def test_scrubber_longest_value_first() -> None:
    scrub = Scrubber(["s3cr3t", "s3cr3t-longer"])
    assert scrub("x s3cr3t-longer y") == f"x {REDACTED} y"


def test_secret_values_of_parsed_objects() -> None:
    assert secret_values(load(CONFIGMAP)[0]) == set()
    values = secret_values(load(SECRET)[0])
    assert {DATA, STRING, b64(DATA), b64(STRING)} <= values
    assert secret_values({"kind": "Secret", "stringData": {"flag": True}}) >= {"true", "True"}


def event_record(*manifests: str, message: str = "") -> EventRecord:
    event = Event(id="e1", target_agent="a", payload=K8sPayload(manifests), ttl=60, created_at=0)
    return EventRecord(
        event=event,
        seq=1,
        state=EventState.FAILED,
        message=message,
        resources=(
            ResourceResult("v1", "Secret", "creds", "team-a", ResourceStatus.FAILED, message),
        ),
        timeline=(TimelineEntry(1.0, EventState.FAILED, Phase.FAILED, message),),
    )


def test_redact_record() -> None:
    record = event_record(CONFIGMAP, SECRET, message=f"1 of 1 failed: {STRING}")
    shown = redact_record(record)
    text = repr(shown)
    assert leaks(text, DATA, b64(DATA), STRING) == []
    assert shown.event.payload.manifests[0] == CONFIGMAP
    assert shown.message == f"1 of 1 failed: {REDACTED}"
    assert shown.resources[0].message == shown.timeline[0].message == shown.message
    assert shown.event.id == record.event.id
    assert redact_record(shown) == shown  # redacting again changes nothing
    plain = event_record(CONFIGMAP, message="done")
    assert redact_record(plain) is plain


# --- messages about manifests that cannot be read ----------------------------------------

HEAD = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n"


@pytest.mark.parametrize(
    "text",
    [
        HEAD + f'  pw: "{STRING}\n',  # unclosed quote
        HEAD + f'  pw: "{STRING}\\q"\n',  # unknown escape
        HEAD + f"  pw: {STRING}\n   x: 1\n",  # bad indentation
        HEAD + f"  pw: {STRING}\n  pw: {STRING}-2\n",  # duplicate key
        HEAD + f"  pw: !custom {STRING}\n",  # unknown tag
        HEAD + f"\tpw: {STRING}\n",  # tab
        HEAD + f"  pw: {STRING}: x\n",
        HEAD + f"  pw: @{STRING}\n",
        *(HEAD + f"  pw: {tag} {STRING}\n" for tag in ("!!int", "!!float", "!!bool")),
        *(HEAD + f"  pw: {tag} {STRING}\n" for tag in ("!!timestamp", "!!binary", "!!set")),
        *(HEAD + f"  pw: {tag} {STRING}\n" for tag in ("!!map", "!!omap", "!!seq")),
    ],
)
def test_manifest_errors_never_quote_a_value(text: str) -> None:
    """What the agent (validating) and the control plane (accepting) say of YAML they refuse."""
    with pytest.raises(ManifestError) as agent:
        parse_manifests([text])
    try:
        parse_submission({"target_agent": "a", "payload": {"manifests": [text]}}, now=0, new_id=str)
    except InvalidEvent as exc:
        refused = str(exc)
    else:
        refused = ""  # well-formed YAML: the control plane leaves the meaning to the agent
    for message in (str(agent.value), refused):
        assert STRING not in message
        assert STRING.lower() not in message  # !!bool's own error quotes it lower-cased
        assert b64(STRING) not in message


def test_scrubber_with_many_values() -> None:
    values = [f"value-{n:06d}" for n in range(50_000)]
    scrub = Scrubber(values)
    message = f"got {values[123]} and {values[-1]}, not value-x"
    assert scrub(message) == f"got {REDACTED} and {REDACTED}, not value-x"


def test_a_manifest_is_shown_without_expanding_its_aliases() -> None:
    """A Secret whose 100 kB annotation is aliased 60 times (6 MB built): shown with its
    aliases kept, about as large as it was sent, never as built."""
    big = "v" * 100_000
    uses = ", ".join(["*big"] * 60)
    text = (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  annotations: {{a: &big {big}}}\n"
        f"  labels: {{}}\nstringData: {{pw: {STRING}}}\nextra: [{uses}]\n"
    )
    shown, values = redact_manifest(text)
    assert STRING not in shown and STRING in values
    assert len(shown) < 2 * len(text)
    assert load(shown)[0]["extra"] == [big] * 60


def test_a_manifest_past_the_expansion_bound_is_not_shown() -> None:
    """Only a writer of the store could put one there (submission refuses it): it is
    replaced whole rather than built."""
    big = "v" * (1024 * 1024)
    uses = ", ".join(["*big"] * 20)
    text = f"kind: Secret\nmetadata: {{name: s, labels: {{a: &big {big}}}}}\nextra: [{uses}]\n"
    assert redact_manifest(text)[0] == REDACTED
