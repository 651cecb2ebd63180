"""``/audit``: the audit log, for admins."""

from __future__ import annotations

from typing import Any

from transporter.cp.openapi.bounds import AUDIT_PAGE
from transporter.cp.openapi.parts import BAD_QUERY, CURSOR, UNAVAILABLE, answer, limit, ref


def paths(*, max_limit: int) -> dict[str, Any]:
    return {
        "/audit": {
            "get": {
                "operationId": "listAudit",
                "summary": "Who asked for what, where it ran, how it ended; newest first.",
                "parameters": [limit(AUDIT_PAGE, max_limit), CURSOR],
                "responses": {
                    "200": answer("A page of audit entries.", ref("AuditPage")),
                    "400": BAD_QUERY,
                    "503": UNAVAILABLE,
                },
            }
        }
    }
