"""What the Sentinels' answers after a write's WAIT mean: a majority answering, one primary
named, no failover flagged."""

from __future__ import annotations

from typing import Any

import pytest

from transporter.store.redis.named_primary import Named, verdict


def master(port: int, flags: str = "master") -> dict[str, Any]:
    return {"ip": "127.0.0.1", "port": port, "flags": flags}


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([master(1), master(1), master(1)], Named("127.0.0.1:1")),
        ([master(1), master(1)], Named("127.0.0.1:1")),  # one Sentinel down
        ([master(1)], Named(None, "1 of 3 Sentinels answered (2 needed)")),
        (
            [master(1), master(2), master(1)],
            Named(None, "the Sentinels name different primaries (127.0.0.1:1, 127.0.0.1:2)"),
        ),
        (
            [master(1, "master,failover_in_progress,force_failover"), master(1), master(1)],
            Named(
                None,
                "a Sentinel is failing 127.0.0.1:1 over"
                " (master,failover_in_progress,force_failover)",
            ),
        ),
        (
            [master(1, "master,s_down,o_down"), master(1), master(1)],
            Named(None, "a Sentinel is failing 127.0.0.1:1 over (master,s_down,o_down)"),
        ),
        ([master(1, "master,s_down"), master(1), master(1)], Named("127.0.0.1:1")),
    ],
)
def test_the_verdict_of_the_sentinels_answers(
    answers: list[dict[str, Any]], expected: Named
) -> None:
    assert verdict(answers, 3) == expected
