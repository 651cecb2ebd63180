"""How the control plane packs deliveries into messages: in order, in bounded batches, and a
large event in a message of its own."""

from __future__ import annotations

from transporter.cp.delivery import BATCH_BYTES, BATCH_EVENTS, batches


def test_deliveries_go_in_bounded_batches_in_order() -> None:
    assert batches([]) == []
    made = batches([100] * (BATCH_EVENTS * 2 + 1))
    assert [i for batch in made for i in batch] == list(range(BATCH_EVENTS * 2 + 1))
    assert [len(batch) for batch in made] == [BATCH_EVENTS, BATCH_EVENTS, 1]
    half = BATCH_BYTES // 2
    assert batches([half, half, 1, BATCH_BYTES * 4, 1]) == [[0, 1], [2], [3], [4]]
