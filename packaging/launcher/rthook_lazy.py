# PyInstaller runtime hook of transporter.spec, run after rthook_argv0.py (which makes
# sys.executable the single file). The launcher unpacks only the core of the payload; the lazy
# members (compiled modules only some commands import, and the libraries only they load; see
# LAZY in pack.py, and a zip of the pure-Python packages only some commands import, see
# transporter.spec) stay in the file, each deflated on its own, after the core. Here a finder
# goes first on sys.meta_path: when an import needs a lazy module whose files are not yet in
# the folder, it extracts them from the file (bounded, SHA-256 checked against the index in
# the core, which the folder's name covers), each to a temporary name in its own folder then
# renamed into place, and gives the import their spec (a compiled module's file, or zipimport
# of the zip). Once there, a file is never written again.
#
# The file is opened once, here at the start, and read through that descriptor: replaced in
# place later (`install` makes a new inode), the running process still reads the file it was
# started from. A failure to extract raises ImportError (LazyMemberError) with a one-line
# message, so that a long-running process fails only what needed the module (as any import
# error); when it reaches the top uncaught (the role's first imports, at start), the hook in
# sys.excepthook writes that one line on stderr and exits with code 126, as the launcher.
#
# The index (_internal/transporter-lazy.txt, written by pack.py): one line per lazy file,
# "F name offset length size mode sha256" (offset from the end of the core payload, mode in
# octal), then one per lazy compiled module, "M module name...", its files in the order to
# extract (libraries first), then one per package of the zip, "P package zipname".
import os
import sys

_INDEX = "transporter-lazy.txt"
_MAX_INDEX = 1 << 20
_MAX_MEMBER = 256 << 20
_TRAILER_SIZE = 160
_TRAILER_MAGIC = b"TRANSPORTER-PAYLOAD-1 "
_LAUNCH_FAILED = 126


class LazyMemberError(ImportError):
    """A lazy member could not be extracted; the message is one line naming the fix."""


def _fail(message):
    raise LazyMemberError(message)


def _exit_with(message):
    os.write(2, f"transporter: {message}\n".encode(errors="backslashreplace"))
    os._exit(_LAUNCH_FAILED)


def _lazy_error(error, seen):
    """The LazyMemberError ``error`` is, holds (a group) or comes from, if any."""
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, LazyMemberError):
            return error
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                if (found := _lazy_error(inner, seen)) is not None:
                    return found
        error = error.__cause__ or error.__context__
    return None


def _one_line_hook(previous):
    def hook(kind, value, traceback):
        found = _lazy_error(value, set())
        if found is not None:
            _exit_with(str(found))
        previous(kind, value, traceback)

    return hook


