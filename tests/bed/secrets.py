"""A Secret whose values tests look for wherever they must not show (redaction, scrubbing)."""

from __future__ import annotations

import base64

DATA = "s3cr3t-DATA-42"
STRING = "s3cr3t-STRING-42"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SECRET = f"""apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: team-a
type: Opaque
data:
  token: {b64(DATA)}   # {DATA}
stringData:
  password: {STRING}
"""


def leaks(text: str, *values: str) -> list[str]:
    return [v for v in values if v in text]
