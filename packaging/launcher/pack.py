"""Pack PyInstaller's one-folder program into dist/transporter: the static launcher, then the
folder and the glibc it was built with as one deflated payload (the core, which every start
unpacks), then the lazy members each deflated on its own, then a trailer naming the core's
SHA-256 (the folder the launcher unpacks it into). See README.md beside this file.

    python packaging/launcher/pack.py --tree build/onedir/transporter --launcher build/launcher \
        --out dist/transporter

The program's PT_INTERP is set to a long placeholder, which the launcher overwrites with the
path of the unpacked loader. The glibc pieces are not a hand list: every ELF file of the folder
is asked (``ldd``) what it loads, and whatever is not already in the folder is copied from where
the build host's loader finds it. Any RUNPATH naming a folder of the build host is removed
(patchelf), and the result is checked: every library each file needs is then in ``_internal``.

The lazy members (``LAZY``: compiled modules only some commands import, and the libraries only
they load) are left out of the core; the core holds their index (``LAZY_INDEX``: for each
module the files it needs, for each file its place after the core, size, mode and SHA-256), by
which ``rthook_lazy.py`` extracts one when an import first needs it.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

TRAILER_SIZE = 160
TRAILER_MAGIC = b"TRANSPORTER-PAYLOAD-1 "
LOADER = "ld-linux-x86-64.so.2"
PROGRAM = "transporter"
INTERP_PLACEHOLDER = "/" + "transporter-unpack-folder-placeholder/" * 13
"""The program's PT_INTERP until the launcher writes there where it unpacked the loader: the
room that path has (the unpack folder's path may be about 400 bytes long)."""
LIBDIR = "_internal"
MARKER = ".complete"  # written by the launcher once a folder is whole; never in the payload
LAZY_INDEX = f"{LIBDIR}/transporter-lazy.txt"
"""The index of the lazy members, in the core (read by rthook_lazy.py; its format is there)."""
EXTENSION = ".cpython-313-x86_64-linux-gnu.so"
DYNLOAD = f"{LIBDIR}/python3.13/lib-dynload/"
LAZY_MODULES = f"{LIBDIR}/transporter-lazy-modules.zip"
"""The bytecode of the pure-Python packages only some commands import (transporter.spec)."""
LAZY = [
    LAZY_MODULES,
    # cryptography (the control plane's key files, read by its child; bundle create) and cffi.
    f"{LIBDIR}/cryptography/*",
    f"{LIBDIR}/_cffi_backend{EXTENSION}",
    # The embedded store's SQLite, and the Redis store's client (coredis, compiled by mypyc).
    f"{DYNLOAD}_sqlite3{EXTENSION}",
    f"{LIBDIR}/libsqlite3.so.*",
    f"{LIBDIR}/*__mypyc{EXTENSION}",
    f"{LIBDIR}/coredis/*",
    # The control plane's web stack only (quart's markupsafe, wrapt).
    f"{LIBDIR}/markupsafe/_speedups{EXTENSION}",
    f"{LIBDIR}/wrapt/_wrappers{EXTENSION}",
    # Rarely used: decimal numbers, the CJK codecs, csv, subinterpreters,
    # multiprocessing's shared memory, asyncio's C part (trio is ours), hashlib's own hashes
    # (OpenSSL's are used), uuid's C part, mmap, resource, termios, statistics.
    f"{DYNLOAD}_decimal{EXTENSION}",
    f"{DYNLOAD}_asyncio{EXTENSION}",
    f"{DYNLOAD}_statistics{EXTENSION}",
    f"{DYNLOAD}_uuid{EXTENSION}",
    f"{LIBDIR}/libuuid.so.*",
    f"{DYNLOAD}_md5{EXTENSION}",
    f"{DYNLOAD}_sha1{EXTENSION}",
    f"{DYNLOAD}_sha2{EXTENSION}",
    f"{DYNLOAD}_sha3{EXTENSION}",
    f"{DYNLOAD}mmap{EXTENSION}",
    f"{DYNLOAD}resource{EXTENSION}",
    f"{DYNLOAD}termios{EXTENSION}",
    f"{DYNLOAD}_codecs_*{EXTENSION}",
    f"{DYNLOAD}_multibytecodec{EXTENSION}",
    f"{DYNLOAD}_csv{EXTENSION}",
    f"{DYNLOAD}_interpreters{EXTENSION}",
    f"{DYNLOAD}_interpqueues{EXTENSION}",
    f"{DYNLOAD}_multiprocessing{EXTENSION}",
    f"{DYNLOAD}_posixshmem{EXTENSION}",
]
"""The files no start of an agent, of produce or of ``--version`` loads (tests/ship/
test_static_file.py checks that an agent's start extracts none): unpacked on first use only.
Only compiled files (ELF) and LAZY_MODULES can be lazy: only an import can ask for them."""
LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(/\S+)\s+\(0x[0-9a-f]+\)$")
LDD_LOADER = re.compile(r"^\s*(/\S*ld-linux[^\s]*)\s+\(0x[0-9a-f]+\)$")


def is_elf(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def elf_files(tree: Path) -> list[Path]:
    return sorted(p for p in tree.rglob("*") if is_elf(p))


def dynamic(path: Path) -> tuple[list[str], list[str]]:
    """The NEEDED names and the RPATH/RUNPATH folders of one ELF file (``readelf -d``)."""
    out = subprocess.run(
        ["readelf", "-d", str(path)], capture_output=True, text=True, check=True
    ).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)
    paths = re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[([^\]]+)\]", out)
    return needed, [part for joined in paths for part in joined.split(":")]


