# PyInstaller runtime hook of transporter.spec, run before our code in the frozen program.
# The launcher (packaging/launcher/launcher.c) starts the unpacked program with argv[0] its
# path (PyInstaller finds its _internal folder by it when there is no /proc) and the unpacked
# libraries (glibc's included) on LD_LIBRARY_PATH; it passes what the user had in variables.
# Here Python gets the user's argv[0] back, and the environment the user's LD_LIBRARY_PATH, so
# that the programs we start (a kubeconfig's exec plugin) load their own libraries, and no
# child process sees the launcher's variables.
import os
import sys

_file = os.environ.pop("TRANSPORTER_LAUNCHER_FILE", None)
_argv0 = os.environ.pop("TRANSPORTER_LAUNCHER_ARGV0", None)
_user_path = os.environ.pop("TRANSPORTER_LAUNCHER_LD_LIBRARY_PATH", None)
if _file is not None:
    sys.executable = _file
    if _argv0 is not None and sys.argv:
        sys.argv[0] = _argv0
    os.environ.pop("LD_LIBRARY_PATH_ORIG", None)  # PyInstaller's copy of the launcher's
    # Its bootloader's own (read only by a bootloader at its start, never by Python): a child
    # (an exec plugin; our own file started again) must not see them.
    for _name in [n for n in os.environ if n.startswith("_PYI_")]:
        del os.environ[_name]
    if _user_path is not None:
        os.environ["LD_LIBRARY_PATH"] = _user_path
    else:
        os.environ.pop("LD_LIBRARY_PATH", None)
del _file, _argv0, _user_path
globals().pop("_name", None)
