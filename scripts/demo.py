"""``make demo``: the main job, on one machine, left running for you to explore.

A control plane on the embedded store, an agent on a local cluster (the test bed's, or yours
with ``DEMO_KUBECONFIG=~/.kube/config make demo``), and an example event (examples/hello)
applied with its phases shown live. Ctrl-C stops everything and removes the demo's data.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from types import FrameType

from tests.bed.kube import running_cluster

REPO = Path(__file__).resolve().parents[1]
TRANSPORTER = (sys.executable, "-m", "transporter")
API = os.environ.get("DEMO_API", "127.0.0.1:8080")
AGENTS = os.environ.get("DEMO_AGENT_LISTEN", "127.0.0.1:8443")
AGENT_ID = "demo-agent"


def wait_for_agent(api: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{api}/agents/{AGENT_ID}", timeout=2) as answer:
                if json.load(answer)["status"] == "connected":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the agent did not connect; see its log")


def main() -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    work = Path(tempfile.mkdtemp(prefix="transporter-demo-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        given = os.environ.get("DEMO_KUBECONFIG")
        if given:
            kubeconfig = Path(given).expanduser()
            print(f"cluster        yours: {kubeconfig}")
        else:
            print("cluster        starting a local kube-apiserver (the test bed's) ...", flush=True)
            cluster = stack.enter_context(running_cluster("demo", work / "demo"))
            kubeconfig = cluster.kubeconfig
            print(f"cluster        {cluster.server}")

        def start(name: str, *argv: str) -> subprocess.Popen[bytes]:
            log = (work / f"{name}.log").open("wb")
            stack.callback(log.close)
            process = subprocess.Popen([*TRANSPORTER, *argv], stdout=log, stderr=log)
            stack.callback(process.wait)
            stack.callback(process.send_signal, signal.SIGTERM)
            return process

        cp = start(
            "cp", "cp", "--listen", API, "--agent-listen", AGENTS, "--data-dir", str(work / "cp")
        )
        print(f"control plane  http://{API}  (log {work / 'cp.log'})")
        agent = start(
            "agent",
            "agent",
            "--agent-id",
            AGENT_ID,
            "--cluster-name",
            "demo",
            "--cp-url",
            f"ws://{AGENTS}/ws",
            "--kubeconfig",
            str(kubeconfig),
            "--label",
            "env=demo",
        )
        print(f"agent          {AGENT_ID}  (log {work / 'agent.log'})", flush=True)
        wait_for_agent(API, time.monotonic() + 60)
        print(
            "\nevent          apply examples/hello through the agent, phases as they happen:\n",
            flush=True,
        )
        subprocess.run(
            [
                *TRANSPORTER,
                "produce",
                "k8s",
                "--agent",
                AGENT_ID,
                "--cp-url",
                f"http://{API}",
                "--manifest",
                str(REPO / "examples" / "hello"),
                "--wait",
            ],
            check=False,
        )
        produce = " ".join(["transporter", "produce"])
        print(
            f"""
Everything keeps running until Ctrl-C. Try, in another terminal (. .venv/bin/activate):
  {produce} get agents --cp-url http://{API}
  {produce} get events --cp-url http://{API}
  {produce} k8s --agent {AGENT_ID} --manifest examples/hello --wait --cp-url http://{API}
  {produce} k8s --agent {AGENT_ID} --manifest examples/hello --delete --wait --cp-url http://{API}
  kubectl --kubeconfig {kubeconfig} get all,configmaps -n transporter-hello
  curl -s http://{API}/audit""",
            flush=True,
        )
        while not stop.wait(0.5):
            for name, process in (("control plane", cp), ("agent", agent)):
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; see {work}", file=sys.stderr)
                    return 1
        print("\nstopping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
