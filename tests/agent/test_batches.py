"""How the agent packs its acknowledgements and reports into messages (protocol 2): in order,
in bounded batches, and a large one in a message of its own."""

from __future__ import annotations

from transporter.agent.conversation import (
    BATCH_RECEIVED,
    BATCH_RESOURCES,
    BATCH_STATUSES,
    batched,
)
from transporter.protocol.messages import Receipt, ReportBatch, Status
from transporter.protocol.model import (
    EventState,
    Phase,
    ResourceResult,
    ResourceStatus,
)


def status(n: int, resources: int = 0, message: str = "") -> Status:
    result = ResourceResult("v1", "ConfigMap", f"c{n}", "default", ResourceStatus.CREATED)
    return Status(
        f"ev-{n}", 1, 1.0, EventState.COMPLETED, Phase.COMPLETED, message, (result,) * resources
    )


def receipt(n: int) -> Receipt:
    return Receipt(f"ev-{n}", 1000.0 + n)


def flattened(messages: list[Status | ReportBatch]) -> tuple[list[Receipt], list[Status]]:
    received: list[Receipt] = []
    statuses: list[Status] = []
    for message in messages:
        if isinstance(message, Status):
            statuses.append(message)
        else:
            assert not statuses or not message.received, "a received after a report"
            received.extend(message.received)
            statuses.extend(message.statuses)
    return received, statuses


def test_nothing_and_one_of_a_kind_go_as_they_are() -> None:
    assert batched([], []) == []
    assert batched([receipt(1)], []) == [ReportBatch((receipt(1),))]  # with when it came
    assert batched([], [status(1)]) == [status(1)]
    assert batched([receipt(1)], [status(1)]) == [ReportBatch((receipt(1),), (status(1),))]


def test_many_go_in_bounded_batches_in_order() -> None:
    received = [receipt(n) for n in range(BATCH_RECEIVED * 2 + 5)]
    statuses = [status(n) for n in range(BATCH_STATUSES * 3 + 2)]
    messages = batched(received, statuses)
    assert flattened(messages) == (received, statuses)
    assert all(isinstance(m, ReportBatch) for m in messages)
    batches = [m for m in messages if isinstance(m, ReportBatch)]
    assert max(len(b.received) for b in batches) == BATCH_RECEIVED
    assert max(len(b.statuses) for b in batches) == BATCH_STATUSES
    assert len(messages) == 2 + 4  # two of received alone, then the rest with the reports


def test_a_large_report_goes_alone_between_the_others() -> None:
    large = status(2, resources=BATCH_RESOURCES + 1)
    long = status(4, message="x" * 5000)
    statuses = [status(1), large, status(3), long, status(5), status(6)]
    messages = batched([receipt(1)], statuses)
    assert flattened(messages) == ([receipt(1)], statuses)
    assert messages == [
        ReportBatch((receipt(1),), (status(1),)),
        large,
        status(3),
        long,
        ReportBatch((), (status(5), status(6))),
    ]
