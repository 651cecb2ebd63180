"""kill -9 of the control plane at random moments while a producer streams events, restarted
each time at once on the same ports and store, as a supervisor would; then the reckoning: every
accepted event completed, and the API server holding exactly the expected objects.

Used by ``tests/faults/test_cp_kill.py`` (20 quick cycles per store) and by ``bench/crash.py``
(as many as asked).
"""

from __future__ import annotations

import random
import re
import time
import uuid
from collections import Counter
from pathlib import Path

import attrs

from tests.bed.configmaps import Data, configmaps, create_namespace, event_body, wrong_objects
from tests.bed.follow import final_records, not_completed
from tests.bed.producer import Producer
from tests.bed.roles import API_LISTENING, AgentProcess, ControlPlaneProcess


@attrs.frozen(kw_only=True)
class CrashSettings:
    cycles: int = 20
    """Kills of the control plane (each followed by a restart)."""
    events: int = 500
    """Events the producer streams meanwhile, one new ConfigMap each."""
    batch: int = 1
    """Events per request: 1 for ``POST /events``, more for ``POST /events/batch``."""
    up: tuple[float, float] = (0.0, 1.0)
    """Seconds the control plane serves before its kill, drawn uniformly: small, so that many
    cycles are quick, and from 0, so that kills land in its first requests too."""
    while_starting: float = 0.15
    """Share of kills at a random moment of the process's start (opening the store, binding)."""
    after_agent: float = 0.5
    """Share of the other kills timed from the agent's reconnection rather than from the
    moment the API serves: the agent reconnects with a backoff of its own (up to seconds), and
    these kills land in delivery and status reports."""
    finish_timeout: float = 180.0
    """Seconds for every accepted event to end after the last restart."""
    seed: int | None = None


@attrs.frozen(kw_only=True)
class CrashReport:
    store: str
    cycles: int
    kills: Counter[str]
    """Kills by what the control plane was doing: starting, serving, agent connected."""
    kills_in_stream: int
    """Kills before the producer had a final answer for every event."""
    events: int
    accepted: int
    existed: int
    """Of the accepted, events whose 202 was lost in a kill and that a retry found stored."""
    refused: dict[str, str]
    lost: list[str]
    """Accepted events that did not complete (unknown to the store, unfinished, failed)."""
    wrong: list[str]
    """ConfigMaps missing, extra, or with other data than expected."""
    answers: Counter[str]
    seconds: float
    audit_intact: bool
    audit: str
    """What ``transporter audit verify`` said of the store afterwards."""
    seed: int
    logs: Path

    @property
    def ok(self) -> bool:
        complete = self.accepted == self.events and self.audit_intact
        return complete and not (self.refused or self.lost or self.wrong)

    def describe(self) -> str:
        lines = [
            f"{self.store}: {self.cycles} cycles {dict(self.kills)}"
            f" ({self.kills_in_stream} while events streamed in), {self.accepted}/{self.events}"
            f" accepted ({self.existed} found stored on retry), {len(self.lost)} lost,"
            f" {len(self.wrong)} objects wrong, {self.seconds:.1f} s (seed {self.seed},"
            f" logs in {self.logs})",
            f"  answers: {dict(self.answers)}",
            f"  {self.audit}",
        ]
        lines += [f"  refused {key}: {why}" for key, why in list(self.refused.items())[:20]]
        lines += [f"  lost {line}" for line in self.lost[:20]]
        lines += [f"  {line}" for line in self.wrong[:20]]
        return "\n".join(lines)


_AGENT_CONNECTED = "agent {} connected from"


