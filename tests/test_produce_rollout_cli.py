"""``transporter produce``'s rollout flags: what they become, and every mistake a one-line
usage error (exit 2) naming the flag, before anything is sent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from transporter import cli
from transporter.config.produce import (
    ApplyPlanConfig,
    PlanConfig,
    ProduceConfig,
    QueryConfig,
    RolloutOpConfig,
    RolloutOptions,
    Targets,
)
from transporter.protocol.rollout import Strategy, Wave

K8S = ["produce", "k8s", "--manifest", "m.yaml"]


@pytest.fixture(autouse=True)
def no_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("TRANSPORTER_"):
            monkeypatch.delenv(name)


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stopped:
        cli.parse(argv)
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    return error


def test_a_selector_with_a_strategy_and_waves_becomes_a_rollout() -> None:
    parsed = cli.parse(
        [
            *K8S,
            "-l",
            "env = prod, ring in (b,a)",
            "--max-parallel",
            "25%",
            "--max-failures",
            "2",
            "--wave",
            "ring=canary",
            "--wave",
            "ring=early; pause = 60",
            "--wave",
            ";approval",
            "--standing",
            "--allow-empty",
            "--id",
            "web-42",
            "--wait-ready",
            "--ready-timeout",
            "120",
        ]
    )
    assert isinstance(parsed, ProduceConfig)
    assert parsed.agent is None
    assert parsed.targets == Targets(selector="env=prod,ring in (a,b)")  # canonical
    assert parsed.rollout == RolloutOptions(
        rollout_id="web-42",
        strategy=Strategy(
            max_parallel_percent=25,
            max_failures=2,
            waves=(
                Wave("ring=canary"),
                Wave("ring=early", pause=60),
                Wave("", approval=True),
            ),
        ),
        standing=True,
        allow_empty=True,
    )
    assert (parsed.wait_ready, parsed.ready_timeout) == (True, 120)


def test_agents_and_a_single_agent() -> None:
    listed = cli.parse([*K8S, "--agents", "a,b , c", "--max-parallel", "2"])
    assert isinstance(listed, ProduceConfig)
    assert listed.targets == Targets(agents=("a", "b", "c"))
    assert listed.rollout.strategy == Strategy(max_parallel=2)
    single = cli.parse([*K8S, "--agent", "a", "--wait-ready"])
    assert isinstance(single, ProduceConfig)
    assert (single.agent, single.targets, single.wait_ready) == ("a", None, True)


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (K8S, "give exactly one of --agent, --agents and --selector (given: none)"),
        ([*K8S, "--agent", "a", "-l", "x=y"], "(given: --agent, --selector)"),
        ([*K8S, "-l", "env in (a"], "--selector: "),
        ([*K8S, "--agents", "a,a"], "--agents: agent 'a' is named twice"),
        ([*K8S, "--agents", " , "], "--agents: names no agent"),
        ([*K8S, "--agents", "a,B_"], "--agents: agent id 'B_'"),
        ([*K8S, "-l", "x", "--max-parallel", "0%"], "'0%' is not a percentage from 1% to 100%"),
        ([*K8S, "-l", "x", "--max-parallel", "101%"], "not a percentage"),
        ([*K8S, "-l", "x", "--max-parallel", "-1"], "--max-parallel: '-1' is not a number"),
        ([*K8S, "-l", "x", "--max-failures", "x"], "--max-failures: 'x' is not a number"),
        ([*K8S, "-l", "x", "--wave", "a=b;pause=86401"], "--wave 'a=b;pause=86401': '86401'"),
        ([*K8S, "-l", "x", "--wave", "a=b;later"], "'later' is not a wave option"),
        ([*K8S, "-l", "x", "--wave", "a in ("], "--wave 'a in (': "),
        ([*K8S, "-l", "x", *["--wave", "a=b"] * 17], "17 waves; a rollout takes at most 16"),
        ([*K8S, "-l", "x", "--id", "a_b"], "--id: 'a_b' is not a rollout id"),
        ([*K8S, "-l", "x", "--wave", "a=b;pause=5"], "the first wave has none"),
        (["produce", "apply", "p", "--wave", "a=b;pause=5"], "--wave 'a=b;pause=5': pause is"),
        ([*K8S, "--agents", "a,b", "--standing"], "--standing: needs --selector"),
        (
            [*K8S, "--agent", "a", "--max-parallel", "2", "--standing"],
            "--max-parallel, --standing: only for a rollout (--agents or --selector)",
        ),
        ([*K8S, "--agent", "a", "--ready-timeout", "5"], "--ready-timeout: only with --wait-ready"),
        ([*K8S, "--agent", "a", "--wait-ready", "--ready-timeout", "3601"], "from 0 to 3600"),
        (["produce", "get", "rollouts", "--state", "queued"], "is not a state of rollouts"),
        (["produce", "get", "events", "--state", "paused"], "is not a state of events"),
        (["produce", "get", "events", "--kind", "plan"], "--kind: only with 'get rollouts'"),
        (["produce", "get", "rollout"], "get rollout needs an id"),
        (["produce", "get", "plans", "x"], "get plans takes no id"),
        (["produce", "approve", "r1", "--wave", "17"], "not a wave number"),
        (["produce", "close", "event/e1"], "only a rollout can be closed"),
        (["produce", "plan", "--manifest", "m.yaml"], "give exactly one of"),
        (["produce", "apply", "p1", "--standing"], "unrecognized arguments: --standing"),
    ],
)
def test_mistakes_are_usage_errors_naming_the_flag(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert complaint in refused(argv, capsys)


def test_agents_is_not_read_from_token_creates_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """``TRANSPORTER_AGENTS`` is ``token create --agents`` (patterns): never a rollout's list."""
    monkeypatch.setenv("TRANSPORTER_AGENTS", "team-a-*")
    parsed = cli.parse([*K8S, "--agent", "a"])
    assert isinstance(parsed, ProduceConfig) and parsed.targets is None


