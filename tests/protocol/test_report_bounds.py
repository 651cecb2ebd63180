"""Bounds on a report's results: diffs (a plan's) are cut per result and per report, with a note
in the result's message; an honest report is kept as it is."""

from __future__ import annotations

from transporter.protocol.model import FieldChange, ResourceResult, ResourceStatus
from transporter.protocol.report_bounds import (
    MAX_CHANGES,
    MAX_FINGERPRINT,
    MAX_PATH,
    MAX_REPORT_CHANGES,
    MAX_VALUE,
    bounded_report,
)


def result(changes: int, *, message: str = "", fingerprint: str = "") -> ResourceResult:
    diff = tuple(FieldChange(f"data.k{i}", "change", "1", "2") for i in range(changes))
    return ResourceResult(
        "v1",
        "ConfigMap",
        "c",
        "ns",
        ResourceStatus.WOULD_CHANGE,
        message,
        diff=diff,
        fingerprint=fingerprint,
    )


def test_an_honest_report_is_kept_as_it_is() -> None:
    results = (result(MAX_CHANGES, fingerprint="f" * 32, message="ok"),) * 3
    assert bounded_report("m", results) == ("m", results)


def test_a_diff_is_cut_with_a_note() -> None:
    _, kept = bounded_report("m", (result(MAX_CHANGES + 5, message="plan"),))
    assert kept is not None
    (one,) = kept
    assert len(one.diff) == MAX_CHANGES
    assert one.message == "plan (5 more changes not listed)"


def test_a_change_and_a_fingerprint_are_cut() -> None:
    huge = FieldChange("p" * (MAX_PATH * 2), "change", "o" * 5000, "n" * 5000)
    hostile = ResourceResult(
        "v1",
        "ConfigMap",
        "c",
        None,
        ResourceStatus.WOULD_CHANGE,
        diff=(huge,),
        fingerprint="f" * 999,
    )
    _, kept = bounded_report("m", (hostile,))
    assert kept is not None
    (change,) = kept[0].diff
    assert (len(change.path), len(change.old), len(change.new)) == (MAX_PATH, MAX_VALUE, MAX_VALUE)
    assert len(kept[0].fingerprint) == MAX_FINGERPRINT


def test_a_report_holds_a_bounded_number_of_changes_in_all() -> None:
    many = (result(MAX_CHANGES),) * (MAX_REPORT_CHANGES // MAX_CHANGES + 3)
    _, kept = bounded_report("m", many)
    assert kept is not None
    assert sum(len(r.diff) for r in kept) == MAX_REPORT_CHANGES
    assert kept[-1].diff == () and kept[-1].message == f"({MAX_CHANGES} more changes not listed)"
