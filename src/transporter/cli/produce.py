"""``transporter produce k8s|get``: the producer's flags, and its settings from them (the
rollout commands ``plan``, ``apply``, ``approve``, ``cancel`` and ``close`` are in
:mod:`.produce_rollouts`)."""

from __future__ import annotations

from transporter.cli import produce_rollouts
from transporter.cli.commands import Parser, Subcommands, Values, add_command, add_group
from transporter.cli.flags import Flag
from transporter.cli.produce_queue import MODE, REDIS, queue_of
from transporter.cli.produce_reach import (
    HTTP_CP_URL,
    MANIFEST,
    REACH_FLAGS,
    WAIT_TIMEOUT,
    reach_and_show,
)
from transporter.cli.rollout_flags import (
    READY_FLAGS,
    ROLLOUT_FLAGS,
    STRATEGY_FLAGS,
    TARGET_FLAGS,
    add_agents,
    add_wave,
    ready_timeout_of,
    rollout_of,
    targets_of,
)
from transporter.cli.shared import NO_HEADERS, OUTPUT
from transporter.config.produce import QUERY_KINDS, ProduceConfig, QueryConfig
from transporter.config.values import parse_agent_id, parse_positive_float, parse_positive_int
from transporter.protocol.model import EventState
from transporter.protocol.rollout import RolloutState

GET_WHAT = "events, event ID, agents, agent ID, rollouts, rollout ID, plans, plan ID, dead-letters"

DELETE = Flag(
    "--delete", "delete the objects the manifests name instead of applying them", switch=True
)

K8S_FLAGS = (
    *TARGET_FLAGS,
    MANIFEST,
    HTTP_CP_URL,
    MODE,
    REDIS,
    Flag("--wait", "follow the event's phases (a rollout's clusters) until it ends", switch=True),
    WAIT_TIMEOUT,
    OUTPUT,
    NO_HEADERS,
    DELETE,
    Flag(
        "--ttl",
        "seconds before the event expires (default: the control plane's, 24 h)",
        parse_positive_int,
        metavar="SECONDS",
    ),
    *READY_FLAGS,
    *STRATEGY_FLAGS,
    *ROLLOUT_FLAGS,
    *REACH_FLAGS,
)

GET_FLAGS = (
    HTTP_CP_URL,
    Flag("--agent", "only events for this agent", parse_agent_id, metavar="ID"),
    Flag(
        "--state",
        "only events (rollouts) in this state",
        str,
        choices=tuple(dict.fromkeys([*EventState, *RolloutState])),
    ),
    Flag("--kind", "rollouts: only rollouts of this kind", str, choices=("apply", "plan")),
    Flag("--limit", "at most this many events", parse_positive_int, "50", metavar="N"),
    Flag("--watch", "event, rollout: follow it until it ends", switch=True, short="-w"),
    Flag(
        "--timeout",
        "seconds --watch follows the event or rollout",
        parse_positive_float,
        "300",
        metavar="SECONDS",
    ),
    OUTPUT,
    NO_HEADERS,
    *REACH_FLAGS,
)


def add(commands: Subcommands) -> None:
    kinds = add_group(
        commands,
        "produce",
        "submit events and rollouts and follow them",
        dest="kind",
        examples=(
            "transporter produce k8s --agent site-1 --manifest app/ --wait",
            "transporter produce k8s --selector env=prod --max-parallel 25% --manifest app/ --wait",
            "transporter produce get events -o wide",
        ),
    )
    k8s = add_command(
        kinds,
        "k8s",
        K8S_FLAGS,
        k8s_settings,
        "apply Kubernetes manifests through an agent, or many",
        "Submit one event that applies (or, with --delete, deletes) the manifests' objects"
        " on one agent's cluster (--agent), or a rollout of one such event per agent"
        " (--agents or --selector, with --max-parallel, --max-failures and --wave), and print"
        " its id; with --wait, show its phases (a rollout's clusters) as they happen and each"
        " object's result. Exit 0 completed (every cluster), 1 failed, expired, cancelled or"
        " not finished, 2 refused.",
        examples=(
            "export TRANSPORTER_TOKEN=tpt_… TRANSPORTER_CA_CERT=ca.crt",
            "transporter produce k8s --agent site-1 --manifest app/ --wait",
            "transporter produce k8s --agent site-1 --manifest app/ --delete --wait -o json",
            "transporter produce k8s --agents site-1,site-2 --manifest app/ --wait-ready --wait",
            "transporter produce k8s -l env=prod --manifest app/ --max-failures 1 \\",
            "    --wave ring=canary --wave 'ring=early;pause=600' --wave ';approval' --wait",
            "TRANSPORTER_REDIS=redis://qproducer:PASSWORD@redis:6379/0 \\",
            "    transporter produce k8s --mode queue --agent site-1 --manifest app/ --wait",
        ),
    )
    add_agents(k8s)
    add_wave(k8s)
    get = add_command(
        kinds,
        "get",
        GET_FLAGS,
        get_settings,
        "show events, agents, rollouts or plans, like kubectl get",
        "Show the events (newest first), agents, rollouts or plans the token may see, or one"
        " of them; --watch follows one event or rollout until it ends.",
        examples=(
            "transporter produce get events --agent site-1 --state failed",
            "transporter produce get event 6f1c…  --watch",
            "transporter produce get agents -o yaml",
            "transporter produce get rollouts --state running",
            "transporter produce get rollout web-42 --watch",
        ),
    )
    get.add_argument(
        "what",
        choices=QUERY_KINDS,
        help=GET_WHAT,
    )
    get.add_argument("name", nargs="?", help="the event, agent, rollout or plan id")
    produce_rollouts.add(kinds)


def k8s_settings(values: Values, parser: Parser) -> ProduceConfig:
    targets = targets_of(values, parser)
    return ProduceConfig(
        agent=targets.agent,
        manifests=tuple(values["manifest"]),
        **queue_of(values, parser),
        wait=values["wait"],
        delete=values["delete"],
        ttl=values["ttl"],
        wait_ready=values["wait_ready"],
        ready_timeout=ready_timeout_of(values, parser),
        targets=targets if targets.rollout else None,
        rollout=rollout_of(values, parser, rollout=targets.rollout, listed=bool(targets.agents)),
        **reach_and_show(values, parser),
    )


def get_settings(values: Values, parser: Parser) -> QueryConfig:
    what, name = values["what"], values["name"]
    single = what in ("event", "agent", "rollout", "plan")
    if single and not name:
        parser.error(f"get {what} needs an id")
    if not single and name:
        parser.error(f"get {what} takes no id (did you mean {what[:-1]}?)")
    rollouts = what in ("rollouts", "plans")
    states = RolloutState if rollouts else EventState
    if values["state"] is not None and values["state"] not in tuple(states):
        shown = ", ".join(states)
        parser.error(f"--state: {values['state']!r} is not a state of {what} ({shown})")
    if values["kind"] is not None and what != "rollouts":
        parser.error("--kind: only with 'get rollouts'")
    return QueryConfig(
        what=what,
        name=name,
        agent=values["agent"],
        state=values["state"],
        kind=values["kind"],
        limit=values["limit"],
        watch=values["watch"],
        **reach_and_show(values, parser),
    )
