"""Write the image's one layer: a root file system that holds the single file and nothing else
it does not need (no shell, no package manager), as an uncompressed tar for
``umoci raw add-layer``.

Written here rather than by unpacking and repacking a bundle, so that owners, modes and times
are exactly these whoever builds it (root or not), and the same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import attrs

NONROOT = 65532
"""The user and group the image runs as (distroless's ``nonroot``)."""

PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    f"nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUP = f"root:x:0:\nnobody:x:65534:\nnonroot:x:{NONROOT}:\n"
BINARY_PATH = "usr/local/bin/transporter"
LICENSE_PATH = "usr/share/doc/transporter/LICENSE"
DATA_DIR = "var/lib/transporter"


@attrs.frozen
class Entry:
    """One member of the layer: a folder when ``data`` is ``None``."""

    path: str
    mode: int
    uid: int = 0
    data: bytes | None = None


def entries(binary: bytes, license_text: bytes) -> list[Entry]:
    """The whole root: folders before what they hold."""
    folders = ["etc", "home", "usr", "usr/local", "usr/local/bin", "usr/share", "usr/share/doc"]
    folders += ["usr/share/doc/transporter", "var", "var/lib"]
    return [
        *(Entry(path, 0o755) for path in folders),
        Entry("etc/passwd", 0o644, data=PASSWD.encode()),
        Entry("etc/group", 0o644, data=GROUP.encode()),
        Entry("home/nonroot", 0o700, uid=NONROOT),
        Entry("tmp", 0o1777),
        Entry(DATA_DIR, 0o700, uid=NONROOT),
        Entry(BINARY_PATH, 0o755, data=binary),
        Entry(LICENSE_PATH, 0o644, data=license_text),
    ]


def write_layer(out: Path, members: list[Entry], mtime: int) -> None:
    """``members`` as a tar at ``out``, every time ``mtime``, owners by number only."""
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for entry in members:
            info = tarfile.TarInfo(entry.path)
            info.mode, info.mtime = entry.mode, mtime
            info.uid = info.gid = entry.uid
            if entry.data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--binary", type=Path, required=True, help="the single file")
    parser.add_argument("--license", type=Path, required=True, help="the LICENSE file")
    parser.add_argument("--mtime", type=int, required=True, help="seconds since the epoch")
    parser.add_argument("--out", type=Path, required=True, help="the tar to write")
    args = parser.parse_args()
    members = entries(args.binary.read_bytes(), args.license.read_bytes())
    write_layer(args.out, members, args.mtime)


if __name__ == "__main__":
    main()
