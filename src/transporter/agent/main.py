"""``transporter agent``: the agent process."""

from __future__ import annotations

import sys

from transporter.config import AgentConfig


def main(settings: AgentConfig) -> int:
    print(
        f"transporter agent: {settings.agent_id}: the agent channel is not in this build yet",
        file=sys.stderr,
    )
    return 1
