"""The producer's flags for many clusters at once: whom (``--agents``, ``--selector``), how
(``--max-parallel``, ``--max-failures``, ``--wave``) and when an object counts as done
(``--wait-ready``). Each value is checked here, as the control plane checks it, so that a
mistake is a usage error (exit 2) naming the flag before anything is sent."""

from __future__ import annotations

import argparse

from transporter.cli.commands import ON_COMMAND_LINE, Parser, Values
from transporter.cli.flags import Flag
from transporter.config.produce import RolloutOptions, Targets
from transporter.config.values import ConfigError, parse_agent_id
from transporter.protocol.rollout import ROLLOUT_ID_RULE, Strategy, Wave, is_rollout_id
from transporter.protocol.rollout_request import (
    MAX_FAILURES,
    MAX_PARALLEL,
    MAX_PAUSE,
    MAX_TARGETS,
    MAX_WAVES,
)
from transporter.protocol.selector import Selector, SelectorError
from transporter.protocol.submission import MAX_READY_TIMEOUT


def parse_agents(text: str) -> tuple[str, ...]:
    """``a,b,c``: agent ids, at least one, at most :data:`MAX_TARGETS`, none twice."""
    agents = tuple(item.strip() for item in text.split(",") if item.strip())
    if not agents:
        raise ConfigError("names no agent (give ids separated by commas)")
    if len(agents) > MAX_TARGETS:
        raise ConfigError(f"{len(agents)} agents; a rollout takes at most {MAX_TARGETS}")
    seen: set[str] = set()
    for agent in agents:
        parse_agent_id(agent)
        if agent in seen:
            raise ConfigError(f"agent {agent!r} is named twice")
        seen.add(agent)
    return agents


def parse_selector(text: str) -> str:
    """A label selector as ``kubectl get -l`` takes it, canonical (``""``: every agent)."""
    try:
        return str(Selector.parse(text))
    except SelectorError as exc:
        raise ConfigError(str(exc)) from None


def _count(text: str, what: str, top: int) -> int:
    if not text.strip().isdigit() or int(text) > top:
        raise ConfigError(f"{text!r} is not {what} (a whole number from 0 to {top})")
    return int(text)


def parse_max_parallel(text: str) -> tuple[int, int]:
    """``N`` (clusters at once, 0: no limit) or ``N%`` (of the rollout's clusters, 1-100):
    ``(max_parallel, max_parallel_percent)``."""
    if text.strip().endswith("%"):
        number = text.strip()[:-1]
        if not number.isdigit() or not 1 <= int(number) <= 100:
            raise ConfigError(f"{text!r} is not a percentage from 1% to 100%")
        return 0, int(number)
    return _count(text, "a number of clusters or a percentage (N%)", MAX_PARALLEL), 0


def parse_max_failures(text: str) -> int:
    return _count(text, "a number of failures", MAX_FAILURES)


def parse_wave(text: str) -> Wave:
    """``SELECTOR[;pause=SECONDS][;approval]``: the clusters the selector matches (``""``:
    all the rest), started after the wave before them finished, ``pause`` seconds later and
    only once approved when asked. A selector holds no ``;``."""
    selector, *options = text.split(";")
    pause, approval = 0, False
    for option in (item.strip() for item in options):
        name, equals, value = option.partition("=")
        if name.strip() == "pause" and equals:
            pause = _count(value.strip(), "a pause in seconds", MAX_PAUSE)
        elif option == "approval":
            approval = True
        else:
            raise ConfigError(
                f"{option!r} is not a wave option (give SELECTOR;pause=SECONDS;approval)"
            )
    return Wave(selector=parse_selector(selector), pause=pause, approval=approval)


def parse_rollout_id(text: str) -> str:
    if not is_rollout_id(text):
        raise ConfigError(f"{text!r} is not a rollout id ({ROLLOUT_ID_RULE})")
    return text


def parse_ready_timeout(text: str) -> int:
    seconds = _count(text, "a number of seconds", MAX_READY_TIMEOUT)
    if seconds < 1:
        raise ConfigError(f"{text!r} must be at least 1 second")
    return seconds


TARGET_FLAGS = (
    Flag("--agent", "target agent id: one event", parse_agent_id, metavar="ID"),
    Flag(
        "--selector",
        "label selector over the agents' labels (as kubectl -l): a rollout to every match",
        parse_selector,
        short="-l",
        metavar="SELECTOR",
    ),
)

STRATEGY_FLAGS = (
    Flag(
        "--max-parallel",
        "clusters working at once: N (0: no limit) or N%% of the rollout's clusters",
        parse_max_parallel,
        metavar="N|N%",
    ),
    Flag(
        "--max-failures",
        "failed clusters after which the rest are not started (they end cancelled)",
        parse_max_failures,
        metavar="N",
    ),
    Flag(
        "--id",
        "the rollout's id (at most 64 letters, digits, '.', '-'; no '_'): the same request"
        " again is not started twice",
        parse_rollout_id,
        metavar="ROLLOUT_ID",
    ),
)

