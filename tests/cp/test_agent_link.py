"""A connection's acknowledger (:class:`transporter.cp.agent_link.Acknowledger`), on a real SQLite
store: the reports one write stored are acknowledged in one ``acks`` message on a protocol-2
connection, and one ``status_ack`` each on a protocol-1 connection (agents not upgraded yet)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from tests.bed import pki as test_pki
from tests.bed import records as r
from transporter.config.store_spec import StoreSpec
from transporter.cp.agent_link import Acknowledger, AgentLink, Parts
from transporter.cp.channel import ChannelSettings
from transporter.cp.delivery import Delivery
from transporter.cp.group_commit import Pending
from transporter.cp.intake import Intake
from transporter.cp.live import Connection, LiveAgents
from transporter.cp.progress import Progress
from transporter.cp.sessions import Sessions
from transporter.cp.watch import EventWatch
from transporter.protocol import codec
from transporter.protocol.identity import PeerCertificate
from transporter.protocol.messages import AckBatch, Message, Register, StatusAck
from transporter.protocol.model import AgentInfo, AuditEntry, EventState
from transporter.store import open_store


class NoGuard:
    async def audit_safely(self, entry: AuditEntry) -> None:
        raise AssertionError(f"nothing to audit here: {entry}")

    def is_revoked(self, certificate: PeerCertificate) -> bool:
        return False


@pytest.mark.parametrize("protocol", [1, 2])
async def test_reports_stored_together_are_acknowledged_together(
    tmp_path: Path, protocol: int
) -> None:
    sent: list[Message] = []

    async def sender(text: str) -> None:
        sent.append(codec.decode(text))

    async with open_store(StoreSpec.sqlite_in(tmp_path)) as store:
        events = [r.event(f"ev-{n}") for n in range(3)]
        await store.submit_many([(e, r.accepted_audit(e)) for e in events])
        live = LiveAgents()
        progress = Progress(store, live, EventWatch())
        parts = Parts(
            store=store,
            live=live,
            intake=Intake(store, test_pki.shared().signer, live),
            progress=progress,
            delivery=Delivery(store, progress),
            sessions=Sessions(store, live),
        )
        link = AgentLink(parts, ChannelSettings().link, None, NoGuard())
        link.conversation.register(Register(AgentInfo("agent-a"), protocol))
        connection = Connection(
            info=AgentInfo("agent-a"),
            connected_since=time.time(),
            sender=sender,
            cancel_scope=trio.CancelScope(),
            last_heard=time.time(),
            protocol=protocol,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(progress.run)
            send, receive = trio.open_memory_channel[tuple[Pending, StatusAck | None]](16)
            for n, event in enumerate(events):  # read before the acknowledger looks
                pending = await progress.enqueue(
                    event.id, "agent-a", r.update(EventState.ASSIGNED, r.T0 + 1)
                )
                await send.send((pending, StatusAck(event.id, n + 1)))
            await send.aclose()
            await Acknowledger(progress, link.conversation, connection).run(receive)
            nursery.cancel_scope.cancel()
        for event in events:  # acknowledged once stored
            record = await store.get_event(event.id)
            assert record is not None and record.state is EventState.ASSIGNED
    acks = tuple(StatusAck(e.id, n + 1) for n, e in enumerate(events))
    if protocol == 1:
        assert sent == list(acks)
    else:
        assert sent == [AckBatch(acks)]
