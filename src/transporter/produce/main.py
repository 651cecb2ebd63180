"""``transporter produce``: the producer."""

from __future__ import annotations

import sys

from transporter.config import ProduceConfig


def main(settings: ProduceConfig) -> int:
    print(
        f"transporter produce: submitting to {settings.cp_url} is not in this build yet",
        file=sys.stderr,
    )
    return 1
