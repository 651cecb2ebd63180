"""``make demo``: a control plane on the embedded store beside a local Kubernetes cluster.

Uses the test bed's cluster, or your own with ``KUBECONFIG=~/.kube/config make demo``. Everything
it starts keeps running for you to explore until Ctrl-C, which stops it all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from tests.bed.kube import running_cluster

TRANSPORTER = (sys.executable, "-m", "transporter")


def main() -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    work = Path(tempfile.mkdtemp(prefix="transporter-demo-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        kubeconfig_env = os.environ.get("DEMO_KUBECONFIG")
        if kubeconfig_env:
            kubeconfig = Path(kubeconfig_env)
            print(f"cluster: yours, {kubeconfig}")
        else:
            print("cluster: starting a local kube-apiserver (the test bed's) ...", flush=True)
            cluster = stack.enter_context(running_cluster("demo", work / "demo"))
            kubeconfig = cluster.kubeconfig
            print(f"cluster: {cluster.server}\n  kubectl --kubeconfig {kubeconfig} get ns")
        cp = stack.enter_context(
            subprocess.Popen(
                [
                    *TRANSPORTER,
                    "cp",
                    "--listen",
                    "127.0.0.1:8080",
                    "--agent-listen",
                    "127.0.0.1:8443",
                    "--data-dir",
                    str(work / "cp"),
                ],
            )
        )
        stack.callback(cp.wait)
        stack.callback(cp.send_signal, signal.SIGTERM)
        print(f"control plane: http://127.0.0.1:8080/healthz (data in {work / 'cp'})")
        print("running until Ctrl-C", flush=True)
        while not stop.wait(0.5):
            if cp.poll() is not None:
                print(f"control plane exited with {cp.returncode}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
