"""``make demo`` (scripts/demo.py) as a newcomer meets it: a port in use is said in one line
naming the variable that moves it, and the logs it points to are still there after Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bed.process import Child, free_port

REPO = Path(__file__).resolve().parents[1]
DEMO = (sys.executable, str(REPO / "scripts" / "demo.py"))


def _env(api: str, agents: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSPORTER_", "DEMO_"))}
    return clean | {"PYTHONPATH": str(REPO), "DEMO_API": api, "DEMO_AGENT_LISTEN": agents}


@pytest.mark.parametrize("variable", ["DEMO_API", "DEMO_AGENT_LISTEN"])
def test_a_port_in_use_is_said_in_one_line_naming_its_variable(variable: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        free = f"127.0.0.1:{free_port()}"
        api, agents = (address, free) if variable == "DEMO_API" else (free, address)
        done = subprocess.run(
            DEMO, capture_output=True, text=True, env=_env(api, agents), timeout=60, check=False
        )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"make demo: {address} is in use; set {variable}=127.0.0.1:PORT")
    assert "cluster" not in done.stdout  # nothing was started


def test_the_demo_runs_and_the_logs_it_names_outlive_it(kube_bin: Path) -> None:
    api, agents = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    demo = Child(DEMO, env=_env(api, agents))
    try:
        demo.wait_for(re.compile("Everything keeps running until Ctrl-C"))
        assert re.search(r"completed\s+completed", demo.output), demo.output
        demo.popen.send_signal(signal.SIGINT)
        assert demo.popen.wait(timeout=60) == 0, demo.tail()
    finally:
        demo.stop()
    named = re.findall(r"\(log (\S+\.log)\)", demo.output)
    assert len(named) == 2, demo.output
    for log in map(Path, named):
        assert log.is_file() and log.stat().st_size > 0, log
    assert "listening on" in Path(named[0]).read_text()
    kept = re.search(r"logs kept in (\S+)", demo.output)
    assert kept is not None and Path(kept.group(1)) == Path(named[0]).parent
    shutil.rmtree(kept.group(1))  # the user's to remove; here, the test's
