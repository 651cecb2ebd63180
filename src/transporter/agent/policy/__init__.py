"""The agent's policy: what the control plane may ask this agent to do to its cluster.

:mod:`.rules` holds the policy and how it judges; :mod:`.grants` and :mod:`.rbac` what RBAC
objects can grant; :mod:`.podsecurity` the Pod Security Standards; :mod:`.view` what the
cluster said (read by :mod:`transporter.agent.inspection`); :mod:`.file` the policy file.
"""

from transporter.agent.policy.file import load_policy, parse_policy
from transporter.agent.policy.model import (
    ALLOWANCES,
    MAX_SHOWN,
    NOT_APPLIED,
    REFUSED,
    PolicyError,
    Reason,
    Refusal,
    refusal_message,
    refused_results,
)
from transporter.agent.policy.podsecurity import Level
from transporter.agent.policy.rules import DEFAULT_POLICY, Policy
from transporter.agent.policy.view import ClusterView, Needs

__all__ = [
    "ALLOWANCES",
    "DEFAULT_POLICY",
    "MAX_SHOWN",
    "NOT_APPLIED",
    "REFUSED",
    "ClusterView",
    "Level",
    "Needs",
    "Policy",
    "PolicyError",
    "Reason",
    "Refusal",
    "load_policy",
    "parse_policy",
    "refusal_message",
    "refused_results",
]
