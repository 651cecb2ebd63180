"""Write an OCI image layout folder as an ``oci-archive`` (a tar of the layout, what
``skopeo copy oci-archive:FILE ...`` reads): members in name order, one time, root's owner, so
that the same layout gives the same bytes (``skopeo copy`` to ``oci-archive:`` keeps the build
host's times)."""

from __future__ import annotations

import argparse
import tarfile
from pathlib import Path


def write_archive(layout: Path, out: Path, mtime: int) -> None:
    """Every file and folder under ``layout`` into the tar ``out``."""
    paths = sorted(layout.rglob("*"), key=lambda p: p.relative_to(layout).as_posix())
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for path in paths:
            info = tar.gettarinfo(str(path), path.relative_to(layout).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
            info.mode = 0o755 if info.isdir() else 0o644
            if info.isdir():
                tar.addfile(info)
            else:
                with path.open("rb") as data:
                    tar.addfile(info, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--layout", type=Path, required=True, help="the OCI layout folder")
    parser.add_argument("--mtime", type=int, required=True, help="seconds since the epoch")
    parser.add_argument("--out", type=Path, required=True, help="the archive to write")
    args = parser.parse_args()
    write_archive(args.layout, args.out, args.mtime)


if __name__ == "__main__":
    main()
