"""The model's types (:mod:`transporter.protocol.model`) as they show themselves."""

from __future__ import annotations

from transporter.protocol.model import Event, K8sPayload


def test_an_events_repr_never_shows_its_manifests() -> None:
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {pw: s3cr3t-REPR}\n"
    event = Event(id="e", target_agent="a", payload=K8sPayload((secret,)), ttl=1, created_at=0)
    assert "s3cr3t-REPR" not in repr(event)
    assert "s3cr3t-REPR" not in str(event)
