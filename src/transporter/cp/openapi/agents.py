"""``/agents``: the agents that registered, and where each stands."""

from __future__ import annotations

from typing import Any

from transporter.cp.openapi.parts import UNAVAILABLE, answer, error, path, ref


def paths() -> dict[str, Any]:
    return {
        "/agents": {
            "get": {
                "operationId": "listAgents",
                "summary": "Every agent that ever registered, by id.",
                "responses": {
                    "200": answer("The agents.", ref("AgentList")),
                    "503": UNAVAILABLE,
                },
            }
        },
        "/agents/{agent_id}": {
            "get": {
                "operationId": "getAgent",
                "summary": "One agent: status, heartbeat, cluster, labels, capabilities.",
                "parameters": [path("agent_id", "The agent's id.")],
                "responses": {
                    "200": answer("The agent.", ref("Agent")),
                    "404": error("No agent with this id ever registered (``not_found``)."),
                    "503": UNAVAILABLE,
                },
            }
        },
    }
