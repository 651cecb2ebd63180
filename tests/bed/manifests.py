"""What tests submit: manifests of the kinds they apply, with names no other test (or earlier
run on the same cluster) uses, and the body of ``POST /events``."""

from __future__ import annotations

import uuid
from typing import Any


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def namespace_yaml(name: str) -> str:
    return f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n"


def configmap_yaml(name: str, namespace: str | None, **data: str) -> str:
    ns = f"\n  namespace: {namespace}" if namespace else ""
    body = "".join(f'\n  {k}: "{v}"' for k, v in data.items()) or " {}"
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}{ns}\ndata:{body}\n"


def deployment_yaml(name: str, namespace: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: main
        image: registry.invalid/app:1
"""


def event_body(agent: str, *manifests: str, **extra: Any) -> dict[str, Any]:
    """``POST /events`` of ``manifests`` for ``agent``; ``extra``: more fields."""
    return {"target_agent": agent, "payload": {"manifests": list(manifests)}, **extra}


def configmap(name: str) -> str:
    """The smallest ConfigMap (no namespace: the agent's default one)."""
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
