"""``make testbed CLUSTERS=N DIR=PATH``: start N clusters, print their kubeconfigs, wait for Ctrl-C.

python -m tests.bed --clusters 2 --dir /tmp/tb
python -m tests.bed --controllers --dir /tmp/tb   # with controllers, scheduler and kwok
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from tests.bed.controllers import controllers_bin, running_controllers
from tests.bed.kube import running_cluster, testbed_bin


def main() -> int:
    parser = argparse.ArgumentParser(prog="make testbed", description=__doc__)
    parser.add_argument("--clusters", type=int, default=1, help="how many clusters (default 1)")
    parser.add_argument("--dir", type=Path, required=True, help="folder for kubeconfigs and data")
    parser.add_argument(
        "--controllers",
        action="store_true",
        help="also run kube-controller-manager, kube-scheduler and kwok (one fake node) beside"
        " each cluster, so that Deployments roll out and namespaces finish deleting",
    )
    args = parser.parse_args()
    if args.clusters < 1:
        parser.error("--clusters must be at least 1")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    folder: Path = args.dir.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    bin_dir = testbed_bin()
    controllers = controllers_bin() if args.controllers else None
    with contextlib.ExitStack() as stack:
        for n in range(1, args.clusters + 1):
            name = f"cluster-{n}"
            cluster = stack.enter_context(running_cluster(name, folder / name, bin_dir=bin_dir))
            if controllers is not None:
                stack.enter_context(running_controllers(cluster, bin_dir=controllers))
            print(f"{name}: {cluster.server}  kubeconfig {cluster.kubeconfig}", flush=True)
            if stop.is_set():
                break
        if not stop.is_set():
            print("test bed running; Ctrl-C stops it and removes its data", flush=True)
            stop.wait()
        print("stopping the test bed", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
