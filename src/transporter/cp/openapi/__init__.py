"""The control plane's HTTP API described in OpenAPI 3.1, served at ``GET /openapi.json``.

Written by hand to match the handlers in :mod:`transporter.cp.api`. Two tests keep it honest:
``tests/badinput/test_openapi.py`` compares its paths and methods with the app's routes, and
``tests/badinput/test_schemathesis.py`` runs schemathesis over it against a real control plane
(answers must match the statuses and schemas written here).

One module per resource (:mod:`.events`, :mod:`.rollouts`, :mod:`.agents`, :mod:`.audit`,
:mod:`.health`, :mod:`.metrics`), the shared bodies in :mod:`.schemas` (and
:mod:`.rollout_schemas`), tokens and roles in :mod:`.security`. Every bound it states comes from
the validators' constants (or :mod:`.bounds`, where they have none yet), so the document cannot
promise what the API refuses.
"""

from __future__ import annotations

from typing import Any

from transporter.cp.openapi import agents, audit, events, health, metrics, queue, rollouts
from transporter.cp.openapi.schemas import schemas
from transporter.cp.openapi.security import BEARER, OPEN_OPERATIONS, ROLES, secure

__all__ = ["OPEN_OPERATIONS", "ROLES", "openapi_document"]


def openapi_document(
    *, version: str, max_wait: float, max_limit: int, max_batch: int
) -> dict[str, Any]:
    """The document; the numbers are the handlers' own limits, passed in by
    :mod:`transporter.cp.api`."""
    paths: dict[str, Any] = {
        **events.paths(max_wait=max_wait, max_limit=max_limit, max_batch=max_batch),
        **rollouts.paths(),
        **agents.paths(),
        **audit.paths(max_limit=max_limit),
        **queue.paths(max_limit=max_limit),
        **health.paths(),
        **metrics.paths(),
    }
    secure(paths)
    return {
        "openapi": "3.1.0",
        "security": [{"bearer": []}],
        "info": {
            "title": "Transporter control plane",
            "version": version,
            "description": (
                "Events for agents on clusters that cannot be reached from outside. Every "
                "answer is JSON, errors included: ``{error, message}`` plus ``field`` when a "
                "submitted field is at fault."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {**schemas(), **queue.schemas()},
            "securitySchemes": {"bearer": BEARER},
        },
    }
