"""``make demo``: the main job, on one machine, left running for you to explore.

A control plane on the embedded store, an agent on a local cluster (the test bed's, or yours
with ``DEMO_KUBECONFIG=~/.kube/config make demo``), and an example event (examples/hello)
applied with its phases shown live. The API needs tokens, as everywhere: the demo makes two with
``transporter token create``, one that may submit for the demo's agent, one admin. The agent
channel is mutual TLS, as everywhere: the control plane makes its CA at its first start, and the
demo issues the agent's bundle with ``transporter bundle create``; the API is HTTPS with a
certificate from that CA, which the producer is given (``TRANSPORTER_CA_CERT``). Ctrl-C stops
everything and removes the demo's data; its logs stay, in the folder it names.

The API listens on ``DEMO_API`` (127.0.0.1:8080) and the agent channel on
``DEMO_AGENT_LISTEN`` (127.0.0.1:8443); a port in use there is said in one line, before
anything starts.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import ssl
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


def busy(address: str, variable: str) -> str | None:
    """Why the demo cannot listen on ``address`` (one line naming ``variable``), or ``None``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host.strip("[]"), int(port)))
    except ValueError:
        return f"make demo: {variable}={address} is not HOST:PORT"
    except OSError as exc:
        what = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        return (
            f"make demo: {address} is {what}; set {variable}=127.0.0.1:PORT to a free port"
            " (DEMO_API: the API, DEMO_AGENT_LISTEN: the agent channel)"
        )
    return None


def wait_for_agent(api: str, token: str, ca: Path, deadline: float) -> None:
    request = urllib.request.Request(
        f"https://{api}/agents/{AGENT_ID}", headers={"Authorization": f"Bearer {token}"}
    )
    context = ssl.create_default_context(cafile=str(ca))
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=2, context=context) as answer:  # noqa: S310
                if json.load(answer)["status"] == "connected":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the agent did not connect; see its log (agent.log, named above)")


def create_token(name: str, role: str, *argv: str) -> str:
    """``transporter token create``: the token it prints on stdout."""
    done = subprocess.run(
        [*TRANSPORTER, "token", "create", "--name", name, "--role", role, *argv],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def wait_for_ca(folder: Path, cp: subprocess.Popen[bytes], deadline: float) -> None:
    """Until the control plane has made its CA (the serving certificate comes after it)."""
    while not (folder / "agent-channel.crt").exists():
        if cp.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the control plane did not start; see its log")
        time.sleep(0.1)


def create_bundle(out: Path, *argv: str) -> str:
    """``transporter bundle create`` for the demo's agent: the serial it printed."""
    done = subprocess.run(
        [*TRANSPORTER, "bundle", "create", "--agent-id", AGENT_ID, "--out", str(out), *argv],
        capture_output=True,
        text=True,
        check=True,
    )
    serial = next(line for line in done.stdout.splitlines() if line.strip().startswith("serial"))
    return serial.split()[-1]


def main() -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for address, variable in ((API, "DEMO_API"), (AGENTS, "DEMO_AGENT_LISTEN")):
        problem = busy(address, variable)
        if problem:
            print(problem, file=sys.stderr)
            return 1
    work = Path(tempfile.mkdtemp(prefix="transporter-demo-"))
    # The logs outlive the demo's data: the paths it prints stay good after Ctrl-C.
    logs = Path(tempfile.mkdtemp(prefix="transporter-demo-logs-"))
    with contextlib.ExitStack() as stack:
        stack.callback(print, f"logs kept in {logs}", flush=True)
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
            log = (logs / f"{name}.log").open("wb")
            stack.callback(log.close)
            # Text logs: a person reads them (json is the default off a terminal).
            env = {**os.environ, "TRANSPORTER_LOG_FORMAT": "text"}
            process = subprocess.Popen([*TRANSPORTER, *argv], stdout=log, stderr=log, env=env)
            stack.callback(process.wait)
            stack.callback(process.send_signal, signal.SIGTERM)
            return process

        data_dir = ["--data-dir", str(work / "cp")]
        # Tokens first, with the command an operator runs on the control plane's host: the
        # token on stdout, what it is on stderr.
        # The producer's: it may submit for the demo's agent only.
        token = create_token("demo", "submit", "--agents", AGENT_ID, *data_dir)
        admin = create_token("demo-admin", "admin", *data_dir)
        cp = start("cp", "cp", "--listen", API, "--agent-listen", AGENTS, *data_dir)
        print(f"control plane  https://{API}  (log {logs / 'cp.log'})")
        print(f"tokens         demo (submit for {AGENT_ID}), demo-admin (admin)")
        # The control plane made its CA and event-signing key at its first start: issue the
        # agent's bundle from them, as an operator does on the control plane's host.
        wait_for_ca(work / "cp", cp, time.monotonic() + 60)
        serial = create_bundle(work / "bundle", *data_dir)
        print(f"bundle         {work / 'bundle'}  ({AGENT_ID}, certificate serial {serial})")
        agent = start(
            "agent",
            "agent",
            "--bundle",
            str(work / "bundle"),
            "--cluster-name",
            "demo",
            "--cp-url",
            f"wss://{AGENTS}/ws",
            "--kubeconfig",
            str(kubeconfig),
            "--label",
            "env=demo",
        )
        print(f"agent          {AGENT_ID}  (log {logs / 'agent.log'})", flush=True)
        ca = work / "cp" / "ca.crt"
        wait_for_agent(API, token, ca, time.monotonic() + 60)
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
                f"https://{API}",
                "--manifest",
                str(REPO / "examples" / "hello"),
                "--wait",
            ],
            check=False,
            env={**os.environ, "TRANSPORTER_TOKEN": token, "TRANSPORTER_CA_CERT": str(ca)},
        )
        produce = " ".join(["transporter", "produce"])
        print(
            f"""
Everything keeps running until Ctrl-C. Try, in another terminal (. .venv/bin/activate):
  export TRANSPORTER_TOKEN={token} TRANSPORTER_CA_CERT={ca} TRANSPORTER_CP_URL=https://{API}
  ADMIN_TOKEN={admin}
  {produce} get agents
  {produce} get events
  {produce} k8s --agent {AGENT_ID} --manifest examples/hello --wait
  {produce} k8s --agent {AGENT_ID} --manifest examples/hello --delete --wait
  kubectl --kubeconfig {kubeconfig} get all,configmaps -n transporter-hello
  curl -s --cacert {ca} -H "Authorization: Bearer $ADMIN_TOKEN" https://{API}/audit
  transporter token list --data-dir {work / "cp"}""",
            flush=True,
        )
        while not stop.wait(0.5):
            for name, process in (("control plane", cp), ("agent", agent)):
                if process.poll() is not None:
                    log = logs / ("cp.log" if process is cp else "agent.log")
                    print(f"{name} exited with {process.returncode}; see {log}", file=sys.stderr)
                    return 1
        print("\nstopping", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
