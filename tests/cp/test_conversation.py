"""The control plane's side of an agent connection, driven directly: messages and the clock in,
answers and reports out, no socket and no store (:mod:`transporter.cp.conversation`)."""

from __future__ import annotations

import pytest

from transporter.cp.conversation import AgentConversation, Refuse, Report
from transporter.cp.window import DeliveryWindow
from transporter.protocol import codec
from transporter.protocol.identity import PeerCertificate
from transporter.protocol.messages import (
    OLDEST_PROTOCOL,
    PROTOCOL_VERSION,
    AckBatch,
    Heartbeat,
    Receipt,
    Received,
    Register,
    ReportBatch,
    Status,
    StatusAck,
    Welcome,
)
from transporter.protocol.model import AgentInfo, EventState, Phase
from transporter.protocol.report_bounds import MAX_MESSAGE

NOW = 1_800_000_000.0
CERTIFICATE = PeerCertificate("agent-a", "01", "ab" * 32, NOW + 3600)


def registered(protocol: int = PROTOCOL_VERSION) -> AgentConversation:
    conversation = AgentConversation(CERTIFICATE, max_bytes=1 << 20)
    assert isinstance(conversation.register(Register(AgentInfo("agent-a"), protocol)), Register)
    return conversation


def test_the_first_message_must_be_a_registration_and_waiting_goes_on() -> None:
    conversation = AgentConversation(None, max_bytes=1 << 20)
    refusal = conversation.register(Heartbeat(NOW))
    assert refusal == Refuse("not_registered", "register before anything else")
    assert conversation.registered is None


def test_an_agent_may_register_only_as_its_certificate_says_and_that_is_audited() -> None:
    conversation = AgentConversation(CERTIFICATE, max_bytes=1 << 20)
    refusal = conversation.register(Register(AgentInfo("agent-b"), PROTOCOL_VERSION))
    assert isinstance(refusal, Refuse)
    assert (refusal.code, refusal.close, refusal.audit) == ("identity", True, True)
    assert "'agent-a'" in refusal.message and "'agent-b'" in refusal.message


def test_on_a_plain_channel_any_valid_id_registers() -> None:
    conversation = AgentConversation(None, max_bytes=1 << 20)
    assert isinstance(conversation.register(Register(AgentInfo("agent-z"))), Register)


@pytest.mark.parametrize(
    ("register", "code"),
    [
        (Register(AgentInfo("Not An Id")), "invalid"),
        (Register(AgentInfo("agent-a"), OLDEST_PROTOCOL - 1), "protocol"),
    ],
)
def test_a_registration_that_cannot_be_kept_closes_the_connection(
    register: Register, code: str
) -> None:
    conversation = AgentConversation(None, max_bytes=1 << 20)
    refusal = conversation.register(register)
    assert isinstance(refusal, Refuse)
    assert (refusal.code, refusal.close) == (code, True)


@pytest.mark.parametrize(
    ("agent", "named"),
    [
        (AgentInfo("agent-a", labels={"env": "prod\nFORGED"}), "label value"),
        (AgentInfo("agent-a", labels={"a..b/c": "x"}), "label key"),
        (AgentInfo("agent-a", labels={f"k{i}": "v" for i in range(65)}), "65 labels"),
        (AgentInfo("agent-a", cluster_name="eu\x1b[31m"), "cluster_name"),
        (AgentInfo("agent-a", version="1" * 254), "version is longer"),
        (AgentInfo("agent-a", region="eu\u202ewest"), "region"),
        (AgentInfo("agent-a", capabilities=("apply\n",)), "capability"),
        (AgentInfo("agent-a", capabilities=tuple(f"c{i}" for i in range(33))), "capabilities"),
    ],
)
def test_what_an_agent_says_of_itself_is_checked_before_anyone_sees_it(
    agent: AgentInfo, named: str
) -> None:
    """Producers list agents' labels and names, and selectors choose by their labels: a
    registration whose description is not what the agent's own flags allow is refused."""
    refusal = AgentConversation(None, max_bytes=1 << 20).register(Register(agent))
    assert isinstance(refusal, Refuse)
    assert (refusal.code, refusal.close) == ("invalid", True)
    assert named in refusal.message and "\n" not in refusal.message


def test_a_described_agent_registers() -> None:
    agent = AgentInfo(
        "agent-a",
        name="agent-a",
        cluster_name="Paris DC (rack 4)",
        version="0.1.0",
        labels={"env": "prod", "example.com/ring": "canary", "empty": ""},
        capabilities=("k8s_resource", "apply", "delete"),
    )
    conversation = AgentConversation(None, max_bytes=1 << 20)
    assert isinstance(conversation.register(Register(agent)), Register)


