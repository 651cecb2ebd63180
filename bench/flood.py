"""A flood of unauthenticated connections that never finish their TLS handshake, against a real
control plane: what it costs, and whether the API keeps answering.

A separate process (``--flood`` mode of this script) opens connections to the agent channel and
the API as fast as it can, keeping up to ``--hold`` open at once (reopening those the control
plane closes), and sends nothing. Meanwhile this process asks ``/healthz`` every 0.1 s and
reads the control plane's RSS. Prints /healthz latency and RSS before, during and after the
flood, the connections the flood made, and the log lines the control plane wrote.

    .venv/bin/python bench/flood.py [--seconds 30] [--hold 16000]
"""

from __future__ import annotations

import argparse
import errno
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import control_plane, percentile, rss_kib

FLOOD_FROM = "127.0.0.2"
"""The flood's source address: another host's, as an attacker's would be (the probes of
/healthz come from 127.0.0.1, each address with its own share of connections)."""


def flood(host: str, ports: list[int], seconds: float, hold: int) -> None:
    """Open and hold connections that send nothing; print how many were opened."""
    held: list[socket.socket] = []
    opened = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for port in ports:
            if len(held) >= hold:
                # Reap what the server closed, so that the flood goes on at the same pace.
                alive = []
                for sock in held:
                    try:
                        if sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b"":
                            sock.close()
                            continue
                    except BlockingIOError:
                        pass
                    except OSError:
                        sock.close()
                        continue
                    alive.append(sock)
                held = alive
                if len(held) >= hold:
                    time.sleep(0.01)
                    continue
            sock = socket.socket()
            try:
                sock.bind((FLOOD_FROM, 0))
                sock.connect((host, port))
            except OSError as exc:
                sock.close()
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    time.sleep(0.05)
                continue
            held.append(sock)
            opened += 1
    for sock in held:
        sock.close()
    print(opened, flush=True)


def healthz(api_url: str, context: ssl.SSLContext) -> float | None:
    """Seconds to an answer of ``GET /healthz`` on a new connection; ``None``: none in 5 s."""
    parts = urlsplit(api_url)
    started = time.perf_counter()
    try:
        raw = socket.create_connection((parts.hostname, parts.port), timeout=5)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as HTTP clients do
        with raw, context.wrap_socket(raw, server_hostname=parts.hostname) as tls:
            tls.sendall(f"GET /healthz HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
            if not tls.recv(64).startswith(b"HTTP/1.1 200"):
                return None
    except OSError:
        return None
    return time.perf_counter() - started


def sample(
    api_url: str, context: ssl.SSLContext, pid: int, seconds: float
) -> tuple[list[float], int, list[int]]:
    """/healthz latencies, failures and RSS (KiB) over ``seconds``."""
    latencies, failures, rss = [], 0, []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        took = healthz(api_url, context)
        if took is None:
            failures += 1
        else:
            latencies.append(took)
        rss.append(rss_kib(pid))
        time.sleep(0.1)
    return latencies, failures, rss


def report(name: str, latencies: list[float], failures: int, rss: list[int]) -> None:
    if latencies:
        p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
        worst = max(latencies) * 1000
        timing = f"/healthz p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms"
    else:
        timing = "/healthz never answered"
    print(
        f"{name:<8} {timing}; {failures} not answered in 5 s; control plane RSS"
        f" {min(rss) / 1024:.1f}-{max(rss) / 1024:.1f} MiB (last {rss[-1] / 1024:.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the flood lasts")
    parser.add_argument("--hold", type=int, default=16_000, help="connections held at once")
    parser.add_argument("--after", type=float, default=30.0, help="seconds watched after it")
    parser.add_argument("--flood", nargs=3, metavar=("HOST", "PORTS", "SECONDS"))
    args = parser.parse_args()
    if args.flood:
        host, ports, seconds = args.flood
        flood(host, [int(p) for p in ports.split(",")], float(seconds), args.hold)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with control_plane(work / "cp") as (cp, api_url, agent_url, _):
            context = ssl.create_default_context(cafile=str(work / "cp" / "ca.crt"))
            before = sample(api_url, context, cp.pid, 3)
            agent = urlsplit(agent_url)
            api = urlsplit(api_url)
            flooder = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--hold",
                    str(args.hold),
                    "--flood",
                    "127.0.0.1",
                    f"{agent.port},{api.port}",
                    str(args.seconds),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            lines_before = len(cp.lines)
            during = sample(api_url, context, cp.pid, args.seconds)
            opened = int((flooder.communicate(timeout=60)[0] or "0").strip() or 0)
            after = sample(api_url, context, cp.pid, args.after)
            logged = len(cp.lines) - lines_before
        report("before", *before)
        report("during", *during)
        report("after", *after)
        print(
            f"flood: {opened} connections opened in {args.seconds:g} s (up to {args.hold} held"
            f" at once, none sent a byte); the control plane wrote {logged} log lines"
        )


if __name__ == "__main__":
    main()