def host_libraries(files: list[Path]) -> dict[str, Path]:
    """Every library the build host's loader gives these files, by the name they ask for."""
    found: dict[str, Path] = {}
    for path in files:
        done = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=False)
        for line in done.stdout.splitlines():
            if named := LDD_LINE.match(line):
                found.setdefault(named[1], Path(named[2]))
            elif loader := LDD_LOADER.match(line):
                found.setdefault(Path(loader[1]).name, Path(loader[1]))
    return found


def add_host_libraries(tree: Path) -> list[str]:
    """Copy into ``_internal`` each library the files load that the folder lacks (glibc's
    pieces, and anything else the host supplied); returns their names."""
    libdir = tree / LIBDIR
    have = {p.name for p in libdir.iterdir()}
    added = []
    for name, source in sorted(host_libraries(elf_files(tree)).items()):
        if name not in have:
            shutil.copyfile(source.resolve(), libdir / name)
            os.chmod(libdir / name, 0o755)  # noqa: S103 - a library, as the host has it
            added.append(name)
    if LOADER not in have and LOADER not in added:
        raise SystemExit(f"pack: the host's loader {LOADER} was not found by ldd")
    return added


def drop_host_runpaths(tree: Path, patchelf: str) -> None:
    """Remove RPATH/RUNPATH that name folders of the build host (pyenv's libpython and
    lib-dynload carry one); the launcher gives the loader ``_internal`` instead."""
    for path in elf_files(tree):
        _, paths = dynamic(path)
        if any(not p.startswith("$ORIGIN") for p in paths):
            subprocess.run([patchelf, "--remove-rpath", str(path)], check=True)


def check_closure(tree: Path) -> None:
    """Each library any file needs is in ``_internal`` (or beside it, by its own $ORIGIN)."""
    libdir = tree / LIBDIR
    have = {p.name for p in libdir.iterdir()}
    missing = []
    for path in elf_files(tree):
        needed, paths = dynamic(path)
        own = {
            q.name
            for p in paths
            if (folder := Path(p.replace("$ORIGIN", str(path.parent)))).is_dir()
            for q in folder.iterdir()
        }
        missing += [f"{path.relative_to(tree)}: {n}" for n in needed if n not in have | own]
    if missing:
        raise SystemExit("pack: libraries not in the folder: " + ", ".join(missing))


def lazy_files(tree: Path) -> list[str]:
    """The files of ``tree`` (relative names) that ``LAZY`` names; each pattern must name one."""
    names = [str(p.relative_to(tree)) for p in elf_files(tree)] + [LAZY_MODULES]
    lazy = set()
    for pattern in LAZY:
        matched = fnmatch.filter(names, pattern)
        if not matched:
            raise SystemExit(f"pack: LAZY's {pattern} names no compiled file of the folder")
        lazy.update(matched)
    return sorted(lazy)


def module_name(name: str) -> str | None:
    """The module a compiled file of ``_internal`` is imported as, or None for a library."""
    if not name.startswith(LIBDIR + "/") or (".cpython-" not in name and ".abi3." not in name):
        return None
    inner = name.removeprefix(LIBDIR + "/").removeprefix(DYNLOAD.removeprefix(LIBDIR + "/"))
    return inner.split(".", 1)[0].replace("/", ".").removesuffix(".__init__")


def lazy_modules(tree: Path, lazy: list[str]) -> dict[str, list[str]]:
    """For each lazy module, its lazy files: the libraries it loads (theirs first) then itself.
    A core file that needs a lazy library is an error (the loader cannot wait for it)."""
    libraries = {Path(name).name: name for name in lazy if module_name(name) is None}

    def needs(name: str, seen: list[str]) -> list[str]:
        for needed in dynamic(tree / name)[0]:
            if needed in libraries and libraries[needed] not in seen:
                seen.insert(0, libraries[needed])
                needs(libraries[needed], seen)
        return seen

    for path in elf_files(tree):
        name = str(path.relative_to(tree))
        if name not in lazy and (wanted := set(dynamic(path)[0]) & set(libraries)):
            raise SystemExit(f"pack: {name} is in the core but needs lazy {sorted(wanted)}")
    found = {}
    for name in lazy:
        if (module := module_name(name)) is not None:
            found[module] = [*needs(name, []), name]
    return found


