"""API tokens, pure: their text, their hash, roles and the agents they reach."""

from __future__ import annotations

import hashlib
import re

import pytest

from transporter.protocol import codec
from transporter.security.tokens import (
    Role,
    TokenRecord,
    check_agents,
    check_name,
    check_pattern,
    new_token,
    token_id_of,
)

TOKEN = re.compile(r"^tpt_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")


def make(
    role: Role = Role.SUBMIT, agents: tuple[str, ...] = ("team-a-*",)
) -> tuple[str, TokenRecord]:
    return new_token(name="ci", role=role, agents=agents, now=1.5, created_by="cli:alice")


def test_a_new_token_is_random_and_its_record_holds_only_its_hash() -> None:
    text, record = make()
    assert TOKEN.fullmatch(text)
    assert token_id_of(text) == record.id
    assert record.hash == hashlib.sha256(text.encode()).hexdigest()
    assert text not in repr(record) and record.hash not in repr(record)
    assert text.split("_", 2)[2] not in str(codec.unstructure(record))
    assert record.matches(text)
    assert not record.matches(text[:-1] + ("A" if text[-1] != "A" else "B"))
    other, _ = make()
    assert other != text
    assert record.identity == "token:ci"
    assert codec.structure(codec.unstructure(record), TokenRecord) == record


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tpt_",
        "tpt_0123456789ab",
        "tpt_0123456789ab_",
        "tpt_0123456789AB_" + "a" * 43,
        "tpt_0123456789a_" + "a" * 43,
        "xyz_0123456789ab_" + "a" * 43,
        "tpt_0123456789ab_" + "a" * 42,
        "tpt_0123456789ab_" + "a" * 42 + "=",
        "tpt_0123456789ab_" + "a" * 42 + "\n",
    ],
)
def test_what_is_not_a_token_has_no_id(text: str) -> None:
    assert token_id_of(text) is None


def test_a_secret_may_hold_underscores_and_dashes() -> None:
    text = "tpt_0123456789ab_" + "_-" * 21 + "a"
    assert token_id_of(text) == "0123456789ab"


def test_roles_allow_what_the_ones_below_allow() -> None:
    assert Role.ADMIN.allows(Role.SUBMIT) and Role.ADMIN.allows(Role.READ)
    assert Role.SUBMIT.allows(Role.READ) and not Role.SUBMIT.allows(Role.ADMIN)
    assert not Role.READ.allows(Role.SUBMIT)
    assert Role.READ.and_above == (Role.READ, Role.SUBMIT, Role.ADMIN)
    assert Role.SUBMIT.and_above == (Role.SUBMIT, Role.ADMIN)


def test_patterns_are_case_sensitive_globs_and_admin_reaches_every_agent() -> None:
    _, record = make(agents=("team-a-*", "staging", "eu-[12]", "db?"))
    for agent in ("team-a-1", "team-a-", "staging", "eu-1", "eu-2", "db1"):
        assert record.may_target(agent), agent
    for agent in ("team-b-1", "staging-2", "eu-3", "db", "db12", "xteam-a-1"):
        assert not record.may_target(agent), agent
    assert not record.reaches_every_agent
    _, admin = make(Role.ADMIN, ())
    assert admin.may_target("anything") and admin.reaches_every_agent
    _, everywhere = make(Role.READ, ("*",))
    assert everywhere.reaches_every_agent


@pytest.mark.parametrize(
    ("role", "agents", "words"),
    [
        (Role.ADMIN, ("a",), "admin token reaches every agent"),
        (Role.SUBMIT, (), "needs the agents"),
        (Role.READ, (), "needs the agents"),
        (Role.SUBMIT, ("Team-A",), "can match no agent"),
        (Role.SUBMIT, ("a b",), "can match no agent"),
        (Role.SUBMIT, ("",), "can match no agent"),
    ],
)
def test_the_agents_a_role_needs(role: Role, agents: tuple[str, ...], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        check_agents(role, agents)


def test_patterns_are_kept_once_in_order() -> None:
    assert check_agents(Role.READ, ("b*", "a", "b*")) == ("b*", "a")
    assert check_pattern("team-[ab]-?.*") == "team-[ab]-?.*"


@pytest.mark.parametrize("name", ["", "-ci", "ci-", "c i", "ci\n", "x" * 65, "ci/deploy", "é"])
def test_names_that_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="token name"):
        check_name(name)


def test_names_that_are_fine() -> None:
    for name in ("ci", "CI.deploy_2", "a", "x" * 64):
        assert check_name(name) == name