class _LazyFinder:
    """Extracts a lazy module's files on its first import; finds nothing itself."""

    def __init__(self, folder, index, file):
        self._folder = folder
        self._index = index
        self._file = file
        try:  # the file we started from, even if it is replaced while we run
            self._fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
            self._open_error = None
        except OSError as error:
            self._fd = -1
            self._open_error = error.strerror
        self._files = None
        self._modules = {}
        self._packages = {}

    def _load(self):
        try:
            with open(self._index, "rb") as f:
                text = f.read(_MAX_INDEX + 1)
        except OSError as error:
            _fail(f"cannot read {self._index}: {error.strerror}: start it again")
        self._files = {}
        if len(text) > _MAX_INDEX:
            _fail(f"{self._index} is too large: remove {self._folder} to unpack it again")
        for line in text.decode().splitlines():
            kind, _, rest = line.partition(" ")
            fields = rest.split()
            if kind == "F" and len(fields) == 6:
                name, offset, length, size, mode, digest = fields
                numbers = (int(offset), int(length), int(size), int(mode, 8))
                self._files[name] = (*numbers, digest)
            elif kind == "M" and len(fields) >= 2 and all(n in self._files for n in fields[1:]):
                self._modules[fields[0]] = fields[1:]
            elif kind == "P" and len(fields) == 2 and fields[1] in self._files:
                self._packages[fields[0]] = fields[1]
            else:
                _fail(f"{self._index} is damaged: remove {self._folder} to unpack it again")

    def find_spec(self, fullname, path=None, target=None):
        if self._files is None:
            self._load()
        names = self._modules.get(fullname)
        if names is not None:
            self._have(names)
            return self._extension_spec(fullname, os.path.join(self._folder, names[-1]))
        parts = fullname.split(".")
        for end in range(1, len(parts) + 1):
            archive = self._packages.get(".".join(parts[:end]))
            if archive is not None:
                self._have([archive])
                import zipimport

                inside = os.path.join(self._folder, archive, *parts[:-1])
                return zipimport.zipimporter(inside).find_spec(fullname)
        return None

    def unpack_all(self):
        if self._files is None:
            self._load()
        self._have(sorted(self._files))

    def _have(self, names):
        for name in names:
            if not os.path.lexists(os.path.join(self._folder, name)):
                self._extract(name)

    @staticmethod
    def _extension_spec(fullname, path):
        """The spec of the compiled module at ``path`` (a package's when it is its
        ``__init__``): found here, since its package may come from the zip."""
        from importlib.machinery import ExtensionFileLoader
        from importlib.util import spec_from_file_location

        package = os.path.basename(path).startswith("__init__.")
        return spec_from_file_location(
            fullname,
            path,
            loader=ExtensionFileLoader(fullname, path),
            submodule_search_locations=[os.path.dirname(path)] if package else None,
        )
        return None

    def invalidate_caches(self):
        pass

    def _lazy_bounds(self):
        """Where the lazy members start and end in the file, once it is checked to be the file
        this folder was unpacked from."""
        if self._fd < 0:
            _fail(f"cannot read my own file {self._file}: {self._open_error}: start it again")
        size = os.fstat(self._fd).st_size
        fields = os.pread(self._fd, _TRAILER_SIZE, max(0, size - _TRAILER_SIZE)).split()
        if len(fields) != 4 or fields[0] + b" " != _TRAILER_MAGIC:
            _fail(f"{self._file} is damaged (no payload trailer): download it again")
        if fields[3].decode() != os.path.basename(self._folder):
            _fail(
                f"{self._file} is not the file {self._folder} was unpacked from (replaced while "
                "running?): start it again"
            )
        return int(fields[1]) + int(fields[2]), size - _TRAILER_SIZE

    def _member(self, name):
        """The bytes of lazy file ``name``, read from the file and checked."""
        import hashlib
        import zlib

        offset, length, size, _, digest = self._files[name]
        start, end = self._lazy_bounds()
        if not (offset >= 0 and 0 < length <= _MAX_MEMBER and size <= _MAX_MEMBER):
            _fail(f"{self._index} is damaged ({name}): remove {self._folder}")
        if start + offset + length > end:
            _fail(f"{self._file} is damaged (member {name} past its end): download it again")
        data = os.pread(self._fd, length, start + offset)
        if len(data) != length:
            _fail(f"{self._file} is damaged (member {name}: cut short): download it again")
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(data, size + 1)
        except zlib.error as error:
            _fail(f"{self._file} is damaged (member {name}: {error}): download it again")
        if len(out) != size or not inflater.eof or inflater.unused_data:
            _fail(f"{self._file} is damaged (member {name}: wrong size): download it again")
        if hashlib.sha256(out).hexdigest() != digest:
            _fail(f"{self._file} is damaged (member {name}: SHA-256 mismatch): download it again")
        return out

    def _check_folder(self, parent):
        """``parent`` must be a real folder of ours that no one else may write to."""
        try:
            info = os.lstat(parent)
        except FileNotFoundError:
            _fail(f"{self._folder} was removed while this program ran from it: start it again")
        if not os.path.isdir(parent) or os.path.islink(parent):
            _fail(f"refusing to unpack into {parent}: it is not a folder: remove {self._folder}")
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            _fail(
                f"refusing to unpack into {parent}: it belongs to uid {info.st_uid} with mode "
                f"{info.st_mode & 0o777:03o}: set TRANSPORTER_UNPACK_DIR to a folder of yours, "
                "or unpack everything where it is made (TRANSPORTER_UNPACK_ALL=1, as for an image)"
            )

    def _extract(self, name):
        data = self._member(name)
        target = os.path.join(self._folder, name)
        parent = os.path.dirname(target)
        partial = os.path.join(
            parent, f".{os.path.basename(name)}.partial-{os.getpid()}-{os.urandom(4).hex()}"
        )
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(partial, flags, self._files[name][3])
        except OSError as error:
            self._check_folder(parent)
            _fail(
                f"cannot unpack {name} into {self._folder}: {error.strerror}: set "
                "TRANSPORTER_UNPACK_DIR to a writable folder"
            )
        try:
            self._check_folder(parent)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(partial, target)  # the same bytes if another start won: either is fine
        except BaseException as error:  # the process may live on: leave nothing behind
            if fd >= 0:
                os.close(fd)
            if os.path.lexists(partial):
                os.unlink(partial)
            if not isinstance(error, OSError):
                raise
            _fail(
                f"cannot unpack {name} into {self._folder}: {error.strerror}: set "
                "TRANSPORTER_UNPACK_DIR to a writable folder with more room"
            )


def _install():
    internal = getattr(sys, "_MEIPASS", None)
    if internal is None:
        return
    folder = os.path.dirname(internal)
    index = os.path.join(internal, _INDEX)
    # Unpacked by the launcher (not PyInstaller's own folder, which holds everything).
    if os.path.exists(os.path.join(folder, ".complete")) and os.path.exists(index):
        finder = _LazyFinder(folder, index, sys.executable)
        sys.meta_path.insert(0, finder)
        sys.excepthook = _one_line_hook(sys.excepthook)
        # Everything at once, for a folder that will be read-only (one an image holds).
        if os.environ.get("TRANSPORTER_UNPACK_ALL") == "1":
            try:
                finder.unpack_all()
            except LazyMemberError as error:
                _exit_with(str(error))


_install()
del _install