def test_the_protocol_is_the_lower_of_both() -> None:
    assert registered(OLDEST_PROTOCOL).protocol == OLDEST_PROTOCOL
    assert registered(PROTOCOL_VERSION + 5).protocol == PROTOCOL_VERSION


def test_a_message_too_big_or_not_a_message_is_refused_and_the_connection_goes_on() -> None:
    conversation = AgentConversation(None, max_bytes=64)
    too_big = conversation.decode(codec.encode(Status("x" * 100, 1, NOW, EventState.COMPLETED)))
    assert isinstance(too_big, Refuse) and not too_big.close
    garbage = conversation.decode("{not json")
    assert isinstance(garbage, Refuse) and not garbage.close


def test_a_heartbeat_asks_for_nothing() -> None:
    assert registered().take(Heartbeat(NOW), NOW, DeliveryWindow(4)) == []


def test_received_acknowledges_the_delivery_and_is_recorded_as_a_phase() -> None:
    window = DeliveryWindow(4)
    window.sending("ev-1", 10.0)
    (report,) = registered().take(Received("ev-1"), NOW, window)
    assert isinstance(report, Report)
    assert (report.event_id, report.sent_here, report.ack) == ("ev-1", True, None)
    assert (report.update.state, report.update.phase) == (EventState.IN_PROGRESS, Phase.RECEIVED)
    assert report.update.at == NOW
    assert not window.waiting_for_ack("ev-1") and "ev-1" in window


def test_a_report_acknowledges_the_delivery_too() -> None:
    window = DeliveryWindow(4)
    window.sending("ev-1", 10.0)
    (report,) = registered().take(Status("ev-1", 1, NOW, EventState.IN_PROGRESS), NOW, window)
    assert isinstance(report, Report) and report.sent_here
    assert not window.waiting_for_ack("ev-1") and "ev-1" in window


def test_a_report_on_an_event_not_sent_here_must_be_checked_against_the_store() -> None:
    (report,) = registered().take(
        Status("ev-9", 3, NOW, EventState.COMPLETED), NOW, DeliveryWindow(4)
    )
    assert isinstance(report, Report)
    assert report.sent_here is False
    assert report.ack == StatusAck("ev-9", 3)


def test_a_report_is_kept_within_bounds() -> None:
    """The agent's word: a time from the future is now, a huge message is cut."""
    status = Status("ev-1", 1, NOW + 10**9, EventState.FAILED, Phase.FAILED, "x" * 100_000)
    (report,) = registered().take(status, NOW, DeliveryWindow(4))
    assert isinstance(report, Report)
    assert report.update.at == NOW
    assert len(report.update.message) <= MAX_MESSAGE + 100


def test_a_batch_is_its_receipts_then_its_statuses_in_order() -> None:
    window = DeliveryWindow(4)
    for event_id in ("ev-1", "ev-2"):
        window.sending(event_id, 0.0)
    batch = ReportBatch(
        received=(Receipt("ev-1", NOW - 1), Receipt("ev-2", NOW + 10**9)),
        statuses=(Status("ev-1", 1, NOW, EventState.COMPLETED, Phase.COMPLETED, replay=True),),
    )
    reports = registered().take(batch, NOW, window)
    assert [(r.event_id, r.ack) for r in reports if isinstance(r, Report)] == [
        ("ev-1", None),
        ("ev-2", None),
        ("ev-1", StatusAck("ev-1", 1)),
    ]
    first, second, third = reports
    assert isinstance(first, Report) and first.update.at == NOW - 1
    assert isinstance(second, Report) and second.update.at == NOW  # not from the future
    assert isinstance(third, Report) and third.replay


def test_registering_twice_or_sending_the_control_planes_messages_is_refused() -> None:
    conversation = registered()
    (again,) = conversation.take(Register(AgentInfo("agent-a")), NOW, DeliveryWindow(4))
    assert again == Refuse("already_registered", "this connection is agent 'agent-a'")
    (odd,) = conversation.take(Welcome("agent-a", 5.0), NOW, DeliveryWindow(4))
    assert isinstance(odd, Refuse) and odd.code == "unexpected" and not odd.close


def test_acknowledgements_go_together_only_to_an_agent_that_reads_batches() -> None:
    acks = [StatusAck("ev-1", 1), StatusAck("ev-2", 1)]
    assert registered(OLDEST_PROTOCOL).acks(acks) == acks
    assert registered().acks(acks) == [AckBatch(tuple(acks))]
    assert registered().acks(acks[:1]) == acks[:1]
