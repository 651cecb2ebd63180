"""``transporter produce plan|apply|approve|cancel|close``: plans, and what a person does to a
rollout under way; their flags, and their settings from them."""

from __future__ import annotations

from collections.abc import Callable

from transporter.cli.commands import Parser, Subcommands, Values, add_command
from transporter.cli.flags import Flag
from transporter.cli.produce_reach import (
    HTTP_CP_URL,
    MANIFEST,
    REACH_FLAGS,
    WAIT_TIMEOUT,
    reach_and_show,
)
from transporter.cli.rollout_flags import (
    READY_FLAGS,
    STRATEGY_FLAGS,
    TARGET_FLAGS,
    add_agents,
    add_wave,
    parse_rollout_id,
    ready_timeout_of,
    rollout_of,
    targets_of,
)
from transporter.cli.shared import NO_HEADERS, OUTPUT
from transporter.config.produce import (
    ApplyPlanConfig,
    PlanConfig,
    RolloutOpConfig,
    Targets,
)
from transporter.config.values import ConfigError, parse_positive_int

SHOW_FLAGS = (HTTP_CP_URL, OUTPUT, NO_HEADERS, *REACH_FLAGS)

PLAN_FLAGS = (
    *TARGET_FLAGS,
    MANIFEST,
    Flag("--delete", "plan deleting the objects the manifests name", switch=True),
    Flag(
        "--ttl",
        "seconds the plan lives and may be applied (default: the control plane's, 1 h)",
        parse_positive_int,
        metavar="SECONDS",
    ),
    Flag("--id", "the plan's id (a rollout id)", parse_rollout_id, metavar="PLAN_ID"),
    Flag(
        "--timeout",
        "seconds to wait for every cluster's plan",
        WAIT_TIMEOUT.parse,
        "300",
        metavar="SECONDS",
    ),
    *SHOW_FLAGS,
)

APPLY_FLAGS = (
    *STRATEGY_FLAGS,
    *READY_FLAGS,
    Flag("--wait", "follow the rollout's clusters until it ends", switch=True),
    WAIT_TIMEOUT,
    *SHOW_FLAGS,
)


def _wave_number(text: str) -> int:
    """A wave as people count them, from 1 (the API's index is one less)."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 16:
        raise ConfigError(f"{text!r} is not a wave number (1-16)")
    return int(text)


APPROVE_FLAGS = (
    Flag(
        "--wave",
        "the wave to release (default: the one awaiting approval)",
        _wave_number,
        metavar="N",
    ),
    *SHOW_FLAGS,
)


def add(kinds: Subcommands) -> None:
    plan = add_command(
        kinds,
        "plan",
        PLAN_FLAGS,
        plan_settings,
        "show what applying manifests would do on each cluster, changing nothing",
        "Submit a plan: each target agent dry-runs the manifests on its cluster (server side)"
        " and tells, object by object, whether it would be created, changed (with the fields),"
        " left unchanged, or refused; wait for every cluster and show it, with the plan's id"
        " for 'produce apply'. Exit 0 every cluster planned, 1 some could not, 2 refused.",
        examples=(
            "transporter produce plan -l env=prod --manifest app/",
            "transporter produce apply 3f2a… --max-parallel 2 --wait",
        ),
    )
    add_agents(plan)
    apply = add_command(
        kinds,
        "apply",
        APPLY_FLAGS,
        apply_settings,
        "apply a plan: exactly what it showed, on the clusters where it was made",
        "Start a rollout of the plan on every cluster whose plan completed. An object that"
        " changed on its cluster since the plan is not touched (drifted: plan again).",
        examples=("transporter produce apply 3f2a… --max-parallel 25% --wait",),
    )
    add_wave(apply)
    apply.add_argument("plan_id", metavar="PLAN_ID", help="the plan's id")
    _add_ops(kinds)


def _add_ops(kinds: Subcommands) -> None:
    """``approve``, ``cancel`` and ``close``: one id each."""
    for op, summary, description, example in (
        (
            "approve",
            "release the rollout's wave that awaits approval",
            "Start the wave that waits for approval (or --wave N, counted from 1).",
            "transporter produce approve web-42",
        ),
        (
            "cancel",
            "cancel a rollout or an event: what has not started never will",
            "Cancel a rollout (rollout/ID): events not yet sent end cancelled, those running"
            " finish, nothing more starts; or an event (event/ID) not yet sent to its agent."
            " A bare ID is a rollout's if there is one, else an event's.",
            "transporter produce cancel rollout/web-42",
        ),
        (
            "close",
            "close a standing rollout: agents that register later no longer get it",
            None,
            "transporter produce close web-42",
        ),
    ):
        parser = add_command(
            kinds,
            op,
            APPROVE_FLAGS if op == "approve" else SHOW_FLAGS,
            _op_settings(op),
            summary,
            description,
            examples=(example,),
        )
        what = "rollout/ID, event/ID or ID" if op == "cancel" else "the rollout's id"
        parser.add_argument("name", metavar="ID", help=what)


def plan_settings(values: Values, parser: Parser) -> PlanConfig:
    targets = targets_of(values, parser)
    if targets.agent is not None:  # a plan is a rollout: one agent is a list of one
        targets = Targets(agents=(targets.agent,))
    return PlanConfig(
        targets=targets,
        manifests=tuple(values["manifest"]),
        delete=values["delete"],
        ttl=values["ttl"],
        plan_id=values["id"],
        **reach_and_show(values, parser),
    )


def apply_settings(values: Values, parser: Parser) -> ApplyPlanConfig:
    return ApplyPlanConfig(
        plan_id=values["plan_id"],
        rollout=rollout_of(values, parser, rollout=True),
        wait=values["wait"],
        wait_ready=values["wait_ready"],
        ready_timeout=ready_timeout_of(values, parser),
        **reach_and_show(values, parser),
    )


def _op_settings(op: str) -> Callable[[Values, Parser], RolloutOpConfig]:
    def settings(values: Values, parser: Parser) -> RolloutOpConfig:
        name: str = values["name"]
        if not name.strip():
            parser.error(f"{op} needs an id")
        if op != "cancel":
            if name.startswith("event/"):
                parser.error(f"{op}: only a rollout can be {op}d, not {name}")
            name = name.removeprefix("rollout/")
        return RolloutOpConfig(
            op=op,  # type: ignore[arg-type]
            name=name,
            wave=values.get("wave"),
            **reach_and_show(values, parser),
        )

    return settings
