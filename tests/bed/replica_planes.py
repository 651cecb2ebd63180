"""Control-plane replicas as processes users run, on one store: started with one another's
keys (tests of several replicas)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.bed.roles import ControlPlaneProcess

SHARED_KEYS = ("ca.crt", "ca.key", "event-signing.key")
"""What replicas on one store share: the CA agents trust and the key events are signed with."""


@contextmanager
def replicas(
    tmp_path: Path, store: str, count: int, flags: Sequence[str] = ()
) -> Iterator[list[ControlPlaneProcess]]:
    """``count`` control planes on ``store``, started, the later ones with the first's keys;
    ``flags``: more flags of each."""
    planes = [
        ControlPlaneProcess(
            tmp_path / f"cp-{n}", tmp_path / f"cp-{n}.log", store=store, flags=flags
        )
        for n in range(count)
    ]
    try:
        planes[0].start()
        for plane in planes[1:]:
            plane.data_dir.mkdir(parents=True)
            for name in SHARED_KEYS:
                shutil.copy2(planes[0].data_dir / name, plane.data_dir / name)
            plane.start()
        yield planes
    finally:
        for plane in planes:
            plane.stop()
