"""Who a rollout reaches and in which wave (pure)."""

from __future__ import annotations

from tests.cp.rollout.fleet import agents, record, spec
from transporter.cp.rollout import targets
from transporter.protocol.rollout import Strategy, Wave

FLEET = agents(
    eu_1={"region": "eu", "tier": "prod"},
    eu_2={"region": "eu", "tier": "dev"},
    us_1={"region": "us", "tier": "prod"},
)


def test_a_selector_picks_by_labels_and_a_list_names_agents_known_or_not() -> None:
    assert list(targets.matched(spec(selector="region=eu"), FLEET)) == ["eu-1", "eu-2"]
    assert list(targets.matched(spec(selector="tier in (prod)"), FLEET)) == ["eu-1", "us-1"]
    assert list(targets.matched(spec(selector=""), FLEET)) == ["eu-1", "eu-2", "us-1"]
    assert list(targets.matched(spec(selector="region=asia"), FLEET)) == []
    listed = targets.matched(spec(agents=("us-1", "never-seen")), FLEET)
    assert listed == {"never-seen": {}, "us-1": {"region": "us", "tier": "prod"}}


def test_a_cluster_goes_to_the_first_wave_it_matches_else_the_last() -> None:
    waves = (Wave("tier=dev"), Wave("region=eu"), Wave("region"))
    given = spec(selector="", strategy=Strategy(waves=waves))
    made = record(given, [*FLEET, *agents(bare={})])
    assert {c.agent_id: c.wave for c in made.clusters} == {
        "eu-1": 1,
        "eu-2": 0,
        "us-1": 2,
        "bare": 3,
    }
    assert [c.event_id for c in made.clusters][:1] == ["r1_bare"]
    assert targets.wave_lists(made) == [["eu-2"], ["eu-1"], ["us-1"], ["bare"]]
    assert targets.wave_count(Strategy()) == 1
    assert targets.wave_lists(record(spec(), FLEET)) == [["eu-1", "eu-2", "us-1"]]
    assert targets.wave_def(given.strategy, 3) == Wave()


def test_the_parallel_limit_number_or_percent() -> None:
    assert targets.parallel_limit(Strategy(), 10) == 0
    assert targets.parallel_limit(Strategy(max_parallel=3), 10) == 3
    assert targets.parallel_limit(Strategy(max_parallel_percent=25), 10) == 3
    assert targets.parallel_limit(Strategy(max_parallel_percent=100), 10) == 10
    assert targets.parallel_limit(Strategy(max_parallel_percent=5), 10) == 1
    assert targets.parallel_limit(Strategy(max_parallel_percent=50), 0) == 1


def test_scopes_are_the_tokens_glob_patterns() -> None:
    assert targets.covers((), "anything")
    assert targets.covers(("team-a-*",), "team-a-1")
    assert not targets.covers(("team-a-*",), "team-b-1")
    assert targets.uncovered(["b", "a", "c"], lambda agent: agent == "b") == ["a", "c"]


def test_a_scoped_caller_covers_only_a_scope_within_its_own() -> None:
    assert targets.covers_scope((), ())  # unscoped: everything
    assert targets.covers_scope((), ("team-a-*",))
    assert not targets.covers_scope(("team-a-*",), ())  # submitted unscoped: unscoped only
    assert targets.covers_scope(("team-a-*", "x"), ("team-a-*",))
    assert not targets.covers_scope(("team-a-*",), ("team-a-*", "team-b-*"))
    assert not targets.covers_scope(("team-b-*",), ("team-a-*",))
