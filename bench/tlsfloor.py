"""The floor under the control plane's memory per agent connection: what a connection costs
with nothing of ours on it. A trio server holds N connections from another process, each
(a) a bare TCP stream, (b) a TLS stream with the control plane's own server context (mutual
TLS, the agent's bundle on the other side), each having read one small message.

    .venv/bin/python bench/tlsfloor.py [--connections 1000]

Compare with bench/memory.py (the real control plane, per registered agent connection).
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import tempfile
from functools import partial
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed.pki import TestPki

from transporter.cp.pki import write_serving
from transporter.cp.tls import server_context


def rss_kib() -> int:
    return (
        int(Path(f"/proc/{os.getpid()}/statm").read_text().split()[1])
        * os.sysconf("SC_PAGESIZE")
        // 1024
    )


async def clients(port: int, count: int, bundle: Path | None) -> None:
    """The other process: ``count`` connections, each sends 200 bytes, then all wait."""
    context = None
    if bundle is not None:
        from transporter.agent.bundle import load_bundle

        context = load_bundle(bundle).ssl_context()
    held = []
    for _ in range(count):
        stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", port)
        if context is not None:
            tls = trio.SSLStream(stream, context, server_hostname="127.0.0.1")
            await tls.do_handshake()
            stream = tls
        await stream.send_all(b"x" * 200)
        held.append(stream)
    await trio.sleep_forever()


async def serve(count: int, context: ssl.SSLContext | None, bundle: Path | None) -> float:
    kept: list[trio.abc.Stream] = []
    everyone = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        held: trio.abc.Stream = stream
        if context is not None:
            tls = trio.SSLStream(stream, context, server_side=True, https_compatible=True)
            await tls.do_handshake()
            held = tls
        await held.receive_some(1024)
        kept.append(held)
        if len(kept) == count:
            everyone.set()
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        before = rss_kib()
        argv = [sys.executable, __file__, "--client-port", str(port), "--connections", str(count)]
        if bundle is not None:
            argv += ["--bundle", str(bundle)]
        process = await trio.lowlevel.open_process(argv)
        try:
            with trio.fail_after(300):
                await everyone.wait()
            await trio.sleep(1)
            per = (rss_kib() - before) / count
        finally:
            process.kill()
            await process.wait()
        nursery.cancel_scope.cancel()
    return per


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--client-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bundle", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_port is not None:
        trio.run(clients, args.client_port, args.connections, args.bundle)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        pki = TestPki.create(Path(tmp))
        cert, key = write_serving(pki.authority, Path(tmp), ["127.0.0.1"])
        context = server_context(pki.ca_cert, cert, key)
        bundle = pki.bundle_dir("bench-0")
        bare = trio.run(serve, args.connections, None, None)
        tls = trio.run(serve, args.connections, context, bundle)
    print(f"bare TCP stream            {bare:6.1f} KiB per connection")
    print(f"mutual TLS (cp's context)  {tls:6.1f} KiB per connection (target for a whole agent")
    print("                                  connection, issue 3: <= 25 KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
