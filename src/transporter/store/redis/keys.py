"""The Redis store's keys.

``P`` is the prefix, ``transporter:`` by default; agent ids and states are %-quoted::

    P layout                       the version of this layout ("2"); see migration.py
    P seq                          INCR: the next event seq
    P event                        hash: event id -> Event JSON, written once
    P progress                     hash: event id -> its seq and progress JSON (state, phase, ...)
    P event:brief                  hash: event id -> its agent, rollout, created_at, expires_at
                                   (event_progress reads these, never the event)
    P idx:all                      zset of event ids by seq           (list_events)
    P idx:agent:A                  zset by seq, events for agent A    (list_events agent=A)
    P idx:state:S                  zset by seq, events in state S     (list_events state=S)
    P idx:agent:A:state:S          zset by seq                        (both filters)
    P outbox:A                     zset by seq of A's unfinished events (terminal ones leave)
    P expiry                       zset by expires_at of unfinished events
    P agents                       hash: agent id -> AgentRecord JSON
    P audit                        stream of audit entries: entry ``SEQ-0`` holds the JSON
    P audit:seq, P audit:head      the audit chain's head: seq and hash of the last entry
    P tokens                       hash: token id -> TokenRecord JSON (the token's hash, never it)
    P revoked                      hash: "serial:HEX" or "fingerprint:HEX" -> Revocation JSON
    P revoked:seq                  INCR: the last revocation's seq (control planes poll it)
    P certificates                 hash: serial -> IssuedCertificate JSON (bundle create)
    P certificates:seq             INCR: the last recorded certificate's seq
    P pins                         hash: name -> value pinned by the first control plane
    P rollout                      hash: rollout id -> the record but its spec (seq first, version)
    P rollout:spec                 hash: rollout id -> its RolloutSpec JSON, written once
    P rollout:version              hash: rollout id -> its version (what a save compares)
    P rollout:state                hash: rollout id -> its state (which indexes hold it)
    P rollout:seq                  INCR: the last rollout's seq
    P rollout:idx:all              zset of rollout ids by seq         (list_rollouts)
    P rollout:idx:kind:K           zset by seq, rollouts of kind K    (list_rollouts kind=K)
    P rollout:idx:state:S          zset by seq, rollouts in state S   (list_rollouts state=S)
    P rollout:idx:kind:K:state:S   zset by seq                        (both filters)
    P rollout:open                 zset by seq of the rollouts not final (open_rollouts)
    P session:A                    INCR: the number of agent A's last live session (claim_session)
    P notify                       pub/sub channel: the hints replicas send each other (hints.py)
    P events                       layout 1's hash of whole records (event and progress in one
                                   JSON); once migrated, a string that fails the writes of an
                                   older control plane still running
"""

from __future__ import annotations

from urllib.parse import quote

from transporter.protocol.model import EventState
from transporter.protocol.rollout import RolloutKind, RolloutState

DEFAULT_PREFIX = "transporter:"


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.layout = prefix + "layout"
        self.seq = prefix + "seq"
        self.event = prefix + "event"
        self.progress = prefix + "progress"
        self.brief = prefix + "event:brief"
        self.all = prefix + "idx:all"
        self.expiry = prefix + "expiry"
        self.agents = prefix + "agents"
        self.audit_seq = prefix + "audit:seq"
        self.audit_head = prefix + "audit:head"
        self.audit = prefix + "audit"
        self.tokens = prefix + "tokens"
        self.revoked = prefix + "revoked"
        self.revoked_seq = prefix + "revoked:seq"
        self.certificates = prefix + "certificates"
        self.certificates_seq = prefix + "certificates:seq"
        self.pins = prefix + "pins"
        self.records = prefix + "events"
        self.rollout = prefix + "rollout"
        self.rollout_spec = prefix + "rollout:spec"
        self.rollout_version = prefix + "rollout:version"
        self.rollout_state = prefix + "rollout:state"
        self.rollout_seq = prefix + "rollout:seq"
        self.rollout_open = prefix + "rollout:open"
        self.notify = prefix + "notify"

    def index(self, agent: str | None = None, state: EventState | None = None) -> str:
        if agent is None and state is None:
            return self.all
        key = self.prefix + "idx"
        if agent is not None:
            key += ":agent:" + quote(agent, safe="")
        if state is not None:
            key += ":state:" + quote(state.value, safe="")
        return key

    def rollout_index(
        self, kind: RolloutKind | None = None, state: RolloutState | None = None
    ) -> str:
        key = self.prefix + "rollout:idx"
        if kind is None and state is None:
            return key + ":all"
        if kind is not None:
            key += ":kind:" + quote(kind.value, safe="")
        if state is not None:
            key += ":state:" + quote(state.value, safe="")
        return key

    def outbox(self, agent: str) -> str:
        return self.prefix + "outbox:" + quote(agent, safe="")

    def session(self, agent: str) -> str:
        return self.prefix + "session:" + quote(agent, safe="")

    def chain(self) -> list[str]:
        """The audit chain's keys, as the scripts that append to it take them."""
        return [self.audit_seq, self.audit_head, self.audit]