ROLLOUT_FLAGS = (
    Flag(
        "--standing",
        "agents that register later and match the selector get the event too, until"
        " 'produce close'",
        switch=True,
    ),
    Flag("--allow-empty", "accept a rollout that matches no agent (yet)", switch=True),
)

READY_FLAGS = (
    Flag(
        "--wait-ready",
        "the agent waits until each applied object is ready (kstatus rules) before the event"
        " completes",
        switch=True,
    ),
    Flag(
        "--ready-timeout",
        f"seconds --wait-ready waits at most (1-{MAX_READY_TIMEOUT}; default: the agent's, 300)",
        parse_ready_timeout,
        metavar="SECONDS",
    ),
)


def add_agents(parser: argparse.ArgumentParser) -> None:
    """``--agents``. No environment variable: ``TRANSPORTER_AGENTS`` is ``token create``'s
    (agent patterns), which a producer's shell may well have set."""
    parser.add_argument(
        "--agents",
        metavar="ID,ID,…",
        help="target agent ids, comma-separated: a rollout, one event per agent",
    )


def agents_of(values: Values, parser: Parser) -> tuple[str, ...] | None:
    given: str | None = values.get("agents")
    if given is None:
        return None
    try:
        return parse_agents(given)
    except ConfigError as exc:
        parser.error(f"--agents: {exc}")


def add_wave(parser: argparse.ArgumentParser) -> None:
    """``--wave``, repeatable, in order. No environment variable: a selector holds commas,
    which a variable's list would split."""
    parser.add_argument(
        "--wave",
        action="append",
        metavar="SELECTOR[;pause=S][;approval]",
        help="a wave of the rollout, repeatable, in order: the clusters the selector matches"
        " ('' : all the rest), started when the wave before finished, after pause=S seconds,"
        " once approved with ;approval ('produce approve')",
    )


def targets_of(values: Values, parser: Parser) -> Targets:
    """Exactly one of ``--agent``, ``--agents`` and ``--selector``. A target on the command
    line wins over the variables (``TRANSPORTER_AGENT``, ``TRANSPORTER_SELECTOR``): only
    targets given the same way conflict."""
    agents = agents_of(values, parser)
    found = {"agent": values["agent"], "agents": agents, "selector": values["selector"]}
    on_line = values.get(ON_COMMAND_LINE, frozenset()) | ({"agents"} if agents else set())
    given = [name for name, value in found.items() if value is not None and name in on_line]
    told = ", ".join(f"--{name}" for name in given)
    if not given:
        given = [name for name, value in found.items() if value is not None]
        told = ", ".join(f"TRANSPORTER_{name.upper()}" for name in given) or "none"
    if len(given) != 1:
        parser.error(f"give exactly one of --agent, --agents and --selector (given: {told})")
    (name,) = given
    if name == "agent":
        return Targets(agent=values["agent"])
    if name == "agents":
        return Targets(agents=agents or ())
    return Targets(selector=values["selector"])


def rollout_of(
    values: Values, parser: Parser, *, rollout: bool, listed: bool = False
) -> RolloutOptions:
    """The strategy flags; with a single event (``rollout`` false) any of them is an error,
    and ``--standing`` with a list of agents (``listed``), as the control plane refuses them."""
    texts: list[str] = values.get("wave") or []
    waves = tuple(parse_wave_flag(text, parser) for text in texts)
    if waves and waves[0].pause:
        parser.error(
            f"--wave {texts[0]!r}: pause is the wait after the wave before, and the first wave"
            " has none (give it ;approval to hold it until approved)"
        )
    if listed and values.get("standing"):
        parser.error("--standing: needs --selector (a list of --agents takes no agent later)")
    if len(waves) > MAX_WAVES:
        parser.error(f"--wave: {len(waves)} waves; a rollout takes at most {MAX_WAVES}")
    parallel, percent = values["max_parallel"] or (0, 0)
    strategy = Strategy(
        max_parallel=parallel,
        max_parallel_percent=percent,
        max_failures=values["max_failures"] or 0,
        waves=waves,
    )
    options = RolloutOptions(
        rollout_id=values["id"],
        strategy=strategy,
        standing=bool(values.get("standing")),
        allow_empty=bool(values.get("allow_empty")),
    )
    if not rollout:
        used = [
            flag
            for flag, value in (
                ("--max-parallel", values["max_parallel"] is not None),
                ("--max-failures", values["max_failures"] is not None),
                ("--wave", bool(waves)),
                ("--id", values["id"] is not None),
                ("--standing", options.standing),
                ("--allow-empty", options.allow_empty),
            )
            if value
        ]
        if used:
            parser.error(f"{', '.join(used)}: only for a rollout (--agents or --selector)")
    return options


def parse_wave_flag(text: str, parser: Parser) -> Wave:
    try:
        return parse_wave(text)
    except ConfigError as exc:
        parser.error(f"--wave {text!r}: {exc}")


def ready_timeout_of(values: Values, parser: Parser) -> int | None:
    timeout: int | None = values["ready_timeout"]
    if timeout is not None and not values["wait_ready"]:
        parser.error("--ready-timeout: only with --wait-ready")
    return timeout