def cp_kill_cycles(
    *, store_name: str, store: str | None, kubeconfig: Path, work: Path, settings: CrashSettings
) -> CrashReport:
    """Run the cycles with a control plane on ``store`` (``None``: SQLite in ``work``) and an
    agent on the cluster of ``kubeconfig``, both real processes; their logs stay in ``work``."""
    seed = settings.seed if settings.seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    began = time.monotonic()
    namespace = f"crash-{store_name}-{uuid.uuid4().hex[:8]}"
    agent_id = namespace
    create_namespace(kubeconfig, namespace)
    expected: dict[str, Data] = {}
    bodies = []
    for n in range(settings.events):
        event_id, name = f"{namespace}-{n:04d}", f"cm-{n:04d}"
        expected[name] = {"event": event_id, "n": str(n)}
        bodies.append(event_body(event_id, agent_id, {name: expected[name]}, namespace))

    work.mkdir(parents=True, exist_ok=True)
    cp = ControlPlaneProcess(work / "cp-data", work / "cp.log", store=store)
    agent: AgentProcess | None = None
    producer: Producer | None = None
    kills: Counter[str] = Counter()
    kills_in_stream = 0
    try:
        started = time.monotonic()
        cp.start()
        startup = time.monotonic() - started
        # Made once, after the first start: every restart must still take the token (in the
        # store) and the agent's certificate (from the CA in the data folder).
        api = cp.create_admin_token()
        bundle = cp.create_bundle(agent_id, work / "agent-bundle")
        agent = AgentProcess(agent_id, cp.agent_url, bundle, kubeconfig, work / "agent.log")
        agent.start()
        # Spread the stream over the cycles (it catches up in a burst after each restart).
        cycle_time = startup + sum(settings.up) / 2
        producer = Producer(
            api,
            bodies,
            pace=settings.cycles * cycle_time / max(settings.events, 1),
            batch=settings.batch,
        )
        producer.start()
        connected = re.compile(re.escape(_AGENT_CONNECTED.format(agent_id)))
        for plan in _plans(settings, rng):
            kills[_kill_once(cp, plan, rng, settings, startup, connected)] += 1
            kills_in_stream += not producer.done
        cp.ready()
        producer.join(timeout=settings.finish_timeout)
        outcome = producer.outcome
        records = final_records(api, outcome.accepted, timeout=settings.finish_timeout)
        if agent.process is not None and not agent.process.alive():
            raise RuntimeError(f"the agent exited by itself:\n{agent.process.tail()}")
        accepted = set(outcome.accepted)
        accepted_objects = {
            name: data for name, data in expected.items() if data["event"] in accepted
        }
        wrong = wrong_objects(accepted_objects, configmaps(kubeconfig, namespace))
    finally:
        if producer is not None:
            producer.cancel()
        if agent is not None:
            agent.stop()
        cp.stop()
    audit_intact, audit = cp.verify_audit()
    return CrashReport(
        store=store_name,
        cycles=settings.cycles,
        kills=kills,
        kills_in_stream=kills_in_stream,
        events=settings.events,
        accepted=len(outcome.accepted),
        existed=outcome.existed,
        refused=outcome.refused,
        lost=not_completed(records),
        wrong=wrong,
        answers=outcome.answers,
        seconds=time.monotonic() - began,
        audit_intact=audit_intact,
        audit=audit,
        seed=seed,
        logs=work,
    )


def _plans(settings: CrashSettings, rng: random.Random) -> list[str]:
    """When each cycle's kill is timed from, in the shares the settings ask, shuffled."""
    starting = round(settings.cycles * settings.while_starting)
    after_agent = round((settings.cycles - starting) * settings.after_agent)
    plans = ["starting"] * starting + ["agent"] * after_agent
    plans += ["serving"] * (settings.cycles - len(plans))
    rng.shuffle(plans)
    return plans


def _kill_once(
    cp: ControlPlaneProcess,
    plan: str,
    rng: random.Random,
    settings: CrashSettings,
    startup: float,
    agent_connected: re.Pattern[str],
) -> str:
    """Let the running (or starting) control plane live a random while, timed as ``plan``
    says, kill -9 it and start it again at once; returns what it was doing when it died."""
    process = cp.process
    assert process is not None
    if plan == "starting":
        time.sleep(rng.uniform(0, startup))  # the kill's random moment, not a wait
    else:
        cp.ready()
        if plan == "agent":
            process.wait_for(agent_connected)
        time.sleep(rng.uniform(*settings.up))  # the kill's random moment, not a wait
    if not process.alive():
        raise RuntimeError(
            f"the control plane exited by itself with {process.popen.returncode}:\n"
            + process.tail()
        )
    lines = process.tail(10_000)
    if agent_connected.search(lines):
        moment = "agent connected"
    elif API_LISTENING.search(lines):
        moment = "serving"
    else:
        moment = "starting"
    cp.kill()
    cp.spawn()
    return moment
