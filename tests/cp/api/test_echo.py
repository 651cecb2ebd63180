"""An id the caller sent, repeated in a refusal's message, is cut to a bound
(:mod:`transporter.cp.api.echo`), on every route that says which one it did not find."""

from __future__ import annotations

from tests.bed.clients import assert_error
from tests.bed.harness import ControlPlane
from tests.cp.api.conftest import PAYLOAD, call
from transporter.cp.api.echo import MAX_ECHO, quoted
from transporter.security.tokens import Role

LONG = "x" * 3000


def test_a_short_id_is_quoted_whole_and_a_long_one_cut() -> None:
    assert quoted("web-1") == "'web-1'"
    assert quoted("a" * MAX_ECHO) == repr("a" * MAX_ECHO)
    assert quoted(LONG) == f"{'x' * MAX_ECHO!r}… (3000 characters)"


async def test_refusals_cut_the_ids_they_repeat(cp: ControlPlane) -> None:
    plan = {"id": "p1", "target_agents": ["a-1"], "payload": PAYLOAD}
    assert (await call(cp, "POST", "/plans", plan)).status == 202
    scoped = await cp.new_token("team-a", Role.SUBMIT, ("team-a-*",))
    asked = [
        ("GET", f"/events/{LONG}", None, 404),
        ("POST", f"/events/{LONG}/cancel", None, 404),
        ("GET", f"/agents/{LONG}", None, 404),
        ("GET", f"/rollouts/{LONG}", None, 404),
        ("GET", f"/plans/{LONG}", None, 404),
        ("GET", f"/plans/p1?agent={LONG}", None, 404),
        ("POST", f"/rollouts/{LONG}/cancel", None, 404),
        ("POST", f"/rollouts/{LONG}/approve", None, 404),
        ("POST", f"/rollouts/{LONG}/close", None, 404),
        ("POST", f"/plans/{LONG}/apply", None, 404),
        ("GET", f"/events?agent={LONG}", scoped, 403),
    ]
    for method, path, token, status in asked:
        answer = await call(cp, method, path, token=token)
        code = "not_found" if status == 404 else "forbidden"
        message = assert_error(answer, status, code)["message"]
        assert "x" * (MAX_ECHO + 1) not in message, (path, message)
        assert "… (3000 characters)" in message, (path, message)
