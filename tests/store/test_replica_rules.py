"""Which replicas behind Sentinels are to confirm a write (store/redis/failover.py): those in
step with the primary the Sentinels name, and one being promoted in its place, so that the old
primary's writes are refused until the switch (as ``SENTINEL REPLICAS`` describes them)."""

from __future__ import annotations

from typing import Any

from transporter.store.redis.failover import _copies

PRIMARY = ("127.0.0.1", 6379)


def replica(**fields: Any) -> dict[str, Any]:
    entry = {
        "flags": "slave",
        "role-reported": "slave",
        "master-link-status": "ok",
        "master-host": "127.0.0.1",
        "master-port": "6379",
    }
    entry.update(fields)
    return entry


def test_a_replica_in_step_with_the_primary_confirms() -> None:
    assert _copies(replica(), PRIMARY)


def test_a_replica_cut_or_sent_elsewhere_does_not() -> None:
    assert not _copies(replica(**{"master-link-status": "err"}), PRIMARY)
    assert not _copies(replica(**{"master-host": "127.0.0.2"}), PRIMARY)


def test_a_replica_being_promoted_still_counts_so_the_old_primary_is_refused() -> None:
    # What the Sentinel leading a SENTINEL FAILOVER reads from the replica it promotes: it
    # has left its primary, and reports itself a master.
    promoting = replica(**{"role-reported": "master", "master-link-status": "err"})
    del promoting["master-host"], promoting["master-port"]
    assert _copies(promoting, PRIMARY)
    assert _copies(replica(flags="slave,promoted", **{"master-link-status": "err"}), PRIMARY)
