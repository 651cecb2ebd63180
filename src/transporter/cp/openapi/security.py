"""Who may call what: the bearer scheme, and each operation's least role, 401 and 403."""

from __future__ import annotations

from typing import Any

from transporter.cp.openapi.parts import error
from transporter.security.tokens import PREFIX, Role

OPEN_OPERATIONS = frozenset({"healthz", "readyz", "openapi"})
"""Operations that need no token."""
ROLES: dict[str, str] = {
    "submitEvent": Role.SUBMIT.value,
    "submitEvents": Role.SUBMIT.value,
    "listEvents": Role.READ.value,
    "getEvent": Role.READ.value,
    "listAgents": Role.READ.value,
    "getAgent": Role.READ.value,
    "listAudit": Role.ADMIN.value,
    "listDeadLetters": Role.READ.value,
    "getMetrics": Role.READ.value,
    "listRollouts": Role.READ.value,
    "getRollout": Role.READ.value,
    "approveRollout": Role.SUBMIT.value,
    "cancelRollout": Role.SUBMIT.value,
    "closeRollout": Role.SUBMIT.value,
    "cancelEvent": Role.SUBMIT.value,
    "submitPlan": Role.SUBMIT.value,
    "listPlans": Role.READ.value,
    "getPlan": Role.READ.value,
    "applyPlan": Role.SUBMIT.value,
}
"""The least role of a token each other operation needs (the app's own declarations in
:mod:`transporter.cp.api` must agree: ``tests/badinput/test_openapi.py``)."""

BEARER: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": (
        f"An API token, ``{PREFIX}_<id>_<secret>``, from ``transporter token create`` "
        f"on the control plane's host. Its role ({', '.join(Role)}) says which "
        "operations it may call (``x-transporter-role``: the least role each "
        "needs); a read or submit token reaches only the agents its glob "
        "patterns match: other agents' events and agents are left out of "
        "listings and refused (403) by name."
    ),
}

_UNAUTHORIZED = error(
    "No valid token (``unauthorized``): none, not a token, unknown, or revoked; "
    "with ``WWW-Authenticate: Bearer``."
)


def secure(paths: dict[str, Any]) -> None:
    """Mark the open operations, and give every other one its role and its 401 and 403.

    Done over the finished paths, so that no operation can be written without them; an
    operation missing from :data:`ROLES` defaults to admin, the safe side.
    """
    for item in paths.values():
        for operation in item.values():
            name = operation["operationId"]
            if name in OPEN_OPERATIONS:
                operation["security"] = []
                continue
            role = ROLES.get(name, Role.ADMIN.value)
            operation["x-transporter-role"] = role
            operation["responses"]["401"] = _UNAUTHORIZED
            operation["responses"]["403"] = error(
                f"The token may not do this (``forbidden``): this operation needs role {role} "
                "(or above), or the agent is outside the token's patterns. The message says which."
            )
