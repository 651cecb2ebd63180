"""What ships is tried where it runs: chroots, mount namespaces, runc, a booted systemd. Those
need root, so the tests skip without it on a developer's machine; in CI (``CI`` set, as
``.ci/run`` is run) a skip would hide that nothing was tried, so it is a failure instead."""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if os.environ.get("CI") and os.geteuid() != 0:
        pytest.fail(f"{item.nodeid}: tests/ship need root (chroot, mounts, runc); CI runs as root")
