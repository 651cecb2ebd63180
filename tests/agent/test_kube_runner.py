"""The agent's runner keeps Secrets' values out of its reports and its logs: what the API server
echoes of a value is scrubbed (:class:`ScrubbedReporter`), and so is an unexpected error that
quotes one. Redaction itself: tests/security/test_redact.py."""

from __future__ import annotations

import logging
from typing import Any, cast

import pytest
import yaml

from tests.bed.secrets import DATA, SECRET, STRING, b64, leaks
from tests.bed.sink import RecordingSink
from transporter.agent.kube_runner import KubeRunner, ScrubbedReporter
from transporter.agent.worker import Reporter
from transporter.kube import KubeTarget, Plan, PlannedObject, Seen
from transporter.protocol.model import (
    Event,
    EventState,
    FieldChange,
    K8sPayload,
    Phase,
    ResourceResult,
    ResourceStatus,
)
from transporter.security.scrub import REDACTED, Scrubber


def test_scrubbed_reporter() -> None:
    sink = RecordingSink()
    report = ScrubbedReporter(Reporter("e1", sink))
    report.scrub = Scrubber([STRING])
    result = ResourceResult("v1", "Secret", "s", None, ResourceStatus.FAILED, f"got {STRING}")
    report(EventState.FAILED, Phase.FAILED, f"failed: {STRING}", (result,))
    (status,) = sink.reports
    assert status.message == f"failed: {REDACTED}"
    assert status.resources is not None
    assert status.resources[0].message == f"got {REDACTED}"


class Exploding:
    """A target whose validating phase fails with a bug that quotes a value."""

    def __init__(self, fail_after_plan: bool) -> None:
        self.fail_after_plan = fail_after_plan

    async def plan(self, manifests: Any) -> Plan:
        if not self.fail_after_plan:
            raise KeyError(STRING)
        body = yaml.safe_load(SECRET)
        return Plan((PlannedObject("v1", "Secret", "creds", "team-a", True, body),))

    async def dry_run(self, obj: PlannedObject, *, headers: Any = None) -> Seen:
        return Seen(obj.body)

    async def apply(self, plan: Plan, *, headers: Any = None, expect: Any = None) -> Any:
        raise RuntimeError(f"cannot apply {b64(DATA)}")


@pytest.mark.parametrize("fail_after_plan", [False, True])
async def test_unexpected_errors_are_scrubbed_in_reports_and_logs(
    fail_after_plan: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = RecordingSink()
    runner = KubeRunner(cast(KubeTarget, Exploding(fail_after_plan)))
    event = Event(id="e1", target_agent="a", payload=K8sPayload((SECRET,)), ttl=60, created_at=0)
    await runner(event, Reporter("e1", sink))
    final = sink.reports[-1]
    assert final.state is EventState.FAILED
    assert final.message.startswith("agent error: ")
    assert REDACTED in final.message
    assert leaks(repr(sink.reports) + caplog.text, DATA, b64(DATA), STRING) == []
    assert "Traceback" in caplog.text


def test_scrubbed_reporter_scrubs_a_plans_field_changes() -> None:
    sink = RecordingSink()
    report = ScrubbedReporter(Reporter("e1", sink))
    report.scrub = Scrubber([STRING])
    change = FieldChange(f"data.{STRING}", "change", f'"{STRING}"', f'"x{STRING}"')
    result = ResourceResult(
        "v1", "ConfigMap", "c", None, ResourceStatus.WOULD_CHANGE, diff=(change,)
    )
    report(EventState.COMPLETED, Phase.COMPLETED, "plan", (result,))
    (status,) = sink.reports
    assert status.resources is not None
    assert leaks(repr(status), STRING) == []
    assert status.resources[0].diff[0].op == "change"
