"""Run a program under the kernel's memory-deny-write-execute (``prctl(PR_SET_MDWE)``, Linux
6.3 and later): no mapping may be writable and executable, nor become executable. It is what
``MemoryDenyWriteExecute=yes`` asks of a systemd unit (newer systemd uses this prctl when the
kernel has it; 252, Debian 12's, a seccomp filter to the same end), so the tests try the single
file under the kernel's own rule too, beside the units run under systemd.

    python tests/bed/mdwe.py PROGRAM [ARG ...]     (the setting holds across execve)

Exit code 125 when the kernel does not have it. Standalone: nothing of ours is imported.
"""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_MDWE = 65
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1
UNSUPPORTED = 125


def deny_write_execute() -> None:
    """Turn it on for this process and what it executes; exit 125 if the kernel cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        print(f"mdwe: PR_SET_MDWE: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        raise SystemExit(UNSUPPORTED)
    if libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) != PR_MDWE_REFUSE_EXEC_GAIN:
        raise SystemExit(UNSUPPORTED)


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: mdwe.py PROGRAM [ARG ...]")
    deny_write_execute()
    os.execv(sys.argv[1], sys.argv[1:])  # noqa: S606 - its one job: become PROGRAM


if __name__ == "__main__":
    main()