def test_a_target_on_the_command_line_wins_over_the_variables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``TRANSPORTER_AGENT`` set in the shell does not conflict with ``--selector`` or
    ``--agents`` given on the command line; only targets given the same way conflict."""
    monkeypatch.setenv("TRANSPORTER_AGENT", "from-env")
    selected = cli.parse([*K8S, "-l", "env=prod", "--max-parallel", "2"])
    assert isinstance(selected, ProduceConfig)
    assert (selected.agent, selected.targets) == (None, Targets(selector="env=prod"))
    listed = cli.parse([*K8S, "--agents", "a,b"])
    assert isinstance(listed, ProduceConfig) and listed.targets == Targets(agents=("a", "b"))
    plan = cli.parse(["produce", "plan", "-l", "env=prod", "--manifest", "m.yaml"])
    assert isinstance(plan, PlanConfig) and plan.targets == Targets(selector="env=prod")
    alone = cli.parse(K8S)
    assert isinstance(alone, ProduceConfig) and alone.agent == "from-env"
    monkeypatch.setenv("TRANSPORTER_SELECTOR", "env=dev")
    both = refused(K8S, capsys)
    assert "(given: TRANSPORTER_AGENT, TRANSPORTER_SELECTOR)" in both
    chosen = cli.parse([*K8S, "--agent", "a"])
    assert isinstance(chosen, ProduceConfig) and (chosen.agent, chosen.targets) == ("a", None)
    assert "(given: --agent, --selector)" in refused([*K8S, "--agent", "a", "-l", "x"], capsys)


def test_plan_apply_and_the_rollout_commands() -> None:
    plan = cli.parse(["produce", "plan", "--agent", "a", "--manifest", "m.yaml", "--ttl", "60"])
    assert isinstance(plan, PlanConfig)
    assert (plan.targets, plan.ttl, plan.manifests) == (
        Targets(agents=("a",)),  # a plan is a rollout: one agent is a list of one
        60,
        (Path("m.yaml"),),
    )
    apply = cli.parse(
        ["produce", "apply", "p1", "--max-parallel", "1", "--wave", "r=1", "--wait", "-o", "json"]
    )
    assert isinstance(apply, ApplyPlanConfig)
    assert apply.plan_id == "p1" and apply.wait and apply.output == "json"
    assert apply.rollout.strategy == Strategy(max_parallel=1, waves=(Wave("r=1"),))
    approve = cli.parse(["produce", "approve", "rollout/r1", "--wave", "2"])
    assert approve == RolloutOpConfig(op="approve", name="r1", wave=2, log_format="json")
    cancel = cli.parse(["produce", "cancel", "event/e1"])
    assert isinstance(cancel, RolloutOpConfig) and (cancel.op, cancel.name) == (
        "cancel",
        "event/e1",
    )
    query = cli.parse(["produce", "get", "rollouts", "--kind", "plan", "--state", "running"])
    assert isinstance(query, QueryConfig)
    assert (query.what, query.kind, query.state) == ("rollouts", "plan", "running")
