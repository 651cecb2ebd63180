"""The agent's side of its connection, driven directly: messages in, messages and events out,
no socket (:mod:`transporter.agent.conversation`)."""

from __future__ import annotations

import logging

import pytest

from transporter.agent.conversation import CLOCK_SKEW, Conversation, Rejected
from transporter.protocol import codec
from transporter.protocol.messages import (
    OLDEST_PROTOCOL,
    PROTOCOL_VERSION,
    REPLAYS,
    AckBatch,
    Deliver,
    DeliverBatch,
    Error,
    Heartbeat,
    Received,
    Register,
    ReportBatch,
    Status,
    StatusAck,
    Welcome,
)
from transporter.protocol.model import AgentInfo, Event, EventState, K8sPayload

NOW = 1_800_000_000.0
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"


def event(event_id: str = "ev-1", *, target_agent: str = "site-1", ttl: int = 3600) -> Event:
    payload = K8sPayload((CONFIGMAP,))
    return Event(id=event_id, target_agent=target_agent, payload=payload, ttl=ttl, created_at=NOW)


def welcomed(protocol: int = PROTOCOL_VERSION) -> Conversation:
    conversation = Conversation(AgentInfo("site-1"))
    assert isinstance(conversation.hello(), Register)
    conversation.welcome(Welcome("site-1", 5.0, protocol=protocol))
    return conversation


def status(event_id: str, seq: int, *, replay: bool = False) -> Status:
    return Status(event_id, seq, NOW, EventState.COMPLETED, replay=replay)


def test_the_agent_says_who_it_is_in_the_newest_protocol() -> None:
    hello = Conversation(AgentInfo("site-1")).hello()
    assert (hello.agent.id, hello.protocol) == ("site-1", PROTOCOL_VERSION)


@pytest.mark.parametrize(
    ("answer", "said"),
    [(Error("identity", "not yours"), "identity: not yours"), (Heartbeat(NOW), "got heartbeat")],
)
def test_anything_but_a_welcome_is_a_rejection(answer: Error | Heartbeat, said: str) -> None:
    with pytest.raises(Rejected, match=said):
        Conversation(AgentInfo("site-1")).welcome(answer)


def test_an_older_control_plane_gets_one_message_each_and_no_replay_word() -> None:
    conversation = welcomed(OLDEST_PROTOCOL)
    conversation.received("ev-1", NOW)
    conversation.report(status("ev-1", 1, replay=True))
    assert conversation.outgoing() == [Received("ev-1"), status("ev-1", 1)]
    assert conversation.outgoing() == []  # sent: nothing twice on one connection


def test_a_control_plane_that_reads_batches_gets_them_and_one_that_knows_replays_the_word() -> None:
    conversation = welcomed(REPLAYS)
    conversation.received("ev-1", NOW)
    conversation.report(status("ev-1", 1, replay=True))
    conversation.report(status("ev-2", 1))
    (batch,) = conversation.outgoing()
    assert isinstance(batch, ReportBatch)
    assert [r.event_id for r in batch.received] == ["ev-1"]
    assert [(s.event_id, s.replay) for s in batch.statuses] == [("ev-1", True), ("ev-2", False)]


def test_what_is_not_acknowledged_goes_again_on_the_next_connection_and_only_that() -> None:
    conversation = welcomed(OLDEST_PROTOCOL)
    for seq in (1, 2):
        conversation.report(status("ev-1", seq))
    conversation.report(status("ev-2", 1))
    assert len(conversation.outgoing()) == 3
    assert conversation.incoming(codec.encode(StatusAck("ev-1", 1))) == []
    assert conversation.incoming(codec.encode(AckBatch((StatusAck("ev-2", 1),)))) == []
    conversation.welcome(Welcome("site-1", 5.0, protocol=OLDEST_PROTOCOL))  # reconnected
    assert conversation.outgoing() == [status("ev-1", 2)]


def test_deliveries_come_out_as_events_in_order() -> None:
    conversation = welcomed()
    one, two, three = event("ev-1"), event("ev-2"), event("ev-3")
    assert conversation.incoming(codec.encode(Deliver(one))) == [one]
    assert conversation.incoming(codec.encode(DeliverBatch((two, three)))) == [two, three]


def test_a_message_that_cannot_be_read_or_is_not_for_the_agent_is_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conversation = welcomed()
    with caplog.at_level(logging.WARNING):
        assert conversation.incoming("{not json") == []
        assert conversation.incoming(codec.encode(Heartbeat(NOW))) == []
        assert conversation.incoming(codec.encode(Error("not_yours", "event x"))) == []
    assert "invalid message" in caplog.text
    assert "unexpected 'heartbeat'" in caplog.text
    assert "not_yours: event x" in caplog.text


def test_an_event_for_another_agent_is_refused() -> None:
    problem = welcomed().refusal(event(target_agent="site-2"), NOW)
    assert problem == "event for agent 'site-2', not this one: refused"


def test_a_signed_event_long_past_its_ttl_is_refused_beyond_a_clock_skew() -> None:
    """The control plane never sends an expired event; an agent refuses one that comes anyway
    (put back into the store by someone who can write there), beyond a clock skew."""
    conversation = welcomed()
    assert conversation.refusal(event(ttl=60), NOW) is None
    assert conversation.refusal(event(ttl=60), NOW + 60 + CLOCK_SKEW / 2) is None
    problem = conversation.refusal(event(ttl=3600), NOW + 3600 + 2 * CLOCK_SKEW)
    assert problem is not None and "TTL passed" in problem
