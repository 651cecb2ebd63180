"""A :class:`KubeTarget` on the session's real API server, and unique names to use in it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from tests.bed.kube import Cluster
from transporter.kube import KubeTarget


@pytest.fixture
async def target(cluster: Cluster) -> AsyncIterator[KubeTarget]:
    async with KubeTarget.connect(cluster.kubeconfig, timeout=10.0) as connected:
        yield connected


@pytest.fixture
def unique() -> str:
    """A name part no other test (or earlier run on the same cluster) uses."""
    return uuid.uuid4().hex[:10]