def zip_roots(archive: Path) -> list[str]:
    """The packages and modules of the zip ``archive`` whose parent is not in it: the names
    under which rthook_lazy.py imports from it."""
    names = set()
    for entry in zipfile.ZipFile(archive).namelist():
        if not entry.endswith("/"):
            names.add(entry.removesuffix(".pyc").removesuffix("/__init__").replace("/", "."))
    return sorted(n for n in names if n.rpartition(".")[0] not in names)


def write_lazy_index(tree: Path, lazy: list[str], blobs: dict[str, tuple[int, int]]) -> None:
    """``LAZY_INDEX``: ``F name offset length size mode sha256`` for each lazy file (offset
    from the end of the core payload), then ``M module name...`` for each lazy compiled
    module, then ``P package zip`` for each package imported from LAZY_MODULES."""
    lines = []
    for name in lazy:
        path = tree / name
        if any(c.isspace() for c in name):
            raise SystemExit(f"pack: lazy file {name} has a space in its name")
        mode = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        offset, length = blobs[name]
        lines.append(f"F {name} {offset} {length} {path.stat().st_size} {mode:o} {digest}")
    for module, names in sorted(lazy_modules(tree, lazy).items()):
        lines.append(f"M {module} {' '.join(names)}")
    for root in zip_roots(tree / LAZY_MODULES):
        lines.append(f"P {root} {LAZY_MODULES}")
    (tree / LAZY_INDEX).write_text("".join(f"{line}\n" for line in lines))


def lazy_blobs(tree: Path, lazy: list[str]) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """Each lazy file deflated on its own, one after the other: the bytes, and where each is."""
    out = bytearray()
    where = {}
    for name in lazy:
        blob = zlib.compress((tree / name).read_bytes(), 9)
        where[name] = (len(out), len(blob))
        out += blob
    return bytes(out), where


def entries(tree: Path, skip: frozenset[str] = frozenset()) -> Iterator[bytes]:
    """The payload's records, folders before what they hold, in a fixed order: kind, mode,
    name length, data length (little-endian), name, data. Modes are 0755 or 0644. The files
    named in ``skip`` (the lazy ones) are left out; their folders are not."""
    for path in sorted(tree.rglob("*"), key=lambda p: p.relative_to(tree).parts):
        name = str(path.relative_to(tree)).encode()
        if name.decode() in skip:
            continue
        if path.name == MARKER and path.parent == tree:
            raise SystemExit(f"pack: {path} would be taken for the launcher's marker")
        if path.is_symlink():
            target = os.readlink(path).encode()
            if target.startswith(b"/"):
                raise SystemExit(f"pack: {path} links outside the folder")
            yield struct.pack("<cIIQ", b"L", 0o777, len(name), len(target)) + name + target
        elif path.is_dir():
            yield struct.pack("<cIIQ", b"D", 0o755, len(name), 0) + name
        else:
            data = path.read_bytes()
            mode = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
            yield struct.pack("<cIIQ", b"F", mode, len(name), len(data)) + name + data
    yield struct.pack("<cIIQ", b"E", 0, 0, 0)


def pack(tree: Path, launcher: Path, out: Path) -> str:
    lazy = lazy_files(tree)
    lazy_data, blobs = lazy_blobs(tree, lazy)
    write_lazy_index(tree, lazy, blobs)
    digest = hashlib.sha256()
    compressor = zlib.compressobj(9)
    payload = bytearray()
    for record in entries(tree, frozenset(lazy)):
        digest.update(record)
        payload += compressor.compress(record)
    payload += compressor.flush()
    front = launcher.read_bytes()
    trailer = TRAILER_MAGIC + f"{len(front):020d} {len(payload):020d} {digest.hexdigest()}".encode()
    trailer = trailer.ljust(TRAILER_SIZE - 1, b" ") + b"\n"
    assert len(trailer) == TRAILER_SIZE
    partial = out.with_name(out.name + ".partial")
    partial.write_bytes(front + payload + lazy_data + trailer)
    partial.chmod(0o755)
    partial.replace(out)
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, required=True, help="PyInstaller's one folder")
    parser.add_argument("--launcher", type=Path, required=True, help="the static launcher")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--patchelf", default=str(Path(sys.executable).parent / "patchelf"))
    args = parser.parse_args()
    drop_host_runpaths(args.tree, args.patchelf)
    added = add_host_libraries(args.tree)
    check_closure(args.tree)
    program = str(args.tree / PROGRAM)
    subprocess.run([args.patchelf, "--set-interpreter", INTERP_PLACEHOLDER, program], check=True)
    digest = pack(args.tree, args.launcher, args.out)
    print(f"added from the build host: {' '.join(added)}")
    print(f"{args.out}: payload {digest}")
    index = (args.tree / LAZY_INDEX).read_text().splitlines()
    lazy_size = sum(int(line.split()[4]) for line in index if line.startswith("F "))
    print(f"lazy: {sum(1 for line in index if line.startswith('F '))} files, {lazy_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
